// Single-file checkpoints in the original layout (diffusion/single_file.h): the key lists of real SD 1.x and 2.x
// checkpoints map onto exactly the tensors of fairdiff's modules and give the real architectures; the tiny
// fixtures written in the original layout load to the same weights and generate the same images as their diffusers
// folders; `model convert` writes the folder back; bad files give one error naming the file or tensor.
#include "diffusion/single_file.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "core/error.h"
#include "core/json.h"
#include "core/safetensors.h"
#include "core/state_dict.h"
#include "diffusion/original_layout_writer.h"
#include "diffusion/single_file_keys.h"
#include "diffusion/stable_diffusion.h"
#include "test_paths.h"

namespace fairdiff {
namespace {
namespace fs = std::filesystem;

// tests/data/sd{1,2}_original_keys.txt: NAME<TAB>d0,d1,...
TensorShapes read_key_list(const fs::path& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in) << path;
  TensorShapes shapes;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const size_t tab = line.find('\t');
    std::vector<int64_t> shape;
    for (const std::string& d : split(line.substr(tab + 1), ',')) {
      if (!d.empty()) shape.push_back(std::stoll(d));
    }
    shapes[line.substr(0, tab)] = shape;
  }
  return shapes;
}

// Tensors of the listed shapes that take no memory (every element is the same one).
TensorMap stand_in_tensors(const TensorShapes& shapes) {
  TensorMap out;
  for (const auto& [name, shape] : shapes) out[name] = torch::zeros({}).expand(shape);
  return out;
}

// The converted component has exactly the module's tensor names, each with the module's shape.
void expect_exactly_the_module(const torch::nn::Module& module, const ConvertedComponent& converted,
                               const std::string& what) {
  EXPECT_TRUE(converted.unplaced.empty()) << what << ": " << join(converted.unplaced, ", ");
  const TensorMap expected = module_state_dict(module);
  for (const auto& [name, tensor] : expected) {
    auto it = converted.weights.find(name);
    if (it == converted.weights.end()) {
      ADD_FAILURE() << what << ": nothing maps to " << name;
    } else {
      EXPECT_EQ(it->second.sizes(), tensor.sizes()) << what << ": " << name << " from " << converted.source.at(name);
    }
  }
  for (const auto& [name, tensor] : converted.weights) {
    EXPECT_TRUE(expected.count(name)) << what << ": " << converted.source.at(name) << " -> " << name
                                      << ", which the module does not have";
  }
}

struct RealLayout {
  const char* list;
  const char* architecture;  // model_init's configs of the same model
  int64_t text_layers;
};

class SingleFileRealKeys : public ::testing::TestWithParam<RealLayout> {};

TEST_P(SingleFileRealKeys, EveryKeyMapsOntoTheModulesOfTheDetectedArchitecture) {
  const fs::path list = test::source_dir() / "tests" / "data" / GetParam().list;
  const TensorShapes shapes = read_key_list(list);
  ASSERT_GT(shapes.size(), 1000u);
  const SingleFileModel model = detect_single_file_architecture(list, shapes, {});
  const ModelArchitecture real = architecture(GetParam().architecture);
  EXPECT_EQ(model.arch.unet.to_json(), real.unet.to_json());
  EXPECT_EQ(model.arch.vae.to_json(), real.vae.to_json());
  EXPECT_EQ(model.arch.text_encoder.to_json(), real.text_encoder.to_json());
  EXPECT_EQ(model.arch.text_encoder.num_hidden_layers, GetParam().text_layers);
  EXPECT_EQ(model.arch.pad_token, real.pad_token);
  EXPECT_EQ(model.tokenizer_config.at("model_max_length"), 77);
  EXPECT_EQ(model.arch.scheduler.to_json("PNDMScheduler"), real.scheduler.to_json("PNDMScheduler"));

  // One component at a time: the real-sized modules take a few GB.
  const TensorMap checkpoint = stand_in_tensors(shapes);
  std::set<std::string> converted;
  auto note = [&](const ConvertedComponent& c) {
    for (const auto& [name, key] : c.source) converted.insert(key);
  };
  {
    const ConvertedComponent unet = convert_ldm_unet(checkpoint, model.arch.unet);
    expect_exactly_the_module(*UNet2DConditionModel(model.arch.unet), unet, "UNet");
    note(unet);
  }
  {
    const ConvertedComponent vae = convert_ldm_vae(checkpoint, model.arch.vae);
    expect_exactly_the_module(*AutoencoderKL(model.arch.vae), vae, "VAE");
    note(vae);
  }
  {
    const ConvertedComponent text = model.family == "sd1"
                                        ? convert_ldm_clip_text(checkpoint)
                                        : convert_ldm_open_clip_text(checkpoint, model.arch.text_encoder);
    expect_exactly_the_module(*ClipTextModel(model.arch.text_encoder), text, "text encoder");
    note(text);
  }
  // Left over: the training schedule and EMA counters, and SD 2's unused last text layer; nothing else.
  for (const auto& [key, shape] : shapes) {
    if (converted.count(key) || is_ldm_training_key(key)) continue;
    EXPECT_TRUE(model.family == "sd2" && starts_with(key, "cond_stage_model.model.transformer.resblocks.23."))
        << key << " was not converted";
  }
}

