// The CLIP tokenizer's folder reader: malformed tokenizer files are InputErrors naming the file (found by
// fuzz/tokenizer_fuzzer.cpp).
#include "text/clip_tokenizer.h"

#include <gtest/gtest.h>

#include <fstream>

#include "core/error.h"
#include "test_paths.h"

namespace fairdiff {
namespace {

namespace fs = std::filesystem;

// A tiny byte-level BPE vocabulary: "ab" and "abc</w>" merge, "!" is the pad token.
fs::path write_tokenizer(const std::string& name, const std::string& tokenizer_config) {
  const fs::path dir = test::scratch_dir(name);
  std::ofstream(dir / "vocab.json") << R"({"<|startoftext|>": 0, "<|endoftext|>": 1, "!": 2, "a": 3, "b": 4,
      "c</w>": 5, "ab": 6, "abc</w>": 7, "a</w>": 8})";
  std::ofstream(dir / "merges.txt") << "#version: 0.2\na b\nab c</w>\n";
  if (!tokenizer_config.empty()) std::ofstream(dir / "tokenizer_config.json") << tokenizer_config;
  return dir;
}

std::string load_error(const fs::path& dir) {
  try {
    ClipTokenizer::from_directory(dir);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

TEST(ClipTokenizer, ReadsATinyFolderWithSpecialTokensAsObjects) {
  const fs::path dir =
      write_tokenizer("tokenizer_tiny", R"({"pad_token": {"content": "!", "lstrip": false}, "model_max_length": 5})");
  const ClipTokenizer tokenizer = ClipTokenizer::from_directory(dir);
  EXPECT_EQ(tokenizer.max_length(), 5);
  EXPECT_EQ(tokenizer.encode("abc"), (std::vector<int64_t>{0, 7, 1, 2, 2}));
  EXPECT_EQ(tokenizer.encode("abc abc abc abc"), (std::vector<int64_t>{0, 7, 7, 7, 1}));
}

TEST(ClipTokenizer, MalformedFilesNameTheFile) {
  // A special token whose content is not a string was nlohmann's type_error.
  std::string message = load_error(write_tokenizer("tokenizer_bad_token", R"({"bos_token": {"content": 5}})"));
  EXPECT_NE(message.find("tokenizer_config.json: 'bos_token' must be a string or {\"content\": string}, found "
                         "{\"content\":5}"),
            std::string::npos)
      << message;
  // model_max_length 1 encoded [BOS, EOS]: two ids where one was asked for.
  message = load_error(write_tokenizer("tokenizer_short", R"({"model_max_length": 1})"));
  EXPECT_NE(message.find("tokenizer_config.json: model_max_length 1 leaves no room for the start and end tokens"),
            std::string::npos)
      << message;
  // Not an object: the special tokens were looked up in it with operator[] (nlohmann's type_error).
  message = load_error(write_tokenizer("tokenizer_array", "[1, 2]"));
  EXPECT_NE(message.find("tokenizer_config.json: expected a JSON object"), std::string::npos) << message;
  // A number too large for a double (nlohmann's out_of_range escaped read_json_file).
  message = load_error(write_tokenizer("tokenizer_overflow", R"({"model_max_length": 1e400})"));
  EXPECT_NE(message.find("malformed JSON"), std::string::npos) << message;
  // A negative id.
  const fs::path dir = write_tokenizer("tokenizer_negative_id", "");
  std::ofstream(dir / "vocab.json") << R"({"<|startoftext|>": 0, "<|endoftext|>": -1})";
  message = load_error(dir);
  EXPECT_NE(message.find("vocab.json: id of '<|endoftext|>' is -1, not a whole number >= 0"), std::string::npos)
      << message;
  // A huge model_max_length is the "no limit" sentinel: CLIP's 77.
  EXPECT_EQ(ClipTokenizer::from_directory(write_tokenizer("tokenizer_sentinel", R"({"model_max_length": 1000000})"))
                .max_length(),
            77);
}

}  // namespace
}  // namespace fairdiff
