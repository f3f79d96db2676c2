#include "faces/tfjs/graph_model.h"

#include <ATen/Context.h>

#include <charconv>
#include <climits>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <optional>
#include <set>

#include "core/error.h"
#include "core/fs.h"

namespace fairdiff::tfjs {
namespace {

namespace fs = std::filesystem;

// model.json is untrusted input: every value is type-checked here, so that a malformed file is an InputError naming
// the file and the entry, never a JSON library exception, an unchecked cast or a tensor of a negative size.
const Json& member(const Json& object, const char* key, const std::string& where) {
  if (!object.is_object() || !object.contains(key)) throw InputError(where + ": missing '" + key + "'");
  return object[key];
}

std::string string_member(const Json& object, const char* key, const std::string& where) {
  const Json& value = member(object, key, where);
  if (!value.is_string()) throw InputError(where + ": '" + key + "' must be a string");
  return value.get<std::string>();
}

const Json& array_member(const Json& object, const char* key, const std::string& where) {
  const Json& value = member(object, key, where);
  if (!value.is_array()) throw InputError(where + ": '" + key + "' must be a list");
  return value;
}

// TF.js writes 64-bit integers as decimal strings ("-1", "3"); plain JSON numbers are accepted too.
int64_t integer_of(const Json& value, const std::string& where) {
  if (!value.is_string()) return json_value<int64_t>(value, where);
  const std::string text = value.get<std::string>();
  int64_t out = 0;
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, out);
  if (text.empty() || ec != std::errc() || ptr != end) {
    throw InputError(where + ": '" + text + "' is not a whole number");
  }
  return out;
}

std::vector<int64_t> shape_of(const Json& dims, const std::string& where) {
  std::vector<int64_t> shape;
  if (!dims.is_array()) throw InputError(where + ": expected a shape array");
  for (const auto& d : dims) {
    shape.push_back(integer_of(d, where + ": shape"));
    if (shape.back() < 0) throw InputError(where + ": negative dimension " + std::to_string(shape.back()));
  }
  return shape;
}

// Elements of `shape` (non-negative dimensions), or -1 when they need more than `limit` bytes of `bytes_per` each.
int64_t element_count(const std::vector<int64_t>& shape, size_t bytes_per, size_t limit) {
  for (int64_t d : shape) {
    if (d == 0) return 0;
  }
  uint64_t n = 1;
  for (int64_t d : shape) {
    if (static_cast<uint64_t>(d) > limit / bytes_per / n) return -1;
    n *= static_cast<uint64_t>(d);
  }
  return n * bytes_per <= limit ? static_cast<int64_t>(n) : -1;  // a scalar (shape []) has no dimension to check
}

// Decodes one weight entry of the manifest from `data` (which must hold at least its bytes).
torch::Tensor decode_weight(const Json& spec, const std::string& name, const uint8_t* data, size_t available,
                            size_t* consumed, const std::string& where) {
  const std::string what = where + ": weight '" + name + "'";
  const std::string dtype = string_member(spec, "dtype", what);
  const std::vector<int64_t> shape = shape_of(member(spec, "shape", what), what);
  std::string stored = dtype;
  double scale = 1.0, min = 0.0;
  if (spec.contains("quantization")) {
    const Json& q = spec["quantization"];
    stored = string_member(q, "dtype", what + " quantization");
    for (auto [key, out] : {std::pair<const char*, double*>{"scale", &scale}, {"min", &min}}) {
      if (!q.contains(key)) continue;
      if (!q[key].is_number()) throw InputError(what + ": quantization " + key + " must be a number");
      *out = q[key].get<double>();
    }
  }
  size_t bytes_per = 0;
  if (stored == "float32" || stored == "int32")
    bytes_per = 4;
  else if (stored == "float16" || stored == "uint16")
    bytes_per = 2;
  else if (stored == "uint8" || stored == "bool")
    bytes_per = 1;
  else
    throw UnsupportedError(what + " has storage dtype '" + stored +
                           "' (expected float32, int32, bool, or quantised uint8/uint16/float16)");
  const int64_t n = element_count(shape, bytes_per, available);
  if (n < 0) {
    throw InputError(where + ": weight shards end before weight '" + name + "' (its shape " + Json(shape).dump() +
                     " needs more than the " + std::to_string(available) + " bytes left)");
  }
  const size_t bytes = static_cast<size_t>(n) * bytes_per;
  *consumed = bytes;
  std::vector<uint8_t> copy(data, data + bytes);
  auto raw = [&](torch::Dtype t) { return torch::from_blob(copy.data(), {n}, t).clone(); };
  torch::Tensor flat;
  if (stored == "float32")
    flat = raw(torch::kFloat);
  else if (stored == "int32")
    flat = raw(torch::kInt);
  else if (stored == "bool")
    flat = raw(torch::kByte).ne(0);  // any non-zero byte is true (a bool tensor must hold only 0 and 1)
  else if (stored == "float16")
    flat = raw(torch::kHalf).to(torch::kFloat);
  else {
    // Affine quantisation as TF.js writes it: value = q * scale + min.
    torch::Tensor ints = stored == "uint8" ? raw(torch::kByte).to(torch::kFloat)
                                           : raw(torch::kShort).to(torch::kInt).bitwise_and(0xFFFF).to(torch::kFloat);
    flat = ints * scale + min;
    if (dtype == "int32") flat = flat.round().clamp(INT32_MIN, INT32_MAX).to(torch::kInt);
  }
  return flat.reshape(shape);
}

// A shard named in the manifest: a file in the model's folder or below it (never an absolute path or "..", so a
// model file cannot make the loader read /dev/zero or another folder's files).
fs::path shard_path(const fs::path& folder, const Json& name, const std::string& where) {
  if (!name.is_string()) throw InputError(where + ": weightsManifest paths must be strings");
  const fs::path relative = fs::path(name.get<std::string>()).lexically_normal();
  if (relative.empty() || relative.is_absolute() || relative.has_root_path() || *relative.begin() == "..") {
    throw InputError(where + ": weight shard '" + name.get<std::string>() +
                     "' must be a file name relative to the model's folder");
  }
  const fs::path path = folder / relative;
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) {
    throw InputError(where + ": weight shard " + path.string() + " is missing or not a file");
  }
  return path;
}