INSTANTIATE_TEST_SUITE_P(Checkpoints, SingleFileRealKeys,
                         ::testing::Values(RealLayout{"sd1_original_keys.txt", "sd15", 12},
                                           RealLayout{"sd2_original_keys.txt", "sd21-base", 23}),
                         [](const auto& info) {
                           return std::string(info.param.architecture) == "sd15" ? "sd1" : "sd2";
                         });

TEST(SingleFileRealKeys, ArchOptionsChooseTheVariantAndMustFitTheTensors) {
  const fs::path list = test::source_dir() / "tests" / "data" / "sd2_original_keys.txt";
  const TensorShapes shapes = read_key_list(list);
  const SingleFileModel v = detect_single_file_architecture(list, shapes, {"sd2-v", {}});
  EXPECT_EQ(v.arch.scheduler.prediction_type, "v_prediction");
  EXPECT_EQ(v.arch.unet.sample_size * v.arch.vae.latent_scale_factor(), 768);
  EXPECT_EQ(detect_single_file_architecture(list, shapes, {}).arch.scheduler.prediction_type, "epsilon");
  try {
    detect_single_file_architecture(list, shapes, {"sd1", {}});
    FAIL() << "sd1 accepted for an SD 2 checkpoint";
  } catch (const FieldError& e) {
    EXPECT_EQ(e.field(), "model_arch");
    EXPECT_NE(std::string(e.what()).find("model.diffusion_model.input_blocks.1.1.proj_in.weight [320, 320]"),
              std::string::npos)
        << e.what();
  }
}

// --- The tiny fixtures in the original layout ---------------------------------------------------------------------

struct Tiny {
  const char* model;
  bool open_clip;
};

class SingleFileTiny : public ::testing::TestWithParam<Tiny> {
 protected:
  fs::path fixture() const { return test::fixtures_dir() / GetParam().model; }
  fs::path write(const std::string& test) const {
    const fs::path dir = test::scratch_dir(std::string("SingleFile.") + test + "." + GetParam().model);
    const fs::path file = dir / "model.safetensors";
    test::write_original_layout(fixture(), file, GetParam().open_clip);
    return file;
  }
  SingleFileOptions described() const { return {"", fixture()}; }
};

TEST_P(SingleFileTiny, LoadsTheSameWeightsAndGeneratesByteIdenticalImages) {
  const fs::path file = write("Generate");
  PipelineLoadOptions options;
  options.single_file = described();
  StableDiffusionModel from_file = load_stable_diffusion(file, torch::kCPU, torch::kFloat32, options);
  StableDiffusionModel from_folder = load_stable_diffusion(fixture(), torch::kCPU, torch::kFloat32);

  for (auto [a, b] : {std::pair<torch::nn::Module*, torch::nn::Module*>{from_file.unet.get(), from_folder.unet.get()},
                      {from_file.vae.get(), from_folder.vae.get()},
                      {from_file.text_encoder.get(), from_folder.text_encoder.get()}}) {
    const TensorMap x = module_state_dict(*a), y = module_state_dict(*b);
    ASSERT_EQ(x.size(), y.size());
    for (const auto& [name, tensor] : y) EXPECT_TRUE(torch::equal(x.at(name), tensor)) << name;
  }
  EXPECT_EQ(from_file.tokenizer.encode("A photo of a nurse!!"), from_folder.tokenizer.encode("A photo of a nurse!!"));
  EXPECT_EQ(from_file.scheduler_config.to_json("PNDMScheduler"), from_folder.scheduler_config.to_json("PNDMScheduler"));

  GenerationRequest request;
  request.prompts = {"A photo of a doctor", "A photo of a nurse"};
  request.seeds = {3, 4};
  request.steps = 4;
  request.width = request.height = 32;
  const torch::Tensor a = StableDiffusionPipeline(from_file).generate(request);
  const torch::Tensor b = StableDiffusionPipeline(from_folder).generate(request);
  EXPECT_TRUE(torch::equal(a, b)) << (a - b).abs().max();
}

