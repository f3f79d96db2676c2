#include "faces/face_analyzer.h"

#include <algorithm>

#include "faces/face_crop.h"

namespace fairdiff {

FaceAnalyzer::FaceAnalyzer(std::string profile, std::unique_ptr<FaceDetector> detector,
                           std::vector<std::unique_ptr<AttributeClassifier>> classifiers, RaceTaxonomy race_taxonomy,
                           AnalyzerOptions options)
    : profile_(std::move(profile)),
      detector_(std::move(detector)),
      classifiers_(std::move(classifiers)),
      race_taxonomy_(race_taxonomy),
      options_(options) {}

std::vector<std::string> FaceAnalyzer::classifier_names() const {
  std::vector<std::string> names;
  for (const auto& c : classifiers_) names.push_back(c->name());
  return names;
}

std::vector<FaceBox> FaceAnalyzer::detect(const FaceImage& image) {
  std::vector<FaceBox> boxes = detector_->detect(image);
  if (boxes.empty() && options_.pad_fraction > 0) {
    int offset = 0;
    FaceImage padded = pad_image(image, options_.pad_fraction, options_.pad_fill, &offset);
    boxes = detector_->detect(padded);
    for (auto& b : boxes) {
      b.x0 -= static_cast<float>(offset), b.x1 -= static_cast<float>(offset);
      b.y0 -= static_cast<float>(offset), b.y1 -= static_cast<float>(offset);
      for (auto& [x, y] : b.landmarks) x -= static_cast<float>(offset), y -= static_cast<float>(offset);
    }
  }
  // Clip to the image; drop boxes that end up (almost) empty.
  std::vector<FaceBox> kept;
  const float w = static_cast<float>(image.width()), h = static_cast<float>(image.height());
  for (auto b : boxes) {
    b.x0 = std::clamp(b.x0, 0.0f, w), b.x1 = std::clamp(b.x1, 0.0f, w);
    b.y0 = std::clamp(b.y0, 0.0f, h), b.y1 = std::clamp(b.y1, 0.0f, h);
    if (b.width() >= 2 && b.height() >= 2) kept.push_back(b);
  }
  return kept;
}

ImageAnalysis FaceAnalyzer::analyze(const Image& image) {
  return analyze(FaceImage::from(image));
}

ImageAnalysis FaceAnalyzer::analyze(const FaceImage& image) {
  ImageAnalysis result;
  result.width = image.width();
  result.height = image.height();
  const std::vector<FaceBox> boxes = detect(image);
  for (const FaceBox& box : boxes) {
    Face face;
    face.box = box;
    for (auto& classifier : classifiers_) {
      for (auto& p : classifier->classify(image, box)) face.attributes.predictions.push_back(std::move(p));
    }
    result.faces.push_back(std::move(face));
  }
  result.principal = largest_box(boxes);
  return result;
}

StudyLabels study_labels(const ImageAnalysis& analysis) {
  StudyLabels labels;
  if (analysis.principal < 0) return labels;
  const FaceAttributes& a = analysis.faces[analysis.principal].attributes;
  if (const auto* g = a.primary("gender")) labels.gender = g->label() == "male" ? "Male" : "Female";
  if (const auto* r = a.primary("race")) {
    // The study's tables use DeepFace's 6 classes: FairFace's 7 are mapped (East + Southeast Asian -> asian);
    // faces.csv keeps every class's probability.
    const auto taxonomy = detect_race_taxonomy(r->labels);
    labels.race = taxonomy == RaceTaxonomy::fairface7
                      ? map_race(r->label(), RaceTaxonomy::fairface7, RaceTaxonomy::deepface6)
                      : r->label();
  }
  if (const auto* age = a.primary("age")) {
    const auto& study = study_age_ranges();
    if (std::find(study.begin(), study.end(), age->label()) != study.end())
      labels.age = age->label();
    else if (age->years)
      labels.age = study_age_range(*age->years);
  }
  return labels;
}

}  // namespace fairdiff
