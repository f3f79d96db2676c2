// Profile `seed`: the study's SSD detector, Caffe gender/age networks and DeepFace's race model.
#include "core/error.h"
#include "faces/deepface_race.h"
#include "faces/profile_factories.h"
#include "faces/profiles.h"
#include "faces/seed_opencv.h"

namespace fairdiff {

std::unique_ptr<FaceAnalyzer> make_seed_analyzer(const ProfileOptions& options) {
  SsdConfig ssd;
  if (options.score_threshold >= 0) ssd.confidence = options.score_threshold;
  auto detector = std::make_unique<OpenCvSsdDetector>(options.ssd_detector_dir / "opencv_face_detector_uint8.pb",
                                                      options.ssd_detector_dir / "opencv_face_detector.pbtxt", ssd);
  std::vector<std::unique_ptr<AttributeClassifier>> classifiers;
  classifiers.push_back(std::make_unique<CaffeAgeGenderClassifier>(options.gender_prototxt, options.gender_caffemodel,
                                                                   options.age_prototxt, options.age_caffemodel));
  classifiers.push_back(std::make_unique<DeepFaceRaceClassifier>(options.race_h5));
  return std::make_unique<FaceAnalyzer>("seed", std::move(detector), std::move(classifiers), RaceTaxonomy::deepface6,
                                        options.analyzer);
}

}  // namespace fairdiff
