// Parity of the CLIP tokenizer and text encoder with the reference fixtures (tiny-sd1 and tiny-sd2).
#include <gtest/gtest.h>

#include "core/attention.h"
#include "core/error.h"
#include "core/json.h"
#include "core/safetensors.h"
#include "test_paths.h"
#include "text/clip_text_model.h"
#include "text/clip_tokenizer.h"

namespace fairdiff {
namespace {

class ClipParity : public ::testing::TestWithParam<std::string> {
 protected:
  std::filesystem::path model_dir() const { return test::fixtures_dir() / GetParam(); }
  TensorMap reference() const { return read_safetensors(model_dir() / "reference.safetensors").tensors; }
  std::vector<std::string> prompts() const {
    return read_json_file(model_dir() / "reference.json").at("prompts").get<std::vector<std::string>>();
  }
};

TEST_P(ClipParity, TokenIdsAreExact) {
  ClipTokenizer tokenizer = ClipTokenizer::from_directory(model_dir() / "tokenizer");
  torch::Tensor expected = reference().at("tokenizer.input_ids");
  auto texts = prompts();
  ASSERT_EQ(expected.size(0), static_cast<int64_t>(texts.size()));
  for (size_t i = 0; i < texts.size(); ++i) {
    std::vector<int64_t> ids = tokenizer.encode(texts[i]);
    ASSERT_EQ(ids.size(), 77u);
    for (size_t j = 0; j < ids.size(); ++j) {
      ASSERT_EQ(ids[j], expected[i][j].item<int64_t>()) << "prompt " << i << " ('" << texts[i] << "') position " << j;
    }
  }
}

TEST_P(ClipParity, TextEncoderMatchesReference) {
  torch::NoGradGuard no_grad;
  set_fused_attention_enabled(false);
  ClipTextModel model = load_clip_text_model(model_dir() / "text_encoder", torch::kFloat32);
  TensorMap ref = reference();
  torch::Tensor out = model->forward(ref.at("tokenizer.input_ids"));
  torch::Tensor expected = ref.at("text_encoder.last_hidden_state");
  ASSERT_EQ(out.sizes(), expected.sizes());
  double max_diff = (out - expected).abs().max().item<double>();
  EXPECT_LE(max_diff, 1e-4) << "max |diff| " << max_diff;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ClipParity, ::testing::Values("tiny-sd1", "tiny-sd2"));

TEST(ClipTokenizer, PadTokensFollowTheConfig) {
  auto sd1 = ClipTokenizer::from_directory(test::fixtures_dir() / "tiny-sd1" / "tokenizer");
  auto sd2 = ClipTokenizer::from_directory(test::fixtures_dir() / "tiny-sd2" / "tokenizer");
  EXPECT_EQ(sd1.pad_id(), 49407);
  EXPECT_EQ(sd2.pad_id(), 0);
  EXPECT_EQ(sd1.bos_id(), 49406);
  EXPECT_EQ(sd1.eos_id(), 49407);
}

TEST(ClipTokenizer, HandlesTrickyText) {
  auto tok = ClipTokenizer::from_directory(test::fixtures_dir() / "tiny-sd1" / "tokenizer");
  // Whitespace runs collapse, case folds, digits split one by one, contractions split off.
  EXPECT_EQ(tok.tokenize("  A   Photo\n\tof  "), tok.tokenize("a photo of"));
  EXPECT_EQ(tok.tokenize("2024").size(), 4u);
  auto dont = tok.tokenize("don't");
  ASSERT_EQ(dont.size(), 2u);
  EXPECT_EQ(dont[0], "don</w>");
  EXPECT_EQ(dont[1], "'t</w>");
  // Non-ASCII letters stay in one word; NFC: a decomposed e + combining accent equals the composed one.
  EXPECT_EQ(tok.tokenize("cafe\xCC\x81"), tok.tokenize("caf\xC3\xA9"));
}

TEST(ClipTokenizer, MissingFilesAreNamed) {
  auto dir = test::scratch_dir("tokenizer_missing");
  try {
    ClipTokenizer::from_directory(dir);
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("vocab.json"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace fairdiff
