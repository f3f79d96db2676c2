#include "faces/seed_opencv.h"

#include <algorithm>

#include "core/error.h"

#ifdef FAIRDIFF_HAVE_OPENCV
#include <opencv2/core.hpp>
#include <opencv2/dnn.hpp>
#include <opencv2/imgproc.hpp>
#endif

namespace fairdiff {

namespace fs = std::filesystem;

#ifdef FAIRDIFF_HAVE_OPENCV

namespace {

// The study's frame: BGR (cv2.imread order) resized to 640x480.
cv::Mat study_frame(const FaceImage& image, const SsdConfig& config) {
  cv::Mat rgb(image.height(), image.width(), CV_8UC3, const_cast<uint8_t*>(image.rgb.pixels.data()));
  cv::Mat bgr, frame;
  cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
  cv::resize(bgr, frame, cv::Size(config.frame_width, config.frame_height));
  return frame;
}

cv::dnn::Net load_net(const std::function<cv::dnn::Net()>& read, const std::string& what) {
  try {
    cv::dnn::Net net = read();
    if (net.empty()) throw InputError(what + ": OpenCV read an empty network");
    return net;
  } catch (const cv::Exception& e) {
    throw InputError(what + ": OpenCV cannot read it: " + e.what());
  }
}

std::vector<float> to_vector(const cv::Mat& m) {
  cv::Mat flat = m.reshape(1, 1);
  return std::vector<float>(flat.begin<float>(), flat.end<float>());
}

}  // namespace

bool opencv_available() {
  return true;
}

struct OpenCvSsdDetector::Impl {
  cv::dnn::Net net;
};

OpenCvSsdDetector::OpenCvSsdDetector(const fs::path& pb, const fs::path& pbtxt, SsdConfig config)
    : impl_(std::make_unique<Impl>()), config_(config) {
  impl_->net = load_net([&] { return cv::dnn::readNetFromTensorflow(pb.string(), pbtxt.string()); },
                        "SSD face detector " + pb.string());
}

OpenCvSsdDetector::~OpenCvSsdDetector() = default;

std::vector<FaceBox> OpenCvSsdDetector::detect(const FaceImage& image) {
  cv::Mat frame = study_frame(image, config_);
  cv::Mat blob = cv::dnn::blobFromImage(frame, 1.0, cv::Size(300, 300), cv::Scalar(104, 117, 123), true, false);
  impl_->net.setInput(blob);
  cv::Mat out = impl_->net.forward();  // [1, 1, K, 7]: image id, class, confidence, x0, y0, x1, y1 (0..1)
  cv::Mat rows(out.size[2], out.size[3], CV_32F, out.ptr<float>());
  std::vector<FaceBox> boxes;
  const float sx = static_cast<float>(image.width()), sy = static_cast<float>(image.height());
  for (int i = 0; i < rows.rows; ++i) {
    const float confidence = rows.at<float>(i, 2);
    if (!(confidence > config_.confidence)) continue;
    // The study truncates to integer pixels of the 640x480 frame; keep that, then map back to the image.
    const float fx = static_cast<float>(config_.frame_width), fy = static_cast<float>(config_.frame_height);
    FaceBox b;
    b.x0 = static_cast<float>(static_cast<int>(rows.at<float>(i, 3) * fx)) / fx * sx;
    b.y0 = static_cast<float>(static_cast<int>(rows.at<float>(i, 4) * fy)) / fy * sy;
    b.x1 = static_cast<float>(static_cast<int>(rows.at<float>(i, 5) * fx)) / fx * sx;
    b.y1 = static_cast<float>(static_cast<int>(rows.at<float>(i, 6) * fy)) / fy * sy;
    b.score = confidence;
    boxes.push_back(b);
  }
  std::stable_sort(boxes.begin(), boxes.end(), [](const FaceBox& a, const FaceBox& b) { return a.score > b.score; });
  return boxes;
}

struct CaffeAgeGenderClassifier::Impl {
  cv::dnn::Net gender, age;
};

CaffeAgeGenderClassifier::CaffeAgeGenderClassifier(const fs::path& gender_prototxt, const fs::path& gender_model,
                                                   const fs::path& age_prototxt, const fs::path& age_model,
                                                   SsdConfig frame)
    : impl_(std::make_unique<Impl>()), frame_(frame) {
  impl_->gender = load_net([&] { return cv::dnn::readNetFromCaffe(gender_prototxt.string(), gender_model.string()); },
                           "gender_net " + gender_model.string());
  impl_->age = load_net([&] { return cv::dnn::readNetFromCaffe(age_prototxt.string(), age_model.string()); },
                        "age_net " + age_model.string());
}

CaffeAgeGenderClassifier::~CaffeAgeGenderClassifier() = default;

std::vector<AttributePrediction> CaffeAgeGenderClassifier::classify(const FaceImage& image, const FaceBox& face) {
  cv::Mat frame = study_frame(image, frame_);
  const float sx = static_cast<float>(frame_.frame_width) / static_cast<float>(image.width());
  const float sy = static_cast<float>(frame_.frame_height) / static_cast<float>(image.height());
  const int padding = 20;
  // utils.py: frame[max(0, y1 - 20) : min(y2 + 20, H - 1), max(0, x1 - 20) : min(x2 + 20, W - 1)]
  const int x0 = std::max(0, static_cast<int>(face.x0 * sx + 0.5f) - padding);
  const int y0 = std::max(0, static_cast<int>(face.y0 * sy + 0.5f) - padding);
  const int x1 = std::min(static_cast<int>(face.x1 * sx + 0.5f) + padding, frame.cols - 1);
  const int y1 = std::min(static_cast<int>(face.y1 * sy + 0.5f) + padding, frame.rows - 1);
  if (x1 <= x0 || y1 <= y0) return {};
  cv::Mat crop = frame(cv::Rect(x0, y0, x1 - x0, y1 - y0));
  cv::Mat blob = cv::dnn::blobFromImage(crop, 1.0, cv::Size(227, 227),
                                        cv::Scalar(78.4263377603, 87.7689143744, 114.895847746), false, false);
  impl_->gender.setInput(blob);
  std::vector<float> g = to_vector(impl_->gender.forward());
  impl_->age.setInput(blob);
  std::vector<float> a = to_vector(impl_->age.forward());
  if (g.size() != 2 || a.size() != 8) {
    throw InputError("gender_net/age_net give " + std::to_string(g.size()) + " and " + std::to_string(a.size()) +
                     " outputs, expected 2 and 8");
  }
  AttributePrediction gender{"gender", "caffe", {"male", "female"}, g, {}};
  AttributePrediction age{
      "age", "caffe", {"(0-2)", "(4-6)", "(8-12)", "(15-20)", "(25-32)", "(38-43)", "(48-53)", "(60-100)"}, a, {}};
  static const float centres[] = {1, 5, 10, 17.5f, 28.5f, 40.5f, 50.5f, 70};
  float years = 0;
  for (int i = 0; i < 8; ++i) years += centres[i] * a[i];
  age.years = years;
  return {gender, age};
}

std::vector<float> CaffeAgeGenderClassifier::layer_weights(bool gender_net, const std::string& layer, int index) const {
  cv::dnn::Net& net = gender_net ? impl_->gender : impl_->age;
  const int id = net.getLayerId(layer);
  if (id < 0) throw InputError("no layer '" + layer + "' in the network");
  return to_vector(net.getParam(id, index));
}

#else

bool opencv_available() {
  return false;
}

struct OpenCvSsdDetector::Impl {};
struct CaffeAgeGenderClassifier::Impl {};

OpenCvSsdDetector::OpenCvSsdDetector(const fs::path& pb, const fs::path&, SsdConfig config) : config_(config) {
  throw UnsupportedError("the seed profile's SSD face detector (" + pb.string() + ") needs OpenCV, which this " +
                         "build of fairdiff lacks (install libopencv-dev and rebuild)");
}
OpenCvSsdDetector::~OpenCvSsdDetector() = default;
std::vector<FaceBox> OpenCvSsdDetector::detect(const FaceImage&) {
  return {};
}

CaffeAgeGenderClassifier::CaffeAgeGenderClassifier(const fs::path&, const fs::path& gender_model, const fs::path&,
                                                   const fs::path&, SsdConfig frame)
    : frame_(frame) {
  throw UnsupportedError("the seed profile's Caffe gender/age networks (" + gender_model.string() + ") need " +
                         "OpenCV, which this build of fairdiff lacks (install libopencv-dev and rebuild)");
}
CaffeAgeGenderClassifier::~CaffeAgeGenderClassifier() = default;
std::vector<AttributePrediction> CaffeAgeGenderClassifier::classify(const FaceImage&, const FaceBox&) {
  return {};
}
std::vector<float> CaffeAgeGenderClassifier::layer_weights(bool, const std::string&, int) const {
  return {};
}

#endif

}  // namespace fairdiff