std::vector<uint8_t> read_bytes(const fs::path& path, const std::string& where) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(where + ": weight shard " + path.string() + " is missing or unreadable");
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// "name" or "name:k" -> ("name", k); k is a small non-negative index (-1 when the suffix is not one).
std::pair<std::string, int> split_output(const std::string& ref) {
  const size_t colon = ref.rfind(':');
  if (colon == std::string::npos || colon + 1 == ref.size() || ref.size() - colon > 5) return {ref, -1};
  int index = 0;
  for (size_t i = colon + 1; i < ref.size(); ++i) {
    if (ref[i] < '0' || ref[i] > '9') return {ref, -1};
    index = index * 10 + (ref[i] - '0');
  }
  return {ref.substr(0, colon), index};
}

}  // namespace

std::shared_ptr<GraphModel> GraphModel::load(const fs::path& model_json) {
  std::shared_ptr<GraphModel> model(new GraphModel());
  model->source_ = model_json.string();
  const std::string& where = model->source_;
  Json root = read_json_file(model_json);
  if (!root.is_object() || !root.contains("modelTopology") || !root.contains("weightsManifest")) {
    throw InputError(where + ": not a TF.js graph model (expected modelTopology and weightsManifest)");
  }
  const Json& topo = root["modelTopology"];
  if (!topo.is_object() || !topo.contains("node") || !topo["node"].is_array()) {
    throw InputError(where + ": modelTopology has no node list (a TF.js layers model is not a graph model)");
  }
  if (topo.contains("library") && topo["library"].contains("function") && !topo["library"]["function"].empty()) {
    throw UnsupportedError(where + ": graph functions (control flow) are not supported by fairdiff's TF.js runtime");
  }

  // Weights: each group's shards are one contiguous buffer holding its weights in manifest order.
  if (!root["weightsManifest"].is_array()) throw InputError(where + ": weightsManifest must be a list of groups");
  for (const auto& group : root["weightsManifest"]) {
    std::vector<uint8_t> buffer;
    for (const auto& p : array_member(group, "paths", where + ": weightsManifest group")) {
      std::vector<uint8_t> shard = read_bytes(shard_path(model_json.parent_path(), p, where), where);
      buffer.insert(buffer.end(), shard.begin(), shard.end());
    }
    size_t offset = 0;
    for (const auto& spec : array_member(group, "weights", where + ": weightsManifest group")) {
      const std::string name = string_member(spec, "name", where + ": weightsManifest entry");
      if (model->weights_.count(name)) throw InputError(where + ": weight '" + name + "' is listed twice");
      size_t used = 0;
      model->weights_[name] = decode_weight(spec, name, buffer.data() + offset, buffer.size() - offset, &used, where);
      offset += used;
    }
    if (offset != buffer.size()) {
      throw InputError(where + ": weight shards hold " + std::to_string(buffer.size()) + " bytes but the manifest " +
                       "describes " + std::to_string(offset));
    }
  }

  for (const auto& n : topo["node"]) {
    GraphNode node;
    node.name = string_member(n, "name", where + ": node");
    node.op = string_member(n, "op", where + ": node '" + node.name + "'");
    node.attr = n.value("attr", Json::object());
    if (!node.attr.is_object()) throw InputError(where + ": node '" + node.name + "': 'attr' must be an object");
    if (!model->node_index_.emplace(node.name, static_cast<int>(model->nodes_.size())).second) {
      throw InputError(where + ": two nodes are named '" + node.name + "'");
    }
    model->nodes_.push_back(node);
  }
  // Resolve inputs after every node is known ("^x" is a control dependency: order only, no value).
  size_t k = 0;
  for (const auto& n : topo["node"]) {
    GraphNode& node = model->nodes_[k++];
    const Json inputs = n.value("input", Json::array());
    if (!inputs.is_array()) throw InputError(where + ": node '" + node.name + "': 'input' must be a list");
    for (const auto& in : inputs) {
      if (!in.is_string()) throw InputError(where + ": node '" + node.name + "': inputs must be node names");
      std::string ref = in.get<std::string>();
      if (!ref.empty() && ref[0] == '^') continue;
      int index = 0;
      int id = model->resolve_output(ref, &index);
      if (id < 0) throw InputError(where + ": node '" + node.name + "' reads unknown node '" + ref + "'");
      node.inputs.push_back({id, index});
    }
    if (node.op == "Placeholder") {
      TensorSpec spec{node.name, {}};
      const std::string what = where + ": input '" + node.name + "'";
      if (node.attr.contains("shape") && node.attr["shape"].contains("shape")) {
        const Json& shape = node.attr["shape"]["shape"];
        const Json dims = shape.is_object() ? shape.value("dim", Json::array()) : Json();
        if (!dims.is_array()) throw InputError(what + ": its shape must have a list of dims");
        for (const auto& d : dims) {
          // A free dimension is -1; protobuf's JSON leaves out a size of 0, so a dim without one is free too.
          const int64_t size = d.is_object() && d.contains("size") ? integer_of(d["size"], what + ": shape") : -1;
          if (size < -1) throw InputError(what + ": dimension " + std::to_string(size) + " in its shape");
          spec.shape.push_back(size);
        }
      }
      model->inputs_.push_back(spec);
    }
  }

  if (root.contains("signature") && root["signature"].contains("outputs")) {
    const Json& outputs = root["signature"]["outputs"];
    if (!outputs.is_object()) throw InputError(where + ": signature outputs must be an object");
    for (auto it = outputs.begin(); it != outputs.end(); ++it) {
      const std::string node_name =
          it.value().is_object() && it.value().contains("name") ? string_member(it.value(), "name", where) : it.key();
      model->outputs_.push_back({it.key(), node_name});
    }
  } else {
    std::set<int> consumed;
    for (const auto& node : model->nodes_) {
      for (const auto& in : node.inputs) consumed.insert(in.node);
    }
    for (size_t i = 0; i < model->nodes_.size(); ++i) {
      if (!consumed.count(static_cast<int>(i)) && model->nodes_[i].op != "Const") {
        model->outputs_.push_back({model->nodes_[i].name, model->nodes_[i].name});
      }
    }
  }
  model->compile();
  return model;
}

