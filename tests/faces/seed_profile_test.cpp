// The seed profile's loaders on files of the real formats that this test writes with random weights:
// Caffe V1 .caffemodel (protobuf NetParameter with `layers`, as Levi & Hassner's gender_net/age_net are
// stored) and DeepFace's Keras .h5 with its real layer names and shapes; the SSD detector on real photos.
#include <gtest/gtest.h>

#include <fstream>

#include "core/error.h"
#include "core/image.h"
#include "faces/deepface_race.h"
#include "faces/evaluation.h"
#include "faces/keras_h5.h"
#include "faces/profiles.h"
#include "faces/seed_opencv.h"
#include "test_paths.h"

namespace fairdiff {
namespace {

namespace fs = std::filesystem;

fs::path models_dir() {
  return test::shared_dir() / "models/opencv_face_detector";
}

// Measured detection rate of the SSD on fairface_margin125: 0.987 (docs/classifiers.md), minus 1.5 points.
const double kSsdFairfaceFloor = 0.972;

// --- a minimal protobuf writer for Caffe's NetParameter (caffe.proto, V1 layers) ---
void varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}
void field_varint(std::string& out, int field, uint64_t v) {
  varint(out, static_cast<uint64_t>(field) << 3);
  varint(out, v);
}
void field_bytes(std::string& out, int field, const std::string& payload) {
  varint(out, (static_cast<uint64_t>(field) << 3) | 2);
  varint(out, payload.size());
  out += payload;
}

// BlobProto with the legacy num/channels/height/width dims (fields 1-4) and packed float data (field 5).
std::string blob(const std::vector<int64_t>& nchw, const torch::Tensor& values) {
  std::string b;
  for (int i = 0; i < 4; ++i) field_varint(b, i + 1, static_cast<uint64_t>(nchw[i]));
  torch::Tensor flat = values.contiguous().to(torch::kFloat);
  field_bytes(b, 5, std::string(reinterpret_cast<const char*>(flat.data_ptr<float>()), flat.numel() * sizeof(float)));
  return b;
}

struct CaffeLayer {
  std::string name;
  int type;                           // V1LayerParameter.LayerType: CONVOLUTION = 4, INNER_PRODUCT = 14
  std::vector<int64_t> weight_shape;  // num, channels, height, width
  torch::Tensor weights, bias;
};

std::vector<CaffeLayer> levi_hassner_layers(int outputs) {
  std::vector<CaffeLayer> layers = {
      {"conv1", 4, {96, 3, 7, 7}, {}, {}},    {"conv2", 4, {256, 96, 5, 5}, {}, {}},
      {"conv3", 4, {384, 256, 3, 3}, {}, {}}, {"fc6", 14, {1, 1, 512, 384 * 7 * 7}, {}, {}},
      {"fc7", 14, {1, 1, 512, 512}, {}, {}},  {"fc8", 14, {1, 1, outputs, 512}, {}, {}}};
  for (auto& l : layers) {
    const int64_t fan_in =
        l.weight_shape[1] * l.weight_shape[2] * l.weight_shape[3] / (l.type == 14 ? l.weight_shape[2] : 1);
    l.weights = torch::randn(l.weight_shape) / std::sqrt(static_cast<double>(fan_in));
    l.bias = torch::randn({l.type == 4 ? l.weight_shape[0] : l.weight_shape[2]}) * 0.1;
  }
  return layers;
}

void write_caffemodel(const fs::path& path, const std::vector<CaffeLayer>& layers) {
  std::string net;
  field_bytes(net, 1, "CaffeNet");
  for (const auto& l : layers) {
    std::string layer;
    field_bytes(layer, 4, l.name);
    field_varint(layer, 5, static_cast<uint64_t>(l.type));
    field_bytes(layer, 6, blob(l.weight_shape, l.weights));
    field_bytes(layer, 6, blob({1, 1, 1, l.bias.size(0)}, l.bias));
    field_bytes(net, 2, layer);
  }
  std::ofstream(path, std::ios::binary) << net;
}

// DeepFace's race model as Keras names it: VGG-Face's Sequential layers (auto-named) + the "predictions" head.
std::vector<KerasLayerWeights> deepface_layers(const VggFaceRaceConfig& config) {
  std::vector<KerasLayerWeights> layers;
  int conv = 0, pad = 0, pool = 0, in = 3;
  auto add_conv = [&](int kernel, int out) {
    const std::string name = "conv2d_" + std::to_string(++conv);
    torch::Tensor k = torch::randn({kernel, kernel, in, out}) / std::sqrt(static_cast<double>(kernel * kernel * in));
    layers.push_back({name, {name + "/kernel:0", name + "/bias:0"}, {k, torch::randn({out}) * 0.05}});
    in = out;
  };
  for (size_t b = 0; b < config.block_convs.size(); ++b) {
    for (int c = 0; c < config.block_convs[b]; ++c) {
      layers.push_back({"zero_padding2d_" + std::to_string(++pad), {}, {}});
      add_conv(3, config.block_channels[b]);
    }
    layers.push_back({"max_pooling2d_" + std::to_string(++pool), {}, {}});
  }
  add_conv(config.fc6_kernel, config.fc_channels);
  layers.push_back({"dropout_1", {}, {}});
  add_conv(1, config.fc_channels);
  layers.push_back({"dropout_2", {}, {}});
  torch::Tensor k = torch::randn({1, 1, in, config.num_classes}) * 0.05;
  layers.push_back(
      {"predictions", {"predictions/kernel:0", "predictions/bias:0"}, {k, torch::zeros({config.num_classes})}});
  layers.push_back({"flatten_1", {}, {}});
  layers.push_back({"activation_1", {}, {}});
  return layers;
}

TEST(KerasH5, LoadsDeepFaceRaceLayoutAndNamesBadLayers) {
  if (!keras_h5_supported()) {
    EXPECT_THROW(read_keras_weights("x.h5"), UnsupportedError);
    return;
  }
  const fs::path dir = test::scratch_dir("keras_small");
  VggFaceRaceConfig small;
  small.block_channels = {4, 4, 8, 8, 8};
  small.fc_channels = 16;
  torch::manual_seed(1);
  auto layers = deepface_layers(small);
  write_keras_weights(dir / "race.h5", layers);
  VggFaceRace model(small);
  load_deepface_race_weights(model, dir / "race.h5");
  // Keras kernel [KH, KW, C_in, C_out] element (1, 2, 0, 3) is torch's [C_out, C_in, KH, KW] element (3, 0, 1, 2).
  EXPECT_FLOAT_EQ(model->layers()[0]->weight[3][0][1][2].item<float>(), layers[1].values[0][1][2][0][3].item<float>());
  const auto& fc6 = model->layers()[13];
  EXPECT_FLOAT_EQ(fc6->weight[5][7][6][1].item<float>(), layers.end()[-7].values[0][6][1][7][5].item<float>());

  layers[3].values[0] = torch::zeros({3, 3, 5, 4});  // conv2d_2 with the wrong input width
  write_keras_weights(dir / "bad.h5", layers);
  try {
    load_deepface_race_weights(model, dir / "bad.h5");
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("conv2d_2"), std::string::npos) << e.what();
  }
  std::ofstream(dir / "not.h5") << "not hdf5";
  EXPECT_THROW(load_deepface_race_weights(model, dir / "not.h5"), InputError);
}

