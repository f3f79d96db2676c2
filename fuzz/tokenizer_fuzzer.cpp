// libFuzzer harness: the CLIP tokenizer (text/clip_tokenizer.h). When the first byte is even, the rest is a prompt
// encoded with the built-in model's tokenizer (models/builtin/tokenizer); when odd, the rest is a tokenizer folder
// of its own: vocab.json, merges.txt, tokenizer_config.json and a prompt, separated by NUL bytes (a file whose
// part is missing is left out of the folder). Every encoding has max_length ids, starts with BOS and ends in EOS
// then padding.
#include <algorithm>
#include <memory>
#include <vector>

#include "fuzz_support.h"
#include "text/clip_tokenizer.h"

namespace {

namespace fs = std::filesystem;

const fairdiff::ClipTokenizer& builtin() {
  static const fairdiff::ClipTokenizer tokenizer =
      fairdiff::ClipTokenizer::from_directory(fairdiff::fuzz::source_dir() / "models/builtin/tokenizer");
  return tokenizer;
}

void check_encoding(const fairdiff::ClipTokenizer& tokenizer, const std::string& prompt) {
  const std::vector<int64_t> ids = tokenizer.encode(prompt);
  if (static_cast<int>(ids.size()) != tokenizer.max_length() || ids.front() != tokenizer.bos_id() ||
      std::find(ids.begin() + 1, ids.end(), tokenizer.eos_id()) == ids.end()) {
    fairdiff::fuzz::report_finding("ClipTokenizer::encode",
                                   "malformed encoding of " + std::to_string(ids.size()) + " ids");
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  builtin();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const bool own_folder = data[0] & 1;
  const std::string rest(reinterpret_cast<const char*>(data + 1), size - 1);
  if (!own_folder) {
    fairdiff::fuzz::expect_no_error("ClipTokenizer::encode", [&] { check_encoding(builtin(), rest); });
    return 0;
  }
  std::vector<std::string> parts;  // the prompt (the fourth part) may hold NUL bytes of its own
  for (size_t start = 0;;) {
    const size_t nul = parts.size() == 3 ? std::string::npos : rest.find('\0', start);
    parts.push_back(rest.substr(start, nul == std::string::npos ? std::string::npos : nul - start));
    if (nul == std::string::npos) break;
    start = nul + 1;
  }
  const fs::path dir = fairdiff::fuzz::scratch_dir() / "tokenizer";
  fs::create_directories(dir);
  const char* files[] = {"vocab.json", "merges.txt", "tokenizer_config.json"};
  for (size_t i = 0; i < 3; ++i) {
    if (i < parts.size()) {
      fairdiff::fuzz::write_scratch_file(std::string("tokenizer/") + files[i], parts[i]);
    } else {
      fs::remove(dir / files[i]);
    }
  }
  std::unique_ptr<fairdiff::ClipTokenizer> tokenizer;
  if (!fairdiff::fuzz::expect_clear_errors("ClipTokenizer::from_directory", [&] {
        tokenizer = std::make_unique<fairdiff::ClipTokenizer>(fairdiff::ClipTokenizer::from_directory(dir));
      })) {
    return 0;
  }
  fairdiff::fuzz::expect_no_error("ClipTokenizer::encode",
                                  [&] { check_encoding(*tokenizer, parts.size() == 4 ? parts[3] : std::string()); });
  return 0;
}
