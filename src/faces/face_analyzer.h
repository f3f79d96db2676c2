// FaceAnalyzer: a profile's detector and classifiers together. Finds every face of an image, classifies each,
// and names the principal (largest) face, whose labels become the image's.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "faces/attribute_classifier.h"
#include "faces/face_detector.h"
#include "faces/taxonomy.h"

namespace fairdiff {

struct AnalyzerOptions {
  // When the detector finds nothing, detect again on the image framed by a border of this fraction of its
  // larger side (tight face crops such as UTKFace's lack the context detectors are trained with). 0: off.
  float pad_fraction = 0.5f;
  uint8_t pad_fill = 128;
};

class FaceAnalyzer {
 public:
  FaceAnalyzer(std::string profile, std::unique_ptr<FaceDetector> detector,
               std::vector<std::unique_ptr<AttributeClassifier>> classifiers, RaceTaxonomy race_taxonomy,
               AnalyzerOptions options = {});

  ImageAnalysis analyze(const Image& image);
  ImageAnalysis analyze(const FaceImage& image);
  // Detection with the padded retry, boxes clipped to the image.
  std::vector<FaceBox> detect(const FaceImage& image);

  const std::string& profile() const { return profile_; }
  std::string detector_name() const { return detector_->name(); }
  std::vector<std::string> classifier_names() const;
  // The taxonomy of the primary race prediction.
  RaceTaxonomy race_taxonomy() const { return race_taxonomy_; }

 private:
  std::string profile_;
  std::unique_ptr<FaceDetector> detector_;
  std::vector<std::unique_ptr<AttributeClassifier>> classifiers_;
  RaceTaxonomy race_taxonomy_;
  AnalyzerOptions options_;
};

// The image's labels from its principal face ("--" for each when there is none): gender "Male"/"Female",
// age as the study's age_net range, race in the profile's taxonomy (lower case; FairFace's 7 classes are mapped
// to the study's 6 DeepFace classes), as the study's CSV has them.
struct StudyLabels {
  std::string gender = "--", age = "--", race = "--";
};
StudyLabels study_labels(const ImageAnalysis& analysis);

}  // namespace fairdiff
