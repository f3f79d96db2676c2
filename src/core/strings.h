// Small string helpers shared by every module.
#pragma once

#include <string>
#include <vector>

namespace fairdiff {

std::string trim(const std::string& text);
std::string to_lower(const std::string& text);
std::vector<std::string> split(const std::string& text, char separator);
bool starts_with(const std::string& text, const std::string& prefix);
bool ends_with(const std::string& text, const std::string& suffix);
std::string join(const std::vector<std::string>& parts, const std::string& separator);
// Parses a whole string as a number; returns false on trailing garbage, empty text or overflow.
bool parse_int64(const std::string& text, long long& value);
bool parse_double(const std::string& text, double& value);
// Byte offset of the first byte that does not start or continue valid UTF-8 (overlong forms, surrogates and code
// points above U+10FFFF are invalid), or std::string::npos when all of `text` is valid.
size_t first_invalid_utf8(const std::string& text);
// "1h02m03s"-style duration for progress lines.
std::string format_duration(double seconds);

}  // namespace fairdiff