TEST(SeedProfile, RunsTheStudysStackOnRealFormatFiles) {
  ProfileOptions options;
  options.ssd_detector_dir = models_dir();
  const fs::path dir = test::scratch_dir("seed_profile");
  options.gender_prototxt = models_dir() / "gender_deploy.prototxt";
  options.age_prototxt = models_dir() / "age_deploy.prototxt";
  options.gender_caffemodel = dir / "gender_net.caffemodel";
  options.age_caffemodel = dir / "age_net.caffemodel";
  options.race_h5 = dir / "race_model_single_batch.h5";
  torch::manual_seed(2);
  auto gender_layers = levi_hassner_layers(2);
  write_caffemodel(options.gender_caffemodel, gender_layers);
  write_caffemodel(options.age_caffemodel, levi_hassner_layers(8));
  if (!opencv_available() || !keras_h5_supported()) {
    EXPECT_THROW(make_analyzer("seed", options), UnsupportedError);
    return;
  }
  write_keras_weights(options.race_h5, deepface_layers(VggFaceRaceConfig{}));  // real shapes: 537 MB

  CaffeAgeGenderClassifier caffe(options.gender_prototxt, options.gender_caffemodel, options.age_prototxt,
                                 options.age_caffemodel);
  std::vector<float> conv2 = caffe.layer_weights(true, "conv2", 0);
  ASSERT_EQ(conv2.size(), static_cast<size_t>(256 * 96 * 5 * 5));
  EXPECT_FLOAT_EQ(conv2[12345], gender_layers[1].weights.reshape({-1})[12345].item<float>());
  std::vector<float> fc8_bias = caffe.layer_weights(true, "fc8", 1);
  ASSERT_EQ(fc8_bias.size(), 2u);
  EXPECT_FLOAT_EQ(fc8_bias[1], gender_layers[5].bias[1].item<float>());

  auto analyzer = make_analyzer("seed", options);
  ImageAnalysis a = analyzer->analyze(read_image(test::shared_dir() / "faces/fairface_margin125/fairface_0010.jpg"));
  ASSERT_GE(a.principal, 0) << "the SSD detector should find the face of this FairFace photo";
  const FaceAttributes& attributes = a.faces[a.principal].attributes;
  ASSERT_NE(attributes.primary("gender"), nullptr);
  ASSERT_NE(attributes.primary("race"), nullptr);
  EXPECT_EQ(attributes.primary("race")->labels, deepface_race_labels());
  float sum = 0;
  for (float p : attributes.primary("race")->probabilities) sum += p;
  EXPECT_NEAR(sum, 1.0f, 1e-4);
  EXPECT_EQ(attributes.primary("age")->labels.size(), 8u);
  StudyLabels labels = study_labels(a);
  EXPECT_TRUE(labels.gender == "Male" || labels.gender == "Female");
  EXPECT_EQ(labels.age.front(), '(');
}