int GraphModel::resolve_output(const std::string& name, int* output_index) const {
  *output_index = 0;
  auto it = node_index_.find(name);
  if (it != node_index_.end()) return it->second;
  const auto [node, index] = split_output(name);
  if (index < 0) return -1;
  it = node_index_.find(node);
  if (it == node_index_.end()) return -1;
  *output_index = index;
  return it->second;
}

void GraphModel::compile() {
  std::set<std::string> unsupported;
  for (const auto& node : nodes_) {
    if (!op_supported(node.op)) unsupported.insert(node.op + " (node '" + node.name + "')");
  }
  if (!unsupported.empty()) {
    std::string list;
    for (const auto& u : unsupported) list += (list.empty() ? "" : ", ") + u;
    throw UnsupportedError(source_ + ": fairdiff's TF.js runtime does not support op(s): " + list);
  }
  for (const auto& node : nodes_) {
    if (node.op == "Const" && !weights_.count(node.name)) {
      throw InputError(source_ + ": Const node '" + node.name + "' has no weights in the manifest");
    }
  }
  kernels_.clear();
  parameters_.clear();
  // Every kernel gets its own copy of a Const's value (never the tensor in weights_, which stays as stored), so
  // that fine-tuning and load_parameters change the running model only.
  auto value_of = [&](const std::string& name) { return weights_.at(name).to(device_, false, /*copy=*/true); };
  std::vector<torch::Tensor> const_values(nodes_.size());
  std::set<std::pair<int, size_t>> held;  // (node, input) whose Const the node's kernel converted
  std::map<std::string, std::vector<torch::Tensor>> held_weights;  // by Const name
  for (size_t id = 0; id < nodes_.size(); ++id) {
    const GraphNode& node = nodes_[id];
    if (node.op == "Placeholder") {  // fed by execute()
      kernels_.push_back(nullptr);
      continue;
    }
    if (node.op == "Const") {
      torch::Tensor value = value_of(node.name);
      const_values[id] = value;
      kernels_.push_back([value](const Values&) { return Values{value}; });
      continue;
    }
    auto constant = [&](size_t i) -> torch::Tensor {
      if (i >= node.inputs.size()) return {};
      const GraphNode& producer = nodes_[node.inputs[i].node];
      if (producer.op != "Const") return {};
      return value_of(producer.name);
    };
    auto hold = [&](size_t i, const torch::Tensor& tensor) {
      if (i >= node.inputs.size() || nodes_[node.inputs[i].node].op != "Const") return;
      held.insert({static_cast<int>(id), i});
      held_weights[nodes_[node.inputs[i].node].name].push_back(tensor);
    };
    try {
      kernels_.push_back(compile_node(node, constant, hold));
    } catch (const InputError& e) {  // a malformed attribute
      throw InputError(source_ + ": node '" + node.name + "' (" + node.op + "): " + e.what());
    } catch (const Error& e) {
      throw UnsupportedError(source_ + ": node '" + node.name + "' (" + node.op + "): " + e.what());
    }
  }
  // Parameters in graph order of their Const nodes: the converted copies the kernels hold, and the Const's own
  // value where some kernel reads it while running (a float tensor of more than one value).
  std::set<int> read_at_run_time;
  for (size_t id = 0; id < nodes_.size(); ++id) {
    for (size_t i = 0; i < nodes_[id].inputs.size(); ++i) {
      if (!held.count({static_cast<int>(id), i})) read_at_run_time.insert(nodes_[id].inputs[i].node);
    }
  }
  for (size_t id = 0; id < nodes_.size(); ++id) {
    const GraphNode& node = nodes_[id];
    if (node.op != "Const") continue;
    auto it = held_weights.find(node.name);
    if (it != held_weights.end()) {
      for (const auto& tensor : it->second) parameters_.push_back({node.name, tensor});
    }
    const torch::Tensor& value = const_values[id];
    if (read_at_run_time.count(static_cast<int>(id)) && value.is_floating_point() && value.numel() > 1) {
      parameters_.push_back({node.name, value});
    }
  }
  torch::NoGradGuard no_grad;
  for (auto& [name, tensor] : parameters_) {
    auto loaded = loaded_.find(name);
    if (loaded != loaded_.end()) tensor.copy_(loaded->second);
    if (trainable_ && trainable_(name)) tensor.requires_grad_(true);
  }
}