TEST_P(SingleFileTiny, ConvertWritesTheDiffusersFolderBack) {
  const fs::path file = write("Convert");
  const fs::path out = file.parent_path() / "converted";
  convert_single_file(file, out, described(), std::nullopt);
  EXPECT_FALSE(fs::exists(out.string() + ".partial"));
  for (const auto& [component, weights] :
       {std::pair<std::string, std::string>{"unet", "diffusion_pytorch_model.safetensors"},
        {"vae", "diffusion_pytorch_model.safetensors"},
        {"text_encoder", "model.safetensors"}}) {
    auto strip = [](const TensorMap& m) {
      TensorMap out;
      for (const auto& [k, t] : m) out[starts_with(k, "text_model.") ? k.substr(11) : k] = t;
      return out;
    };
    const TensorMap got = strip(read_safetensors(out / component / weights).tensors);
    const TensorMap want = strip(read_safetensors(fixture() / component / weights).tensors);
    ASSERT_EQ(got.size(), want.size()) << component;
    for (const auto& [name, tensor] : want) {
      ASSERT_TRUE(got.count(name)) << component << " " << name;
      EXPECT_TRUE(torch::equal(got.at(name), tensor)) << component << " " << name;
    }
    EXPECT_EQ(read_json_file(out / component / "config.json"), read_json_file(fixture() / component / "config.json"));
  }
  EXPECT_EQ(read_json_file(out / "tokenizer" / "tokenizer_config.json"),
            read_json_file(fixture() / "tokenizer" / "tokenizer_config.json"));
  StableDiffusionModel converted = load_stable_diffusion(out, torch::kCPU, torch::kFloat32);
  EXPECT_EQ(converted.tokenizer.pad_id(), GetParam().open_clip ? 0 : 49407);
  EXPECT_THROW(convert_single_file(file, out, described(), std::nullopt), FieldInputError);  // --out exists
}

TEST_P(SingleFileTiny, WithoutAConfigTheTinySizesAskForOne) {
  const fs::path file = write("NoConfig");
  try {
    inspect_single_file(file);
    FAIL() << "a 32-wide text encoder was given SD's 64-channel heads";
  } catch (const FieldInputError& e) {
    EXPECT_EQ(e.field(), "model_config");
    EXPECT_NE(std::string(e.what()).find(file.string()), std::string::npos) << e.what();
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, SingleFileTiny, ::testing::Values(Tiny{"tiny-sd1", false}, Tiny{"tiny-sd2", true}),
                         [](const auto& info) { return std::string(info.param.open_clip ? "sd2" : "sd1"); });

// --- Bad inputs: one error, naming the file or the tensor -----------------------------------------------------------

std::string error_of(const fs::path& file, const SingleFileOptions& options) {
  try {
    PipelineLoadOptions load;
    load.single_file = options;
    load_stable_diffusion(file, torch::kCPU, torch::kFloat32, load);
  } catch (const InputError& e) {
    return e.what();
  }
  ADD_FAILURE() << file << " loaded";
  return "";
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

class SingleFileErrors : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = test::scratch_dir("SingleFileErrors"); }
  fs::path fixture(const char* name) const { return test::fixtures_dir() / name; }
  fs::path dir_;
};

TEST_F(SingleFileErrors, TruncatedFileNamesTheFileAndTensor) {
  const fs::path file = dir_ / "truncated.safetensors";
  test::write_original_layout(fixture("tiny-sd1"), file, false);
  fs::resize_file(file, fs::file_size(file) - 1000);
  const std::string e = error_of(file, {"", fixture("tiny-sd1")});
  EXPECT_TRUE(contains(e, "truncated safetensors file " + file.string())) << e;
  EXPECT_TRUE(contains(e, "tensor '")) << e;
}