TEST(SeedProfile, SsdDetectorFindsFacesInRealPhotos) {
  if (!opencv_available()) GTEST_SKIP() << "this build has no OpenCV (checked by the UnsupportedError test above)";
  OpenCvSsdDetector detector(models_dir() / "opencv_face_detector_uint8.pb",
                             models_dir() / "opencv_face_detector.pbtxt");
  FaceAnalyzer analyzer("seed",
                        std::make_unique<OpenCvSsdDetector>(models_dir() / "opencv_face_detector_uint8.pb",
                                                            models_dir() / "opencv_face_detector.pbtxt"),
                        {}, RaceTaxonomy::deepface6);
  const fs::path faces = test::shared_dir() / "faces/fairface_margin125";
  LabeledSet set = read_labeled_set(faces, faces / "labels.csv");
  EvaluationOptions options;
  options.show_progress = false;
  Json report = evaluate_classifier(analyzer, set, options).to_json();
  std::printf("seed SSD detection rate on fairface_margin125: %.4f\n", report["detection_rate"].get<double>());
  EXPECT_GE(report["detection_rate"].get<double>(), kSsdFairfaceFloor);

  Image gray{512, 512, 3, std::vector<uint8_t>(512 * 512 * 3, 128)};
  EXPECT_TRUE(detector.detect(FaceImage::from(gray)).empty());
}

}  // namespace
}  // namespace fairdiff
