#include "faces/recognition_embedder.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "core/error.h"
#include "faces/face_crop.h"

namespace fairdiff {

namespace {

// The five-point template of ArcFace-style 112x112 training crops (eyes as seen in the image, left first;
// nose tip; mouth centre = the mean of the two mouth corners).
const std::vector<std::pair<float, float>> kTemplate112 = {
    {38.2946f, 51.6963f}, {73.5318f, 51.5014f}, {56.0252f, 71.7366f}, {56.1396f, 92.2848f}};

}  // namespace

RecognitionEmbedderConfig RecognitionEmbedderConfig::named(const std::string& name) {
  RecognitionEmbedderConfig c;
  c.model = name;
  if (name == "mobileface") {
    c.output = "batchnorm0/add_1";
    c.embedding_size = 256;
  } else {
    throw UsageError("unknown face-recognition embedder '" + name + "' (expected mobileface)");
  }
  return c;
}

Similarity Similarity::fit(const std::vector<std::pair<float, float>>& from,
                           const std::vector<std::pair<float, float>>& to) {
  if (from.size() != to.size() || from.size() < 2)
    throw std::invalid_argument("Similarity::fit needs two or more point pairs");
  double fx = 0, fy = 0, tx = 0, ty = 0;
  for (size_t i = 0; i < from.size(); ++i)
    fx += from[i].first, fy += from[i].second, tx += to[i].first, ty += to[i].second;
  const double n = static_cast<double>(from.size());
  fx /= n, fy /= n, tx /= n, ty /= n;
  double dot = 0, cross = 0, norm = 0;
  for (size_t i = 0; i < from.size(); ++i) {
    const double px = from[i].first - fx, py = from[i].second - fy;
    const double qx = to[i].first - tx, qy = to[i].second - ty;
    dot += px * qx + py * qy;
    cross += px * qy - py * qx;
    norm += px * px + py * py;
  }
  if (norm <= 0) throw std::invalid_argument("Similarity::fit: the source points coincide");
  Similarity s;
  s.a = static_cast<float>(dot / norm);
  s.b = static_cast<float>(cross / norm);
  s.tx = static_cast<float>(tx - (s.a * fx - s.b * fy));
  s.ty = static_cast<float>(ty - (s.b * fx + s.a * fy));
  return s;
}

torch::Tensor warp_similarity(const torch::Tensor& pixels, const Similarity& m, int size) {
  namespace F = torch::nn::functional;
  torch::Tensor image = pixels.permute({2, 0, 1}).unsqueeze(0).to(torch::kFloat);  // [1, 3, H, W]
  const double zoom = std::hypot(m.a, m.b);                                        // output pixels per image pixel
  if (zoom <= 0) throw std::invalid_argument("warp_similarity: degenerate transform");
  // Image pixel (x, y) of output pixel (u, v): the inverse similarity.
  const double inv = 1.0 / (static_cast<double>(m.a) * m.a + static_cast<double>(m.b) * m.b);
  double offset = 0, step = 1;  // pooled coordinate = (x - offset) / step
  const int pool = static_cast<int>(std::floor(1.0 / zoom));
  if (pool >= 2) {
    image = F::avg_pool2d(image, F::AvgPool2dFuncOptions(pool).stride(pool).ceil_mode(true).count_include_pad(false));
    offset = (pool - 1) / 2.0;
    step = pool;
  }
  const int64_t h = image.size(2), w = image.size(3);
  torch::Tensor grid = torch::empty({1, size, size, 2}, torch::kFloat);
  auto g = grid.accessor<float, 4>();
  for (int v = 0; v < size; ++v) {
    for (int u = 0; u < size; ++u) {
      const double du = u - m.tx, dv = v - m.ty;
      const double x = inv * (m.a * du + m.b * dv), y = inv * (-m.b * du + m.a * dv);
      g[0][v][u][0] = static_cast<float>((2.0 * ((x - offset) / step) + 1.0) / static_cast<double>(w) - 1.0);
      g[0][v][u][1] = static_cast<float>((2.0 * ((y - offset) / step) + 1.0) / static_cast<double>(h) - 1.0);
    }
  }
  torch::Tensor out = F::grid_sample(
      image, grid, F::GridSampleFuncOptions().mode(torch::kBilinear).padding_mode(torch::kZeros).align_corners(false));
  return out.permute({0, 2, 3, 1}).contiguous();  // [1, S, S, 3]
}

RecognitionEmbedder::RecognitionEmbedder(const std::filesystem::path& models_dir, RecognitionEmbedderConfig config)
    : config_(std::move(config)), model_(tfjs::GraphModel::load(models_dir / (config_.model + ".json"))) {}

torch::Tensor RecognitionEmbedder::prepare(const FaceImage& image, const FaceBox& face) const {
  if (!config_.align || face.landmarks.size() < 4) {
    return crop_square(image.pixels, face, config_.crop_scale, config_.input_size);
  }
  std::vector<std::pair<float, float>> points(face.landmarks.begin(), face.landmarks.begin() + 4);
  if (points[0].first > points[1].first) std::swap(points[0], points[1]);  // the eye on the image's left first
  std::vector<std::pair<float, float>> target = kTemplate112;
  const float k = static_cast<float>(config_.input_size) / 112.0f;
  for (auto& [x, y] : target) x *= k, y *= k;
  return warp_similarity(image.pixels, Similarity::fit(points, target), config_.input_size);
}

torch::Tensor RecognitionEmbedder::embed(const FaceImage& image, const FaceBox& face) {
  torch::Tensor input = prepare(image, face) * config_.input_scale + config_.input_offset;
  tfjs::Values out = model_->execute({{model_->inputs().at(0).name, input}}, {config_.output});
  torch::Tensor e = out.at(0).to(torch::kCPU).to(torch::kFloat).reshape({-1}).clone();
  if (e.numel() != config_.embedding_size) {
    throw InputError(config_.model + ".json: the descriptor has " + std::to_string(e.numel()) + " values, expected " +
                     std::to_string(config_.embedding_size));
  }
  return e;
}

ConcatEmbedder::ConcatEmbedder(std::vector<std::shared_ptr<FaceEmbedder>> parts) : parts_(std::move(parts)) {
  if (parts_.empty()) throw UsageError("ConcatEmbedder needs at least one embedder");
}

std::string ConcatEmbedder::name() const {
  std::string n;
  for (const auto& p : parts_) n += (n.empty() ? "" : "+") + p->name();
  return n;
}

int64_t ConcatEmbedder::embedding_size() const {
  int64_t d = 0;
  for (const auto& p : parts_) d += p->embedding_size();
  return d;
}

torch::Tensor ConcatEmbedder::embed(const FaceImage& image, const FaceBox& face) {
  std::vector<torch::Tensor> parts;
  for (const auto& p : parts_) parts.push_back(l2_normalize(p->embed(image, face)));
  return torch::cat(parts);
}

FaceImage mirror_image(const FaceImage& image) {
  FaceImage mirrored;
  mirrored.rgb = image.rgb;
  const size_t w = static_cast<size_t>(image.width()), c = static_cast<size_t>(image.rgb.channels);
  for (size_t y = 0; y < static_cast<size_t>(image.height()); ++y) {
    const uint8_t* from = &image.rgb.pixels[y * w * c];
    uint8_t* to = &mirrored.rgb.pixels[y * w * c];
    for (size_t x = 0; x < w; ++x) std::copy_n(from + (w - 1 - x) * c, c, to + x * c);
  }
  mirrored.pixels = image.pixels.flip({1}).contiguous();  // the same floats, not converted again
  return mirrored;
}

FaceBox mirror_box(const FaceBox& box, int image_width) {
  FaceBox m = box;
  const float w = static_cast<float>(image_width);
  m.x0 = w - box.x1;
  m.x1 = w - box.x0;
  for (auto& [x, y] : m.landmarks) x = w - x;
  return m;
}

torch::Tensor FlipAveragedEmbedder::embed(const FaceImage& image, const FaceBox& face) {
  torch::Tensor a = inner_->embed(image, face);
  torch::Tensor b = inner_->embed(mirror_image(image), mirror_box(face, image.width()));
  return (a + b) * 0.5;
}

}  // namespace fairdiff
