#include "faces/blazeface_detector.h"

#include <algorithm>

#include "core/error.h"
#include "core/strings.h"
#include "faces/face_crop.h"

namespace fairdiff {

BlazeFaceConfig BlazeFaceConfig::named(const std::string& model) {
  BlazeFaceConfig c;
  c.model = model;
  if (model == "blazeface") {
    c.input_size = 256;
    c.levels = {{16, 2}, {32, 6}};
  } else if (model == "blazeface-front" || model == "facemesh-detection-short") {
    c.input_size = 128;
    c.levels = {{8, 2}, {16, 6}};
  } else if (model == "facemesh-detection-full") {
    c.input_size = 192;
    c.levels = {{4, 1}};
    c.outputs = {"Identity:0"};  // Identity_1 is the same head for whole persons
  } else {
    throw UsageError("unknown BlazeFace model '" + model + "' (expected one of: " + join(known_models(), ", ") + ")");
  }
  return c;
}

std::vector<std::string> BlazeFaceConfig::known_models() {
  return {"blazeface", "blazeface-front", "facemesh-detection-short", "facemesh-detection-full"};
}

BlazeFaceDetector::BlazeFaceDetector(const std::filesystem::path& models_dir, BlazeFaceConfig config)
    : config_(std::move(config)) {
  model_ = tfjs::GraphModel::load(models_dir / (config_.model + ".json"));
  if (config_.outputs.empty()) {
    for (const auto& [key, node] : model_->outputs()) config_.outputs.push_back(key);
  }
  std::vector<float> centres;
  for (const auto& [stride, per_cell] : config_.levels) {
    const int cells = config_.input_size / stride;
    for (int y = 0; y < cells; ++y) {
      for (int x = 0; x < cells; ++x) {
        for (int a = 0; a < per_cell; ++a) {
          centres.push_back((static_cast<float>(x) + 0.5f) * static_cast<float>(stride));
          centres.push_back((static_cast<float>(y) + 0.5f) * static_cast<float>(stride));
        }
      }
    }
  }
  anchors_ = torch::tensor(centres).reshape({-1, 2});
}

torch::Tensor BlazeFaceDetector::raw_output(const torch::Tensor& input) const {
  const std::string input_name = model_->inputs().at(0).name;
  tfjs::Values outs = model_->execute({{input_name, input}}, config_.outputs);
  // Outputs come as [1, n, 17] (logit + regressors) or as separate [1, n, 1] logits and [1, n, 16]
  // regressors per stride; the finest stride has the most anchors and comes first.
  std::vector<torch::Tensor> logits, regressors, joined;
  for (const auto& o : outs) {
    torch::Tensor t = o.to(torch::kCPU).reshape({-1, o.size(-1)});  // [n, k]
    if (t.size(1) == 1)
      logits.push_back(t);
    else if (t.size(1) == 16)
      regressors.push_back(t);
    else if (t.size(1) == 17)
      joined.push_back(t);
    else
      throw InputError(model_->source() + ": unexpected detector output of width " + std::to_string(t.size(1)));
  }
  auto by_size = [](const torch::Tensor& a, const torch::Tensor& b) { return a.size(0) > b.size(0); };
  std::sort(logits.begin(), logits.end(), by_size);
  std::sort(regressors.begin(), regressors.end(), by_size);
  std::sort(joined.begin(), joined.end(), by_size);
  torch::Tensor all = joined.empty() ? torch::cat({torch::cat(logits, 0), torch::cat(regressors, 0)}, 1)
                                     : torch::cat(joined, 0);  // [anchors, 17]
  if (all.size(0) != anchors_.size(0)) {
    throw InputError(model_->source() + ": detector gives " + std::to_string(all.size(0)) + " anchors, expected " +
                     std::to_string(anchors_.size(0)));
  }
  return all;
}

std::vector<FaceBox> BlazeFaceDetector::detect(const FaceImage& image) {
  LetterboxTransform transform;
  // MediaPipe's input convention: RGB scaled to [-1, 1], letterbox padding at -1 (black).
  torch::Tensor input = letterbox(image.pixels, config_.input_size, 0.0f, &transform) / 127.5f - 1.0f;
  torch::Tensor raw = raw_output(input);                                     // [anchors, 17]
  torch::Tensor scores = torch::sigmoid(raw.select(1, 0).clamp(-100, 100));  // [anchors]
  torch::Tensor keep = (scores >= config_.score_threshold).nonzero().reshape({-1});
  std::vector<FaceBox> boxes;
  if (keep.numel() == 0) return boxes;
  torch::Tensor kept_raw = raw.index_select(0, keep).contiguous();
  torch::Tensor kept_anchor = anchors_.index_select(0, keep).contiguous();
  torch::Tensor kept_score = scores.index_select(0, keep).contiguous();
  auto r = kept_raw.accessor<float, 2>();
  auto a = kept_anchor.accessor<float, 2>();
  auto s = kept_score.accessor<float, 1>();
  for (int64_t i = 0; i < kept_raw.size(0); ++i) {
    const float cx = a[i][0] + r[i][1], cy = a[i][1] + r[i][2], w = r[i][3], h = r[i][4];
    FaceBox box;
    box.x0 = transform.to_image_x(cx - w / 2);
    box.y0 = transform.to_image_y(cy - h / 2);
    box.x1 = transform.to_image_x(cx + w / 2);
    box.y1 = transform.to_image_y(cy + h / 2);
    box.score = s[i];
    for (int k = 0; k < 6; ++k) {
      box.landmarks.push_back(
          {transform.to_image_x(a[i][0] + r[i][5 + 2 * k]), transform.to_image_y(a[i][1] + r[i][6 + 2 * k])});
    }
    boxes.push_back(box);
  }
  return non_max_suppression(std::move(boxes), config_.iou_threshold, config_.max_faces);
}

float intersection_over_union(const FaceBox& a, const FaceBox& b) {
  const float ix = std::max(0.0f, std::min(a.x1, b.x1) - std::max(a.x0, b.x0));
  const float iy = std::max(0.0f, std::min(a.y1, b.y1) - std::max(a.y0, b.y0));
  const float inter = ix * iy, uni = a.area() + b.area() - inter;
  return uni > 0 ? inter / uni : 0.0f;
}

std::vector<FaceBox> non_max_suppression(std::vector<FaceBox> boxes, float iou_threshold, int max_boxes) {
  std::stable_sort(boxes.begin(), boxes.end(), [](const FaceBox& a, const FaceBox& b) { return a.score > b.score; });
  std::vector<FaceBox> kept;
  for (const auto& box : boxes) {
    if (static_cast<int>(kept.size()) >= max_boxes) break;
    bool overlaps = false;
    for (const auto& k : kept) overlaps = overlaps || intersection_over_union(box, k) > iou_threshold;
    if (!overlaps) kept.push_back(box);
  }
  return kept;
}

}  // namespace fairdiff