std::vector<std::pair<std::string, torch::Tensor>> GraphModel::parameters() const {
  return parameters_;
}

void GraphModel::set_trainable(const std::function<bool(const std::string&)>& trainable) {
  trainable_ = trainable;
  for (auto& [name, tensor] : parameters_) tensor.requires_grad_(trainable_ && trainable_(name));
}

void GraphModel::load_parameters(const std::map<std::string, torch::Tensor>& values, const std::string& source) {
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const auto& [name, tensor] : parameters_) shapes[name] = tensor.sizes().vec();
  for (const auto& [name, value] : values) {
    auto it = shapes.find(name);
    if (it == shapes.end()) {
      throw InputError(source + ": '" + name + "' is no parameter of " + source_ + " (expected the name of a Const " +
                       "node that GraphModel::parameters lists)");
    }
    if (value.sizes().vec() != it->second) {
      throw InputError(source + ": '" + name + "' has shape " + c10::str(value.sizes()) + ", the model's is " +
                       c10::str(c10::IntArrayRef(it->second)));
    }
  }
  for (const auto& [name, value] : values) loaded_[name] = value.detach().to(torch::kCPU, torch::kFloat32).clone();
  torch::NoGradGuard no_grad;
  for (auto& [name, tensor] : parameters_) {
    auto loaded = values.find(name);
    if (loaded != values.end()) tensor.copy_(loaded->second.to(tensor.device(), tensor.scalar_type()));
  }
}

