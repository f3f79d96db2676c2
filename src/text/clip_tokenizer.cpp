#include "text/clip_tokenizer.h"

#include <unicode/locid.h>
#include <unicode/normalizer2.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>
#include <unicode/utf8.h>

#include <algorithm>
#include <climits>
#include <fstream>
#include <map>

#include "core/error.h"
#include "core/fs.h"
#include "core/json.h"

namespace fairdiff {
namespace {

const char* kBos = "<|startoftext|>";
const char* kEos = "<|endoftext|>";
const char* kWordEnd = "</w>";

std::string utf8_of(UChar32 c) {
  std::string out;
  icu::UnicodeString(c).toUTF8String(out);
  return out;
}

// GPT-2's reversible byte -> printable code point table.
std::vector<std::string> make_byte_table() {
  std::vector<int> mapped(256, -1);
  for (int b = '!'; b <= '~'; ++b) mapped[b] = b;
  for (int b = 0xA1; b <= 0xAC; ++b) mapped[b] = b;
  for (int b = 0xAE; b <= 0xFF; ++b) mapped[b] = b;
  int next = 0;
  std::vector<std::string> table(256);
  for (int b = 0; b < 256; ++b) {
    if (mapped[b] < 0) mapped[b] = 256 + next++;
    table[b] = utf8_of(mapped[b]);
  }
  return table;
}

bool is_letter(UChar32 c) {
  return (U_GET_GC_MASK(c) & U_GC_L_MASK) != 0;
}
bool is_number(UChar32 c) {
  return (U_GET_GC_MASK(c) & U_GC_N_MASK) != 0;
}
bool is_space(UChar32 c) {
  return u_isUWhiteSpace(c) != 0;
}

std::vector<UChar32> decode_utf8(const std::string& text) {
  std::vector<UChar32> out;
  int32_t i = 0;
  const int32_t n = static_cast<int32_t>(text.size());
  const auto* s = reinterpret_cast<const uint8_t*>(text.data());
  while (i < n) {
    UChar32 c;
    U8_NEXT(s, i, n, c);
    if (c < 0) c = 0xFFFD;  // invalid UTF-8 -> replacement character
    out.push_back(c);
  }
  return out;
}

// NFC, collapse whitespace runs into one space, lower-case each code point (full case mapping).
std::vector<UChar32> normalize(const std::string& text) {
  UErrorCode status = U_ZERO_ERROR;
  const icu::Normalizer2* nfc = icu::Normalizer2::getNFCInstance(status);
  icu::UnicodeString source = icu::UnicodeString::fromUTF8(text);
  icu::UnicodeString composed = U_SUCCESS(status) ? nfc->normalize(source, status) : source;
  if (U_FAILURE(status)) composed = source;
  std::string composed_utf8;
  composed.toUTF8String(composed_utf8);
  std::vector<UChar32> out;
  bool in_space = false;
  for (UChar32 c : decode_utf8(composed_utf8)) {
    if (is_space(c)) {
      if (!in_space) out.push_back(' ');
      in_space = true;
      continue;
    }
    in_space = false;
    icu::UnicodeString lower(c);
    lower.toLower(icu::Locale::getRoot());
    for (int32_t k = 0; k < lower.length();) {
      UChar32 l = lower.char32At(k);
      out.push_back(l);
      k += U16_LENGTH(l);
    }
  }
  return out;
}

std::string encode_utf8(const std::vector<UChar32>& cps, size_t begin, size_t end) {
  std::string out;
  for (size_t i = begin; i < end; ++i) out += utf8_of(cps[i]);
  return out;
}

bool matches_at(const std::vector<UChar32>& cps, size_t i, const std::string& ascii) {
  if (i + ascii.size() > cps.size()) return false;
  for (size_t k = 0; k < ascii.size(); ++k) {
    if (cps[i + k] != static_cast<UChar32>(static_cast<unsigned char>(ascii[k]))) return false;
  }
  return true;
}

// Splits normalised text into the pre-tokens CLIP's pattern matches (whitespace is dropped).
std::vector<std::string> pre_tokenize(const std::vector<UChar32>& cps) {
  static const char* const contractions[] = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
  std::vector<std::string> words;
  size_t i = 0;
  while (i < cps.size()) {
    UChar32 c = cps[i];
    if (is_space(c)) {
      ++i;
      continue;
    }
    bool matched = false;
    if (c == '\'') {
      for (const char* contraction : contractions) {
        if (matches_at(cps, i, contraction)) {
          words.emplace_back(contraction);
          i += std::string(contraction).size();
          matched = true;
          break;
        }
      }
      if (matched) continue;
    }
    size_t j = i + 1;
    if (is_letter(c)) {
      while (j < cps.size() && is_letter(cps[j])) ++j;
    } else if (is_number(c)) {
      // a single digit per pre-token
    } else {
      while (j < cps.size() && !is_space(cps[j]) && !is_letter(cps[j]) && !is_number(cps[j])) ++j;
    }
    words.push_back(encode_utf8(cps, i, j));
    i = j;
  }
  return words;
}

// A special token as tokenizer_config.json or special_tokens_map.json give it: a string or {"content": string}.
std::string read_special_token(const Json& config, const std::string& key, const std::filesystem::path& file) {
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) return "";
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) {
    return (*it)["content"].get<std::string>();
  }
  throw InputError(file.string() + ": '" + key + "' must be a string or {\"content\": string}, found " + it->dump());
}

