// Loader tests of the fairface profile's ResNet-34 on files of the real formats (torch.save zip, safetensors)
// with random weights, and (on the GPU host, through tools/faces/fairface_torchvision_check.py) parity with
// torchvision's resnet34.
#include "faces/fairface_resnet34.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>

#include "core/error.h"
#include "core/image.h"
#include "core/state_dict.h"
#include "test_paths.h"

namespace fairdiff {
namespace {

namespace fs = std::filesystem;

FairFaceResNet34 random_model() {
  torch::manual_seed(7);
  FairFaceResNet34 model;
  torch::NoGradGuard no_grad;
  for (auto& item : model->named_buffers()) {
    if (item.key().find("running_mean") != std::string::npos) item.value().uniform_(-0.2, 0.2);
    if (item.key().find("running_var") != std::string::npos) item.value().uniform_(0.5, 1.5);
  }
  model->eval();
  return model;
}

void save_state_dict_pt(const FairFaceResNet34& model, const fs::path& path) {
  c10::Dict<std::string, at::Tensor> dict;
  for (const auto& [name, tensor] : module_state_dict(*model)) dict.insert(name, tensor);
  std::vector<char> bytes = torch::pickle_save(dict);
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

TEST(FairFaceResNet34, HasTorchvisionKeysAndShapes) {
  TensorMap state = module_state_dict(*FairFaceResNet34());
  EXPECT_EQ(state.at("conv1.weight").sizes(), (std::vector<int64_t>{64, 3, 7, 7}));
  EXPECT_EQ(state.at("layer2.0.downsample.0.weight").sizes(), (std::vector<int64_t>{128, 64, 1, 1}));
  EXPECT_EQ(state.at("layer3.5.bn2.running_var").sizes(), (std::vector<int64_t>{256}));
  EXPECT_EQ(state.at("layer4.2.conv2.weight").sizes(), (std::vector<int64_t>{512, 512, 3, 3}));
  EXPECT_EQ(state.at("fc.weight").sizes(), (std::vector<int64_t>{18, 512}));
  EXPECT_EQ(state.count("layer1.0.downsample.0.weight"), 0u);
  int64_t parameters = 0;
  for (const auto& p : FairFaceResNet34()->parameters()) parameters += p.numel();
  EXPECT_EQ(parameters, 21293906);  // torchvision resnet34 with an 18-way fc
}

TEST(FairFaceResNet34, LoadsTorchSaveZipAndSafetensors) {
  const fs::path dir = test::scratch_dir("fairface_loader");
  FairFaceResNet34 original = random_model();
  save_state_dict_pt(original, dir / "weights.pt");
  write_safetensors(dir / "weights.safetensors", module_state_dict(*original));

  FaceImage image = FaceImage::from(read_image(test::shared_dir() / "faces/fairface_margin125/fairface_0007.jpg"));
  FaceBox box{112, 112, 336, 336, 1.0f, {}};
  torch::NoGradGuard no_grad;
  torch::Tensor expected = original->forward(fairface_input(image, box));
  for (const char* file : {"weights.pt", "weights.safetensors"}) {
    FairFaceClassifier classifier(dir / file);
    auto predictions = classifier.classify(image, box);
    ASSERT_EQ(predictions.size(), 3u);
    std::vector<AttributePrediction> want = FairFaceClassifier::predictions(expected);
    for (size_t i = 0; i < 3; ++i) {
      EXPECT_EQ(predictions[i].labels, want[i].labels);
      for (size_t k = 0; k < want[i].probabilities.size(); ++k) {
        EXPECT_NEAR(predictions[i].probabilities[k], want[i].probabilities[k], 1e-6) << file;
      }
    }
    EXPECT_EQ(predictions[1].labels.size(), 7u);
    EXPECT_EQ(predictions[2].labels.back(), "70+");
  }
}

TEST(FairFaceResNet34, NamesMissingAndMisshapenTensors) {
  const fs::path dir = test::scratch_dir("fairface_bad");
  TensorMap state = module_state_dict(*random_model());
  state.erase("layer3.1.conv1.weight");
  state["fc.weight"] = torch::zeros({7, 512});
  write_safetensors(dir / "bad.safetensors", state);
  try {
    FairFaceClassifier classifier(dir / "bad.safetensors");
    FAIL();
  } catch (const InputError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("layer3.1.conv1.weight"), std::string::npos) << message;
    EXPECT_NE(message.find("fc.weight"), std::string::npos) << message;
  }
  std::ofstream(dir / "legacy.pt", std::ios::binary) << "\x80\x02legacy pickle";
  try {
    read_torch_state_dict(dir / "legacy.pt");
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("legacy"), std::string::npos) << e.what();
  }
}

// torchvision's ResNet-34 written out from its definition with functional ops, in double precision, reading the
// weights by their state-dict keys: 7x7/2 stem, 3x3/2 max pool, BasicBlocks [3, 4, 6, 3] whose first block of
// layers 2-4 has stride 2 and a 1x1/2 conv + BN shortcut, global average pool, fc. Batch norm by hand in eval
// mode. Independent of the module's code, so a wiring mistake (stride, padding, shortcut, pooling) shows here.
torch::Tensor reference_resnet34(const TensorMap& w, const torch::Tensor& input) {
  const auto p = [&](const std::string& key) { return w.at(key).to(torch::kFloat64); };
  const auto bn = [&](const torch::Tensor& x, const std::string& prefix) {
    const auto channel = [](const torch::Tensor& v) { return v.view({1, -1, 1, 1}); };
    return (x - channel(p(prefix + ".running_mean"))) / (channel(p(prefix + ".running_var")) + 1e-5).sqrt() *
               channel(p(prefix + ".weight")) +
           channel(p(prefix + ".bias"));
  };
  const auto conv = [&](const torch::Tensor& x, const std::string& key, int64_t stride, int64_t padding) {
    return torch::conv2d(x, p(key), {}, stride, padding);
  };
  torch::Tensor x = torch::relu(bn(conv(input.to(torch::kFloat64), "conv1.weight", 2, 3), "bn1"));
  x = torch::max_pool2d(x, 3, 2, 1);
  const int blocks[] = {3, 4, 6, 3};
  for (int layer = 1; layer <= 4; ++layer) {
    for (int b = 0; b < blocks[layer - 1]; ++b) {
      const std::string name = "layer" + std::to_string(layer) + "." + std::to_string(b);
      const int64_t stride = b == 0 && layer > 1 ? 2 : 1;
      torch::Tensor y = torch::relu(bn(conv(x, name + ".conv1.weight", stride, 1), name + ".bn1"));
      y = bn(conv(y, name + ".conv2.weight", 1, 1), name + ".bn2");
      const torch::Tensor shortcut =
          stride == 2 ? bn(conv(x, name + ".downsample.0.weight", 2, 0), name + ".downsample.1") : x;
      x = torch::relu(y + shortcut);
    }
  }
  x = x.mean({2, 3});  // [N, 512]
  return torch::matmul(x, p("fc.weight").t()) + p("fc.bias");
}

// Runs everywhere (CI included): the module against the functional ResNet-34 above, on random weights with
// non-trivial batch-norm statistics.
TEST(FairFaceResNet34, MatchesAFunctionalResNet34OnTheSameWeights) {
  FairFaceResNet34 model = random_model();
  torch::manual_seed(11);
  const torch::Tensor input = torch::randn({2, 3, 96, 80});
  torch::NoGradGuard no_grad;
  const torch::Tensor ours = model->forward(input);
  const torch::Tensor expected = reference_resnet34(module_state_dict(*model), input);
  ASSERT_EQ(ours.sizes(), expected.sizes());
  const double scale = std::max(1.0, expected.abs().max().item<double>());
  EXPECT_LE((ours.to(torch::kFloat64) - expected).abs().max().item<double>(), 1e-4 * scale);
}

// Parity with torchvision itself needs torchvision, which the CI machine does not have (no Python stack, by
// design): tools/faces/fairface_torchvision_check.py writes the reference on a host that has it (the GPU host,
// bench/run_gpu.sh tests mode) and runs this test with FAIRDIFF_FAIRFACE_REFERENCE set. The functional
// ResNet-34 test above is what runs in CI.
TEST(FairFaceResNet34, MatchesTorchvisionReference) {
  const char* dir_env = std::getenv("FAIRDIFF_FAIRFACE_REFERENCE");
  if (!dir_env) GTEST_SKIP() << "set by tools/faces/fairface_torchvision_check.py on a host with torchvision";
  const fs::path dir = dir_env;
  std::ifstream in(dir / "reference.pt", std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  c10::Dict<c10::IValue, c10::IValue> reference = torch::pickle_load(bytes).toGenericDict();
  torch::Tensor input = reference.at("input").toTensor(), logits = reference.at("logits").toTensor();
  if (fs::exists(dir / "ordered.pt")) {
    // model.state_dict() saved as is: LibTorch cannot unpickle an OrderedDict; the error says how to re-save.
    try {
      read_torch_state_dict(dir / "ordered.pt");
      ADD_FAILURE() << "expected InputError for an OrderedDict state dict";
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find("OrderedDict"), std::string::npos) << e.what();
    }
  }
  std::vector<fs::path> files = {dir / "weights.pt"};
  if (fs::exists(dir / "weights.safetensors")) files.push_back(dir / "weights.safetensors");
  std::vector<torch::Device> devices = {torch::kCPU};
  if (torch::cuda::is_available()) devices.push_back(torch::Device(torch::kCUDA, 0));
  at::globalContext().setAllowTF32CuDNN(false);  // TF32 convolutions would differ by ~1e-3
  at::globalContext().setAllowTF32CuBLAS(false);
  for (const auto& file : files) {
    FairFaceResNet34 model;
    load_state_dict_strict(*model, read_torch_state_dict(file), file.string());
    model->eval();
    for (const auto& device : devices) {
      model->to(device);
      torch::NoGradGuard no_grad;
      torch::Tensor ours = model->forward(input.to(device)).to(torch::kCPU);
      // CUDA against torchvision on CUDA (the same cuDNN convolutions), CPU against CPU.
      const bool cuda_reference = device.is_cuda() && reference.contains("logits_cuda");
      const torch::Tensor expected = cuda_reference ? reference.at("logits_cuda").toTensor() : logits;
      const double diff = (ours - expected).abs().max().item<double>();
      std::printf("fairface %s on %s: max|diff| vs torchvision %.3g\n", file.filename().c_str(), device.str().c_str(),
                  diff);
      EXPECT_LE(diff, 1e-4) << file << " on " << device.str();
    }
  }
}

}  // namespace
}  // namespace fairdiff
