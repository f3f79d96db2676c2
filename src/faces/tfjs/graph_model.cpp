#include "faces/tfjs/graph_model.h"

#include <cstring>
#include <fstream>
#include <set>

#include "core/error.h"
#include "core/fs.h"

namespace fairdiff::tfjs {
namespace {

namespace fs = std::filesystem;

std::vector<int64_t> shape_of(const Json& dims, const std::string& where) {
  std::vector<int64_t> shape;
  if (!dims.is_array()) throw InputError(where + ": expected a shape array");
  for (const auto& d : dims) shape.push_back(d.is_string() ? std::stoll(d.get<std::string>()) : d.get<int64_t>());
  return shape;
}

int64_t element_count(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

// Decodes one weight entry of the manifest from `data` (which must hold at least its bytes).
torch::Tensor decode_weight(const Json& spec, const uint8_t* data, size_t available, size_t* consumed,
                            const std::string& where) {
  const std::string name = spec.value("name", "");
  const std::string dtype = spec.value("dtype", "");
  const std::vector<int64_t> shape = shape_of(spec.at("shape"), where + " weight '" + name + "'");
  const int64_t n = element_count(shape);
  std::string stored = dtype;
  if (spec.contains("quantization")) stored = spec["quantization"].value("dtype", "");
  size_t bytes_per = 0;
  if (stored == "float32" || stored == "int32")
    bytes_per = 4;
  else if (stored == "float16" || stored == "uint16")
    bytes_per = 2;
  else if (stored == "uint8" || stored == "bool")
    bytes_per = 1;
  else
    throw UnsupportedError(where + ": weight '" + name + "' has storage dtype '" + stored +
                           "' (expected float32, int32, bool, or quantised uint8/uint16/float16)");
  const size_t bytes = static_cast<size_t>(n) * bytes_per;
  if (bytes > available) {
    throw InputError(where + ": weight shards end before weight '" + name + "' (needs " + std::to_string(bytes) +
                     " bytes, " + std::to_string(available) + " left)");
  }
  *consumed = bytes;
  std::vector<uint8_t> copy(data, data + bytes);
  auto raw = [&](torch::Dtype t) { return torch::from_blob(copy.data(), {n}, t).clone(); };
  torch::Tensor flat;
  if (stored == "float32")
    flat = raw(torch::kFloat);
  else if (stored == "int32")
    flat = raw(torch::kInt);
  else if (stored == "bool")
    flat = raw(torch::kBool);
  else if (stored == "float16")
    flat = raw(torch::kHalf).to(torch::kFloat);
  else {
    // Affine quantisation as TF.js writes it: value = q * scale + min.
    const Json& q = spec["quantization"];
    const double scale = q.value("scale", 1.0);
    const double min = q.value("min", 0.0);
    torch::Tensor ints = stored == "uint8" ? raw(torch::kByte).to(torch::kFloat)
                                           : raw(torch::kShort).to(torch::kInt).bitwise_and(0xFFFF).to(torch::kFloat);
    flat = ints * scale + min;
    if (dtype == "int32") flat = flat.round().to(torch::kInt);
  }
  return flat.reshape(shape);
}

std::vector<uint8_t> read_bytes(const fs::path& path, const std::string& where) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(where + ": weight shard " + path.string() + " is missing or unreadable");
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
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
  if (!topo.contains("node") || !topo["node"].is_array()) {
    throw InputError(where + ": modelTopology has no node list (a TF.js layers model is not a graph model)");
  }
  if (topo.contains("library") && topo["library"].contains("function") && !topo["library"]["function"].empty()) {
    throw UnsupportedError(where + ": graph functions (control flow) are not supported by fairdiff's TF.js runtime");
  }

  // Weights: each group's shards are one contiguous buffer holding its weights in manifest order.
  for (const auto& group : root["weightsManifest"]) {
    std::vector<uint8_t> buffer;
    for (const auto& p : group.at("paths")) {
      std::vector<uint8_t> shard = read_bytes(model_json.parent_path() / p.get<std::string>(), where);
      buffer.insert(buffer.end(), shard.begin(), shard.end());
    }
    size_t offset = 0;
    for (const auto& spec : group.at("weights")) {
      size_t used = 0;
      torch::Tensor t = decode_weight(spec, buffer.data() + offset, buffer.size() - offset, &used, where);
      model->weights_[spec.at("name").get<std::string>()] = t;
      offset += used;
    }
    if (offset != buffer.size()) {
      throw InputError(where + ": weight shards hold " + std::to_string(buffer.size()) + " bytes but the manifest " +
                       "describes " + std::to_string(offset));
    }
  }

  for (const auto& n : topo["node"]) {
    GraphNode node;
    node.name = n.at("name").get<std::string>();
    node.op = n.at("op").get<std::string>();
    node.attr = n.value("attr", Json::object());
    model->node_index_[node.name] = static_cast<int>(model->nodes_.size());
    model->nodes_.push_back(node);
  }
  // Resolve inputs after every node is known ("^x" is a control dependency: order only, no value).
  size_t k = 0;
  for (const auto& n : topo["node"]) {
    GraphNode& node = model->nodes_[k++];
    for (const auto& in : n.value("input", Json::array())) {
      std::string ref = in.get<std::string>();
      if (!ref.empty() && ref[0] == '^') continue;
      int index = 0;
      int id = model->resolve_output(ref, &index);
      if (id < 0) throw InputError(where + ": node '" + node.name + "' reads unknown node '" + ref + "'");
      node.inputs.push_back({id, index});
    }
    if (node.op == "Placeholder") {
      TensorSpec spec{node.name, {}};
      if (node.attr.contains("shape") && node.attr["shape"].contains("shape")) {
        for (const auto& d : node.attr["shape"]["shape"].value("dim", Json::array())) {
          spec.shape.push_back(std::stoll(d.value("size", std::string("-1"))));
        }
      }
      model->inputs_.push_back(spec);
    }
  }

  if (root.contains("signature") && root["signature"].contains("outputs")) {
    for (auto it = root["signature"]["outputs"].begin(); it != root["signature"]["outputs"].end(); ++it) {
      model->outputs_.push_back({it.key(), it.value().value("name", it.key())});
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
  const size_t colon = name.rfind(':');
  if (colon == std::string::npos) return -1;
  it = node_index_.find(name.substr(0, colon));
  if (it == node_index_.end()) return -1;
  *output_index = std::stoi(name.substr(colon + 1));
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
  kernels_.clear();
  for (const auto& node : nodes_) {
    if (node.op == "Placeholder") {  // fed by execute()
      kernels_.push_back(nullptr);
      continue;
    }
    if (node.op == "Const") {
      auto it = weights_.find(node.name);
      if (it == weights_.end()) {
        throw InputError(source_ + ": Const node '" + node.name + "' has no weights in the manifest");
      }
      torch::Tensor value = it->second.to(device_);
      kernels_.push_back([value](const Values&) { return Values{value}; });
      continue;
    }
    auto constant = [&](size_t i) -> torch::Tensor {
      if (i >= node.inputs.size()) return {};
      const GraphNode& producer = nodes_[node.inputs[i].node];
      if (producer.op != "Const") return {};
      return weights_.at(producer.name).to(device_);
    };
    try {
      kernels_.push_back(compile_node(node, constant));
    } catch (const Error& e) {
      throw UnsupportedError(source_ + ": node '" + node.name + "' (" + node.op + "): " + e.what());
    }
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
  torch::NoGradGuard no_grad;
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