TEST_F(SingleFileErrors, UnknownLayoutSaysWhatWasExpected) {
  const fs::path file = dir_ / "random.safetensors";
  write_safetensors(file, {{"encoder.blocks.0.weight", torch::randn({4, 4})}, {"head.bias", torch::randn({4})}});
  const std::string e = error_of(file, {});
  EXPECT_TRUE(contains(e, file.string() + " is not a Stable Diffusion checkpoint in the original layout")) << e;
  EXPECT_TRUE(contains(e, "model.diffusion_model.")) << e;

  // One component of a diffusers folder, passed by mistake.
  const std::string unet = error_of(fixture("tiny-sd1") / "unet" / "diffusion_pytorch_model.safetensors", {});
  EXPECT_TRUE(contains(unet, "one component of a diffusers model folder")) << unet;
}

TEST_F(SingleFileErrors, MixedArchitecturesNameBothParts) {
  // The SD 1 UNet and VAE with the SD 2 (OpenCLIP) text encoder.
  TensorMap mixed;
  for (const auto& [key, t] : test::original_layout_tensors(fixture("tiny-sd1"), false)) {
    if (!starts_with(key, "cond_stage_model.")) mixed[key] = t;
  }
  for (const auto& [key, t] : test::original_layout_tensors(fixture("tiny-sd2"), true)) {
    if (starts_with(key, "cond_stage_model.")) mixed[key] = t;
  }
  const fs::path file = dir_ / "mixed.safetensors";
  write_safetensors(file, mixed);
  for (const fs::path& config : {fs::path(), fixture("tiny-sd1"), fixture("tiny-sd2")}) {
    const std::string e = error_of(file, {"", config});
    EXPECT_TRUE(contains(e, file.string() + " mixes architectures")) << e;
    EXPECT_TRUE(contains(e, "model.diffusion_model.input_blocks.1.1.proj_in.weight [32, 32, 1, 1]")) << e;
    EXPECT_TRUE(contains(e, "cond_stage_model.model.")) << e;
  }
}

TEST_F(SingleFileErrors, PicklesAreRefusedWithoutBeingRead) {
  const fs::path ckpt = dir_ / "model.ckpt";
  { std::ofstream(ckpt, std::ios::binary) << "PK\x03\x04 not read"; }
  const std::string e = error_of(ckpt, {});
  EXPECT_TRUE(contains(e, ckpt.string() + " is a PyTorch pickle checkpoint (.ckpt)")) << e;
  EXPECT_TRUE(contains(e, "never unpickles")) << e;
  EXPECT_TRUE(contains(e, "weights_only=True")) << e;
  EXPECT_TRUE(contains(e, (dir_ / "model.safetensors").string())) << e;

  // A pickle under a .safetensors name is told by its first bytes.
  const fs::path disguised = dir_ / "disguised.safetensors";
  { std::ofstream(disguised, std::ios::binary) << "\x80\x04\x95 pickle"; }
  EXPECT_TRUE(contains(error_of(disguised, {}), "is a PyTorch pickle checkpoint")) << error_of(disguised, {});
}

TEST_F(SingleFileErrors, WrongShapeAndStrayTensorsAreNamedAsInTheFile) {
  TensorMap tensors = test::original_layout_tensors(fixture("tiny-sd1"), false);
  tensors["model.diffusion_model.input_blocks.1.0.in_layers.2.weight"] = torch::zeros({32, 32, 1, 1});
  tensors["model.diffusion_model.input_blocks.1.0.extra.weight"] = torch::zeros({3});
  tensors.erase("first_stage_model.decoder.up.0.block.1.conv2.bias");
  const fs::path file = dir_ / "damaged.safetensors";
  write_safetensors(file, tensors);
  const std::string e = error_of(file, {"", fixture("tiny-sd1")});
  EXPECT_TRUE(contains(e,
                       "model.diffusion_model.input_blocks.1.0.in_layers.2.weight (file [32, 32, 1, 1], model "
                       "[32, 32, 3, 3])"))
      << e;
  EXPECT_TRUE(contains(e, "model.diffusion_model.input_blocks.1.0.extra.weight")) << e;
  // The UNet's errors come first; after fixing them the VAE's missing tensor is named.
  tensors.erase("model.diffusion_model.input_blocks.1.0.extra.weight");
  tensors["model.diffusion_model.input_blocks.1.0.in_layers.2.weight"] =
      test::original_layout_tensors(fixture("tiny-sd1"), false)
          .at("model.diffusion_model.input_blocks.1.0.in_layers.2.weight");
  write_safetensors(file, tensors);
  const std::string vae = error_of(file, {"", fixture("tiny-sd1")});
  EXPECT_TRUE(contains(vae, "decoder.up_blocks.1.resnets.1.conv2.bias")) << vae;
}

}  // namespace
}  // namespace fairdiff
