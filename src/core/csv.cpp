#include "core/csv.h"

#include <algorithm>
#include <cstdio>

#include "core/error.h"
#include "core/fs.h"
#include "core/strings.h"

namespace fairdiff {

int CsvTable::column(const std::string& name) const {
  for (size_t i = 0; i < header.size(); ++i) {
    if (header[i] == name) return static_cast<int>(i);
  }
  return -1;
}

int CsvTable::require_column(const std::string& name) const {
  int index = column(name);
  if (index < 0) {
    throw InputError(source + ": missing column '" + name + "' (the header has: " + join(header, ",") + ")");
  }
  return index;
}

CsvTable parse_csv(const std::string& text, const std::string& source) {
  // Text only as UTF-8 (prompts reach the tokenizer, labels and paths reach JSON and HTML): a stray byte is
  // reported with its line and column here, before anything is written.
  const size_t bad = first_invalid_utf8(text);
  if (bad != std::string::npos) {
    const size_t line_start = text.rfind('\n', bad == 0 ? 0 : bad - 1);
    const size_t column = bad - (line_start == std::string::npos || bad == 0 ? 0 : line_start + 1) + 1;
    const auto line = 1 + std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(bad), '\n');
    char byte[8];
    std::snprintf(byte, sizeof(byte), "0x%02X", static_cast<unsigned char>(text[bad]));
    throw InputError(source + ":" + std::to_string(line) + ": byte " + byte + " at column " + std::to_string(column) +
                     " is not UTF-8 (save the file as UTF-8)");
  }
  CsvTable table;
  table.source = source;
  std::vector<CsvRow> records;
  CsvRow row;
  std::string field;
  bool in_quotes = false;
  bool field_was_quoted = false;
  bool row_has_content = false;
  int line = 1;
  row.line = 1;
  size_t start = 0;
  if (text.size() >= 3 && static_cast<unsigned char>(text[0]) == 0xEF && static_cast<unsigned char>(text[1]) == 0xBB &&
      static_cast<unsigned char>(text[2]) == 0xBF) {
    start = 3;  // UTF-8 byte-order mark
  }
  auto end_field = [&]() {
    row.fields.push_back(field);
    field.clear();
    field_was_quoted = false;
  };
  auto end_row = [&]() {
    end_field();
    bool blank = !row_has_content && row.fields.size() == 1 && row.fields[0].empty();
    if (!blank) records.push_back(row);
    row = CsvRow();
    row_has_content = false;
  };
  for (size_t i = start; i < text.size(); ++i) {
    char c = text[i];
    if (in_quotes) {
      if (c == '"') {
        if (i + 1 < text.size() && text[i + 1] == '"') {
          field += '"';
          ++i;
        } else {
          in_quotes = false;
        }
      } else {
        if (c == '\n') ++line;
        field += c;
      }
      continue;
    }
    if (c == '"') {
      if (!field.empty()) {
        throw InputError(source + ":" + std::to_string(line) + ": stray quote inside an unquoted field");
      }
      in_quotes = true;
      field_was_quoted = true;
      row_has_content = true;
    } else if (c == ',') {
      end_field();
      row_has_content = true;
    } else if (c == '\r') {
      // tolerate CRLF line endings
    } else if (c == '\n') {
      end_row();
      ++line;
      row.line = line;
    } else {
      if (field_was_quoted) {
        throw InputError(source + ":" + std::to_string(line) + ": text after a closing quote");
      }
      field += c;
      row_has_content = true;
    }
  }
  if (in_quotes) throw InputError(source + ":" + std::to_string(row.line) + ": unterminated quoted field");
  if (row_has_content || !field.empty()) end_row();

  if (records.empty()) throw InputError(source + ": empty CSV (expected a header row)");
  table.header = records.front().fields;
  for (auto& name : table.header) name = trim(name);
  for (size_t r = 1; r < records.size(); ++r) {
    if (records[r].fields.size() != table.header.size()) {
      throw InputError(source + ":" + std::to_string(records[r].line) + ": expected " +
                       std::to_string(table.header.size()) + " fields (" + join(table.header, ",") + "), found " +
                       std::to_string(records[r].fields.size()));
    }
    table.rows.push_back(records[r]);
  }
  return table;
}

CsvTable read_csv(const std::filesystem::path& path) {
  return parse_csv(read_file(path), path.string());
}

std::string csv_escape(const std::string& field) {
  // A field that starts with the UTF-8 byte-order mark is quoted too: unquoted at the start of a file, parse_csv
  // would drop the mark as the file's (found by fuzz/csv_fuzzer.cpp's round trip).
  const bool starts_with_bom = field.rfind("\xEF\xBB\xBF", 0) == 0;
  if (!starts_with_bom && field.find_first_of(",\"\n\r") == std::string::npos) return field;
  std::string out = "\"";
  for (char c : field) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

std::string csv_line(const std::vector<std::string>& fields) {
  std::string out;
  for (size_t i = 0; i < fields.size(); ++i) {
    if (i) out += ',';
    out += csv_escape(fields[i]);
  }
  return out + "\n";
}

}  // namespace fairdiff
