// CSV reading and writing (RFC 4180 quoting). Rows keep their 1-based line numbers so errors can name them.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace fairdiff {

struct CsvRow {
  int line = 0;  // 1-based line of the file where the row starts
  std::vector<std::string> fields;
};

struct CsvTable {
  std::string source;  // file name, for error messages
  std::vector<std::string> header;
  std::vector<CsvRow> rows;

  // Index of a header column, or -1.
  int column(const std::string& name) const;
  // Index of a header column; InputError naming the file and the columns it has otherwise.
  int require_column(const std::string& name) const;
};

// Parses CSV text whose first row is the header. Every row must have as many fields as the header;
// InputError naming `source` and the line otherwise. Blank lines are skipped.
CsvTable parse_csv(const std::string& text, const std::string& source);
CsvTable read_csv(const std::filesystem::path& path);

// Quotes a field when it holds a comma, quote or newline.
std::string csv_escape(const std::string& field);
std::string csv_line(const std::vector<std::string>& fields);

}  // namespace fairdiff
