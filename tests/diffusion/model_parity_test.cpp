// Parity of the UNet and the VAE with the reference fixtures (tiny-sd1: conv projections and 8 heads;
// tiny-sd2: linear projections and per-block head counts).
#include <gtest/gtest.h>

#include <fstream>

#include "core/attention.h"
#include "core/error.h"
#include "core/safetensors.h"
#include "diffusion/autoencoder_kl.h"
#include "diffusion/unet_2d_condition.h"
#include "test_paths.h"

namespace fairdiff {
namespace {

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  EXPECT_EQ(a.sizes(), b.sizes());
  return (a - b).abs().max().item<double>();
}

class ModelParity : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { set_fused_attention_enabled(false); }
  std::filesystem::path model_dir() const { return test::fixtures_dir() / GetParam(); }
  TensorMap reference() const { return read_safetensors(model_dir() / "reference.safetensors").tensors; }
};

TEST_P(ModelParity, UNetMatchesReference) {
  torch::NoGradGuard no_grad;
  UNet2DConditionModel unet = load_unet(model_dir() / "unet", torch::kFloat32);
  TensorMap ref = reference();
  torch::Tensor out =
      unet->forward(ref.at("unet.in.sample"), ref.at("unet.in.timesteps"), ref.at("unet.in.encoder_hidden_states"));
  EXPECT_LE(max_abs_diff(out, ref.at("unet.out")), 1e-4);
}

TEST_P(ModelParity, VaeDecodeMatchesReference) {
  torch::NoGradGuard no_grad;
  AutoencoderKL vae = load_vae(model_dir() / "vae", torch::kFloat32);
  TensorMap ref = reference();
  EXPECT_EQ(vae->config().latent_scale_factor(), 2);
  EXPECT_LE(max_abs_diff(vae->decode(ref.at("vae.decode.in")), ref.at("vae.decode.out")), 1e-4);
}

TEST_P(ModelParity, VaeEncodeMatchesReference) {
  torch::NoGradGuard no_grad;
  AutoencoderKL vae = load_vae(model_dir() / "vae", torch::kFloat32);
  TensorMap ref = reference();
  LatentDistribution dist = vae->encode(ref.at("vae.encode.in"));
  EXPECT_LE(max_abs_diff(dist.mean, ref.at("vae.encode.mean")), 1e-4);
  EXPECT_LE(max_abs_diff(dist.std, ref.at("vae.encode.std")), 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ModelParity, ::testing::Values("tiny-sd1", "tiny-sd2"));

TEST(ModelLoading, NamesEveryMismatchedTensor) {
  auto dir = test::scratch_dir("unet_bad_weights");
  std::filesystem::copy_file(test::fixtures_dir() / "tiny-sd2" / "unet" / "config.json", dir / "config.json");
  TensorMap weights =
      read_safetensors(test::fixtures_dir() / "tiny-sd2" / "unet" / "diffusion_pytorch_model.safetensors").tensors;
  weights.erase("conv_in.bias");
  weights["conv_out.weight"] = torch::zeros({4, 32, 1, 1});
  weights["extra.weight"] = torch::zeros({1});
  write_safetensors(dir / "diffusion_pytorch_model.safetensors", weights);
  try {
    load_unet(dir, torch::kFloat32);
    FAIL() << "expected an InputError";
  } catch (const InputError& e) {
    std::string message = e.what();
    EXPECT_NE(message.find("conv_in.bias"), std::string::npos) << message;
    EXPECT_NE(message.find("conv_out.weight (file [4, 32, 1, 1], model [4, 32, 3, 3])"), std::string::npos) << message;
    EXPECT_NE(message.find("extra.weight"), std::string::npos) << message;
  }
}

TEST(ModelLoading, MissingWeightsAndBinOnly) {
  auto dir = test::scratch_dir("unet_bin_only");
  std::filesystem::copy_file(test::fixtures_dir() / "tiny-sd2" / "unet" / "config.json", dir / "config.json");
  { std::ofstream(dir / "diffusion_pytorch_model.bin") << "pickle"; }
  try {
    load_unet(dir, torch::kFloat32);
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(".bin"), std::string::npos) << e.what();
  }
}

TEST(ModelLoading, Fp16WeightsLoadIntoTheComputeDtype) {
  auto dir = test::scratch_dir("vae_fp16");
  std::filesystem::copy_file(test::fixtures_dir() / "tiny-sd2" / "vae" / "config.json", dir / "config.json");
  TensorMap weights =
      read_safetensors(test::fixtures_dir() / "tiny-sd2" / "vae" / "diffusion_pytorch_model.safetensors").tensors;
  for (auto& [name, t] : weights) t = t.to(torch::kFloat16);
  write_safetensors(dir / "diffusion_pytorch_model.fp16.safetensors", weights);
  AutoencoderKL vae = load_vae(dir, torch::kFloat32);
  EXPECT_EQ(vae->decoder->conv_in->weight.scalar_type(), torch::kFloat32);
}

}  // namespace
}  // namespace fairdiff
