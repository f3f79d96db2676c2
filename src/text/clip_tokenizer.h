// CLIP's byte-level BPE tokenizer, read from a diffusers `tokenizer/` folder (vocab.json + merges.txt +
// tokenizer_config.json or special_tokens_map.json), reproducing the reference CLIPTokenizer(Fast):
//   normalise: Unicode NFC, runs of whitespace -> one space, lower-case;
//   pre-tokenise: the special tokens, 's 't 're 've 'm 'll 'd, runs of letters, single digits, runs of
//     anything else but whitespace (whitespace itself is dropped);
//   byte-level: each UTF-8 byte -> one printable code point (GPT-2's table);
//   BPE with the word-final suffix "</w>", merges applied by rank;
//   special tokens (BOS, EOS, pad, unk) are matched in the raw text first and never split;
//   [BOS] tokens [EOS], truncated to max_length keeping EOS, padded with the pad token.
#pragma once

#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace fairdiff {

class ClipTokenizer {
 public:
  static ClipTokenizer from_directory(const std::filesystem::path& dir);

  // Token ids of one prompt, padded/truncated to max_length() (77 for Stable Diffusion).
  std::vector<int64_t> encode(const std::string& text) const;
  // The BPE tokens of a text without BOS/EOS/padding (for inspection and tests).
  std::vector<std::string> tokenize(const std::string& text) const;

  int64_t bos_id() const { return bos_id_; }
  int64_t eos_id() const { return eos_id_; }
  int64_t pad_id() const { return pad_id_; }
  int max_length() const { return max_length_; }
  size_t vocab_size() const { return vocab_.size(); }

 private:
  std::vector<std::string> bpe(const std::string& word) const;
  int64_t token_id(const std::string& token) const;

  std::unordered_map<std::string, int64_t> vocab_;
  // Special tokens (BOS, EOS, pad, unk) are split out of the raw text before normalisation, as the
  // reference does with added tokens: with SD 2's pad token "!", "Doctor!!" ends in two "!" tokens.
  std::vector<std::pair<std::string, int64_t>> special_tokens_;  // longest first
  std::unordered_map<std::string, int> merge_ranks_;             // "left right" -> rank
  std::vector<std::string> byte_to_unicode_;                     // UTF-8 string of the code point for each byte
  int64_t bos_id_ = 0;
  int64_t eos_id_ = 0;
  int64_t pad_id_ = 0;
  int max_length_ = 77;
  std::string source_;
  struct BpeCache {
    std::mutex mutex;
    std::unordered_map<std::string, std::vector<std::string>> words;
  };
  std::shared_ptr<BpeCache> cache_ = std::make_shared<BpeCache>();
};

}  // namespace fairdiff