Json read_json_object(const std::filesystem::path& file) {
  Json json = read_json_file(file);
  if (!json.is_object()) throw InputError(file.string() + ": expected a JSON object");
  return json;
}

}  // namespace

ClipTokenizer ClipTokenizer::from_directory(const std::filesystem::path& dir) {
  require_directory(dir, "tokenizer folder");
  ClipTokenizer tok;
  tok.source_ = dir.string();
  tok.byte_to_unicode_ = make_byte_table();

  require_file(dir / "vocab.json", "tokenizer vocabulary");
  Json vocab = read_json_file(dir / "vocab.json");
  if (!vocab.is_object() || vocab.empty()) {
    throw InputError((dir / "vocab.json").string() + ": expected a JSON object mapping tokens to ids");
  }
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    if (!it->is_number_integer() || (it->is_number_unsigned() && it->get<uint64_t>() > INT64_MAX) ||
        it->get<int64_t>() < 0) {
      throw InputError((dir / "vocab.json").string() + ": id of '" + it.key() + "' is " + it->dump() +
                       ", not a whole number >= 0");
    }
    tok.vocab_[it.key()] = it->get<int64_t>();
  }

  require_file(dir / "merges.txt", "tokenizer merges");
  std::ifstream merges(dir / "merges.txt");
  std::string line;
  int rank = 0;
  int line_number = 0;
  while (std::getline(merges, line)) {
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || (line_number == 1 && line.rfind("#version", 0) == 0)) continue;
    size_t space = line.find(' ');
    if (space == std::string::npos || line.find(' ', space + 1) != std::string::npos) {
      throw InputError((dir / "merges.txt").string() + ":" + std::to_string(line_number) +
                       ": expected two symbols separated by one space");
    }
    tok.merge_ranks_.emplace(line, rank++);
  }
  if (tok.merge_ranks_.empty()) throw InputError((dir / "merges.txt").string() + ": no merges");

  // Special tokens from special_tokens_map.json, overridden by those tokenizer_config.json gives.
  std::map<std::string, std::string> specials;
  for (const char* file : {"special_tokens_map.json", "tokenizer_config.json"}) {
    if (!std::filesystem::exists(dir / file)) continue;
    const Json json = read_json_object(dir / file);
    for (const char* key : {"bos_token", "eos_token", "pad_token", "unk_token"}) {
      const std::string token = read_special_token(json, key, dir / file);
      if (!token.empty()) specials[key] = token;
    }
    if (std::string(file) == "tokenizer_config.json" && json.contains("model_max_length") &&
        json["model_max_length"].is_number_integer()) {
      const Json& value = json["model_max_length"];
      // Some configs store a huge sentinel meaning "no limit"; CLIP's text model has 77 positions.
      if (value.is_number_unsigned() ? value.get<uint64_t>() > 1024 : value.get<int64_t>() > 1024) {
        tok.max_length_ = 77;
      } else if (value.get<int64_t>() >= 2) {
        tok.max_length_ = value.get<int>();
      } else {
        throw InputError((dir / file).string() + ": model_max_length " + value.dump() +
                         " leaves no room for the start and end tokens (expected at least 2)");
      }
    }
  }
  std::string bos = specials["bos_token"];
  std::string eos = specials["eos_token"];
  std::string pad = specials["pad_token"];
  tok.bos_id_ = tok.token_id(bos.empty() ? kBos : bos);
  tok.eos_id_ = tok.token_id(eos.empty() ? kEos : eos);
  tok.pad_id_ = pad.empty() ? tok.eos_id_ : tok.token_id(pad);
  std::string unk = specials["unk_token"];
  for (const std::string& special :
       {bos.empty() ? std::string(kBos) : bos, eos.empty() ? std::string(kEos) : eos, pad, unk}) {
    if (special.empty()) continue;
    bool known = false;
    for (const auto& s : tok.special_tokens_) known = known || s.first == special;
    if (!known) tok.special_tokens_.emplace_back(special, tok.token_id(special));
  }
  std::sort(tok.special_tokens_.begin(), tok.special_tokens_.end(),
            [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  return tok;
}

int64_t ClipTokenizer::token_id(const std::string& token) const {
  auto it = vocab_.find(token);
  if (it == vocab_.end()) throw InputError(source_ + ": token '" + token + "' is not in vocab.json");
  return it->second;
}

std::vector<std::string> ClipTokenizer::bpe(const std::string& word) const {
  {
    std::lock_guard<std::mutex> lock(cache_->mutex);
    auto it = cache_->words.find(word);
    if (it != cache_->words.end()) return it->second;
  }
  // Symbols: one per byte-level character; the last carries the word-end suffix.
  std::vector<std::string> symbols;
  for (unsigned char byte : word) symbols.push_back(byte_to_unicode_[byte]);
  if (symbols.empty()) return {};
  symbols.back() += kWordEnd;
  while (symbols.size() > 1) {
    int best_rank = INT_MAX;
    size_t best = 0;
    for (size_t i = 0; i + 1 < symbols.size(); ++i) {
      auto it = merge_ranks_.find(symbols[i] + " " + symbols[i + 1]);
      if (it != merge_ranks_.end() && it->second < best_rank) {
        best_rank = it->second;
        best = i;
      }
    }
    if (best_rank == INT_MAX) break;
    const std::string left = symbols[best];
    const std::string right = symbols[best + 1];
    std::vector<std::string> merged;
    for (size_t i = 0; i < symbols.size();) {
      if (i + 1 < symbols.size() && symbols[i] == left && symbols[i + 1] == right) {
        merged.push_back(left + right);
        i += 2;
      } else {
        merged.push_back(symbols[i]);
        ++i;
      }
    }
    symbols.swap(merged);
  }
  std::lock_guard<std::mutex> lock(cache_->mutex);
  if (cache_->words.size() > 100000) cache_->words.clear();
  cache_->words.emplace(word, symbols);
  return symbols;
}

std::vector<std::string> ClipTokenizer::tokenize(const std::string& text) const {
  std::vector<std::string> tokens;
  auto tokenize_plain = [&](const std::string& piece) {
    for (const std::string& word : pre_tokenize(normalize(piece))) {
      for (auto& symbol : bpe(word)) tokens.push_back(std::move(symbol));
    }
  };
  size_t start = 0;
  size_t i = 0;
  while (i < text.size()) {
    const std::string* special = nullptr;
    for (const auto& s : special_tokens_) {
      if (text.compare(i, s.first.size(), s.first) == 0) {
        special = &s.first;
        break;
      }
    }
    if (!special) {
      ++i;
      continue;
    }
    tokenize_plain(text.substr(start, i - start));
    tokens.push_back(*special);
    i += special->size();
    start = i;
  }
  tokenize_plain(text.substr(start));
  return tokens;
}

std::vector<int64_t> ClipTokenizer::encode(const std::string& text) const {
  std::vector<int64_t> ids{bos_id_};
  for (const std::string& token : tokenize(text)) {
    if (static_cast<int>(ids.size()) >= max_length_ - 1) break;  // keep room for EOS
    auto it = vocab_.find(token);
    ids.push_back(it != vocab_.end() ? it->second : eos_id_);  // unk is <|endoftext|> in CLIP
  }
  ids.push_back(eos_id_);
  while (static_cast<int>(ids.size()) < max_length_) ids.push_back(pad_id_);
  return ids;
}

}  // namespace fairdiff
