// Spellings of demographic labels, the one normalisation that the face classifiers' label sets
// (faces/taxonomy.h) and the audit's detection files (audit/labels.h) both go through.
#pragma once

#include <string>

namespace fairdiff {

// Lower case, '_', '-' and white space as single spaces, trimmed. "--" (no face / no answer) is returned as is.
std::string normalize_label(const std::string& text);

// normalize_label plus the race synonyms of the label sets: "others" -> "other"; "latino", "hispanic" and
// "latino/hispanic" -> "latino hispanic".
std::string normalize_race(const std::string& label);

// "male" from male, m, man, men and "female" from female, f, woman, women, in any case; "" otherwise.
std::string normalize_gender(const std::string& label);

}  // namespace fairdiff
