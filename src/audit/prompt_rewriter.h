// Rewrites a prompt so that it names a demographic group: "A photo of a CEO of an important company" ->
// "A photo of a black female CEO of an important company". The group goes right before the subject's
// noun, after the subject's article and any quality adjectives ("a highly successful Indian female
// entrepreneur"), and the article agrees with the word that now follows it ("an Indian female doctor").
// A `{group}` placeholder in the template is used instead when present. A prompt with no article before a
// subject ("Doctors at work") cannot be rewritten safely: that is an InputError asking for a placeholder.
#pragma once

#include <string>

namespace fairdiff::audit {

// How a race label reads inside a sentence: proper adjectives capitalised ("Asian", "Middle Eastern",
// "Latino Hispanic"), colour terms kept lower case ("black", "white").
std::string race_phrase(const std::string& race_label);
// "female" / "male" (lower case).
std::string gender_phrase(const std::string& gender_label);
// race_phrase + " " + gender_phrase, e.g. "black female"; either part may be empty.
std::string group_phrase(const std::string& race_label, const std::string& gender_label);

// "a" or "an" for the word that follows (vowel sound by spelling, with the usual exceptions: "a unique",
// "a European", "a one-off", "an hour", "an honest").
std::string indefinite_article(const std::string& next_word);

// Inserts `phrase` into `prompt` as described above; InputError naming the prompt when it cannot.
std::string rewrite_prompt(const std::string& prompt, const std::string& phrase);

}  // namespace fairdiff::audit
