#include "audit/prompt_rewriter.h"

#include <algorithm>
#include <cctype>
#include <set>
#include <vector>

#include "core/error.h"
#include "core/strings.h"

namespace fairdiff::audit {

namespace {

// Framing nouns: "A photo of ...": the article before them is not the subject's.
const std::set<std::string>& framing_nouns() {
  static const std::set<std::string> nouns = {"photo",    "photograph", "picture", "portrait",     "image",
                                              "painting", "drawing",    "sketch",  "headshot",     "close-up",
                                              "closeup",  "shot",       "selfie",  "illustration", "rendering",
                                              "snapshot", "still",      "render",  "depiction",    "stock"};
  return nouns;
}

// Adjectives of opinion, size, age and manner that come before origin adjectives in English
// ("a nice young Indian woman"), so the group phrase goes after them.
const std::set<std::string>& quality_adjectives() {
  static const std::set<std::string> words = {
      "nice",        "kind",        "good",         "bad",       "friendly",
      "successful",  "famous",      "important",    "happy",     "smiling",
      "young",       "old",         "elderly",      "senior",    "junior",
      "experienced", "beautiful",   "handsome",     "typical",   "confident",
      "serious",     "hardworking", "hard-working", "skilled",   "talented",
      "wealthy",     "rich",        "poor",         "dangerous", "powerful",
      "attractive",  "ugly",        "tall",         "short",     "middle-aged",
      "average",     "ordinary",    "great",        "brilliant", "professional-looking"};
  return words;
}

struct Word {
  size_t begin;
  size_t end;
  std::string lower;  // letters and hyphens only, lower case
};

std::vector<Word> words_of(const std::string& text) {
  std::vector<Word> words;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    if (i >= text.size()) break;
    size_t begin = i;
    while (i < text.size() && !std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    std::string lower;
    for (size_t j = begin; j < i; ++j) {
      char c = text[j];
      if (std::isalnum(static_cast<unsigned char>(c)) || c == '-') {
        lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      }
    }
    words.push_back({begin, i, lower});
  }
  return words;
}

bool is_article(const std::string& lower) {
  return lower == "a" || lower == "an" || lower == "the";
}

// Keeps the capitalisation of the article being replaced ("A" -> "An").
std::string with_case_of(const std::string& original, const std::string& article) {
  if (!original.empty() && std::isupper(static_cast<unsigned char>(original[0]))) {
    std::string out = article;
    out[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(out[0])));
    return out;
  }
  return article;
}

std::string first_word(const std::string& text) {
  std::vector<Word> words = words_of(text);
  return words.empty() ? "" : text.substr(words[0].begin, words[0].end - words[0].begin);
}

}  // namespace

std::string race_phrase(const std::string& race_label) {
  std::string label = trim(race_label);
  std::string lower = to_lower(label);
  if (lower == "white" || lower == "black" || lower == "brown" || lower == "other") return lower;
  std::string out;
  bool start = true;
  for (char c : lower) {
    out += start ? static_cast<char>(std::toupper(static_cast<unsigned char>(c))) : c;
    start = c == ' ' || c == '-';
  }
  return out;
}

std::string gender_phrase(const std::string& gender_label) {
  std::string lower = to_lower(trim(gender_label));
  if (lower == "man" || lower == "m") return "male";
  if (lower == "woman" || lower == "f") return "female";
  return lower;
}

std::string group_phrase(const std::string& race_label, const std::string& gender_label) {
  std::string race = race_phrase(race_label);
  std::string gender = gender_phrase(gender_label);
  if (race.empty()) return gender;
  if (gender.empty()) return race;
  return race + " " + gender;
}

std::string indefinite_article(const std::string& next_word) {
  std::string w;
  for (char c : next_word) {
    if (std::isalnum(static_cast<unsigned char>(c)))
      w += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  if (w.empty()) return "a";
  for (const char* silent_h : {"hour", "honest", "honor", "honour", "heir"}) {
    if (starts_with(w, silent_h)) return "an";
  }
  // Vowel letters that sound like a consonant ("a unique", "a European", "a one-off").
  for (const char* consonant_sound :
       {"uni", "use", "usu", "uti", "uto", "ura", "ure", "euro", "eu", "one", "once", "ubiq"}) {
    if (starts_with(w, consonant_sound)) return "a";
  }
  return std::string("aeiou").find(w[0]) != std::string::npos ? "an" : "a";
}

std::string rewrite_prompt(const std::string& prompt, const std::string& phrase) {
  const std::string placeholder = "{group}";
  if (trim(phrase).empty()) throw InputError("cannot rewrite '" + prompt + "': the group phrase is empty");
  size_t at = prompt.find(placeholder);
  if (at != std::string::npos) {
    std::string out;
    size_t from = 0;
    while (at != std::string::npos) {
      std::string before = prompt.substr(from, at - from);
      // Make an "a"/"an" right before the placeholder agree with the phrase.
      std::vector<Word> words = words_of(before);
      const size_t content_end = before.find_last_not_of(" \t");
      if (!words.empty() && (words.back().lower == "a" || words.back().lower == "an") &&
          content_end != std::string::npos && words.back().end == content_end + 1) {
        const Word& article = words.back();
        std::string original = before.substr(article.begin, article.end - article.begin);
        before = before.substr(0, article.begin) + with_case_of(original, indefinite_article(first_word(phrase))) +
                 before.substr(article.end);
      }
      out += before + phrase;
      from = at + placeholder.size();
      at = prompt.find(placeholder, from);
    }
    return out + prompt.substr(from);
  }

  std::vector<Word> words = words_of(prompt);
  for (size_t i = 0; i < words.size(); ++i) {
    if (!is_article(words[i].lower) || i + 1 >= words.size()) continue;
    if (framing_nouns().count(words[i + 1].lower)) continue;
    // Skip quality adjectives and "<adverb>ly <adjective>" pairs, keeping at least one word for the noun.
    size_t insert = i + 1;
    while (insert + 1 < words.size()) {
      const std::string& w = words[insert].lower;
      if (quality_adjectives().count(w)) {
        ++insert;
      } else if (w.size() > 3 && ends_with(w, "ly") && insert + 2 < words.size()) {
        insert += 2;
      } else {
        break;
      }
    }
    std::string out = prompt.substr(0, words[insert].begin) + phrase + " " + prompt.substr(words[insert].begin);
    if (words[i].lower != "the") {
      std::string original = prompt.substr(words[i].begin, words[i].end - words[i].begin);
      std::string next = insert == i + 1 ? first_word(phrase)
                                         : prompt.substr(words[i + 1].begin, words[i + 1].end - words[i + 1].begin);
      out = out.substr(0, words[i].begin) + with_case_of(original, indefinite_article(next)) + out.substr(words[i].end);
    }
    return out;
  }
  throw InputError("cannot place the group '" + phrase + "' in the prompt '" + prompt +
                   "': no 'a', 'an' or 'the' introduces its subject. Give the prompt a {group} placeholder "
                   "(e.g. 'A photo of a {group} doctor') in a 'template' column of the prompts CSV");
}

}  // namespace fairdiff::audit