void GraphModel::to(torch::Device device) {
  device_ = device;
  compile();
}

Values GraphModel::execute(const std::map<std::string, torch::Tensor>& feeds,
                           const std::vector<std::string>& outputs) const {
  std::vector<std::pair<int, int>> wanted;
  for (const auto& requested : outputs) {
    std::string name = requested;
    for (const auto& [key, node_name] : outputs_) {
      if (key == requested) name = node_name;
    }
    int index = 0;
    int id = resolve_output(name, &index);
    if (id < 0) throw UsageError(source_ + ": the model has no output or node named '" + requested + "'");
    wanted.push_back({id, index});
  }
  // Depth-first topological order of the nodes the outputs need.
  std::vector<int> order;
  std::vector<char> state(nodes_.size(), 0);  // 0 new, 1 on stack, 2 done
  std::vector<std::pair<int, size_t>> stack;
  for (const auto& [id, _] : wanted) {
    if (state[id]) continue;
    stack.push_back({id, 0});
    state[id] = 1;
    while (!stack.empty()) {
      auto& [node, next] = stack.back();
      if (next < nodes_[node].inputs.size()) {
        int child = nodes_[node].inputs[next++].node;
        if (state[child] == 1)
          throw InputError(source_ + ": the graph has a cycle through '" + nodes_[child].name + "'");
        if (state[child] == 0) {
          state[child] = 1;
          stack.push_back({child, 0});
        }
      } else {
        state[node] = 2;
        order.push_back(node);
        stack.pop_back();
      }
    }
  }
  // Free each intermediate value after its last reader has run.
  std::vector<int> readers(nodes_.size(), 0);
  for (int id : order) {
    for (const auto& in : nodes_[id].inputs) readers[in.node]++;
  }
  for (const auto& [id, _] : wanted) readers[id]++;

  std::vector<Values> values(nodes_.size());
  // Inference unless set_trainable chose parameters (a fine-tuning step records the graph for its backward pass).
  std::optional<torch::NoGradGuard> no_grad;
  if (!trainable_) no_grad.emplace();
  // Full float32 convolutions on CUDA: LibTorch lets cuDNN use TF32 (a 10-bit mantissa) by default, which moved a
  // default-profile probability by 1.3e-3 against the CPU on the H200. An audit's labels should not depend on the
  // machine; these networks are small and TF32 buys them nothing. Restored on the way out (exceptions too).
  struct FullPrecisionConvolutions {
    bool was = at::globalContext().allowTF32CuDNN();
    FullPrecisionConvolutions() { at::globalContext().setAllowTF32CuDNN(false); }
    ~FullPrecisionConvolutions() { at::globalContext().setAllowTF32CuDNN(was); }
  };
  std::optional<FullPrecisionConvolutions> full_precision;
  if (device_.is_cuda()) full_precision.emplace();
  for (int id : order) {
    const GraphNode& node = nodes_[id];
    if (node.op == "Placeholder") {
      auto it = feeds.find(node.name);
      if (it == feeds.end()) throw UsageError(source_ + ": no value given for input '" + node.name + "'");
      values[id] = {it->second.to(device_)};
      continue;
    }
    Values args;
    args.reserve(node.inputs.size());
    for (const auto& in : node.inputs) {
      if (in.output >= static_cast<int>(values[in.node].size())) {
        throw InputError(source_ + ": node '" + node.name + "' reads output " + std::to_string(in.output) + " of '" +
                         nodes_[in.node].name + "', which has " + std::to_string(values[in.node].size()));
      }
      args.push_back(values[in.node][in.output]);
    }
    try {
      values[id] = kernels_[id](args);
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      throw InputError(source_ + ": node '" + node.name + "' (" + node.op + ") failed: " + e.what());
    }
    for (const auto& in : node.inputs) {
      if (--readers[in.node] == 0 && nodes_[in.node].op != "Const") values[in.node].clear();
    }
  }
  Values result;
  for (const auto& [id, index] : wanted) result.push_back(values[id].at(index));
  return result;
}

}  // namespace fairdiff::tfjs
