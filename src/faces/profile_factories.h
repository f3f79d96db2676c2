// Constructors of the profiles whose models live in their own files (seed_profile.cpp, fairface_resnet34.cpp).
#pragma once

#include <filesystem>
#include <memory>

#include "faces/face_analyzer.h"

namespace fairdiff {

struct ProfileOptions;

// The study's stack; UnsupportedError when this build has no OpenCV.
std::unique_ptr<FaceAnalyzer> make_seed_analyzer(const ProfileOptions& options);
std::unique_ptr<AttributeClassifier> make_fairface_classifier(const std::filesystem::path& weights);

}  // namespace fairdiff
