#include "audit/detections.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <set>

#include "core/csv.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/strings.h"

namespace fairdiff::audit {

std::vector<const ImageRecord*> Run::images_of(int prompt) const {
  std::vector<const ImageRecord*> out;
  for (const auto& image : images) {
    if (image.prompt == prompt) out.push_back(&image);
  }
  return out;
}

bool Run::has_prompt(int prompt) const {
  for (const auto& image : images) {
    if (image.prompt == prompt) return true;
  }
  return false;
}

namespace {

int first_column(const CsvTable& table, std::initializer_list<const char*> names) {
  for (const char* name : names) {
    int index = table.column(name);
    if (index >= 0) return index;
  }
  return -1;
}

struct FaceRow {
  ImageRecord record;
  int face_index = 0;
  double area = -1;
};

}  // namespace

Run parse_detections(const std::string& csv_text, const std::string& source, const std::string& run_name,
                     const PromptSet& prompts, const DetectionOptions& options) {
  CsvTable table = parse_csv(csv_text, source);
  int prompt_column = first_column(table, {"prompt_id", "prompt"});
  if (prompt_column < 0) {
    throw InputError(source + ": missing column 'prompt' or 'prompt_id' (the header has: " + join(table.header, ",") +
                     ")");
  }
  int path_column = first_column(table, {"path", "image", "file"});
  if (path_column < 0) {
    throw InputError(source + ": missing column 'path' (or 'image') (the header has: " + join(table.header, ",") + ")");
  }
  int gender_column = table.require_column("gender");
  int race_column = table.require_column("race");
  int age_column = table.column("age");
  int face_column = first_column(table, {"face_index", "face"});
  int width_column = first_column(table, {"box_w", "w", "width"});
  int height_column = first_column(table, {"box_h", "h", "height"});
  int area_column = table.column("area");
  int principal_column = table.column("principal");
  int x0_column = table.column("x0"), y0_column = table.column("y0");
  int x1_column = table.column("x1"), y1_column = table.column("y1");

  Run run;
  run.name = run_name;
  run.source = source;
  run.layout = face_column >= 0 ? "per-face" : "study";
  std::vector<std::string> errors;
  int error_count = 0;
  auto fail = [&](int line, const std::string& message) {
    ++error_count;
    if (static_cast<int>(errors.size()) < options.max_reported_errors) {
      errors.push_back("line " + std::to_string(line) + ": " + message);
    }
  };
  std::map<std::string, int> mapped_rows;
  auto mapped = [&](const std::string& column, const std::string& value) {
    std::string out = options.label_map.apply(column, value);
    if (out != value) ++mapped_rows[column + " '" + value + "' -> '" + out + "'"];
    return out;
  };
  const std::string expected_genders = join(options.taxonomy.genders, ", ") + " or --";
  const std::string expected_races = join(options.taxonomy.races, ", ") + " or --";

  std::vector<FaceRow> faces;
  for (const auto& row : table.rows) {
    ++run.rows_read;
    FaceRow face;
    ImageRecord& record = face.record;
    record.line = row.line;
    std::string prompt_key = mapped("prompt", row.fields[prompt_column]);
    record.prompt = prompts.find(prompt_key);
    bool ok = true;
    if (record.prompt < 0) {
      fail(row.line, "prompt '" + prompt_key + "' is neither a prompt_id nor a prompt text of " + prompts.source +
                         " (map it with --map prompt:" + trim(prompt_key) + "=ID)");
      ok = false;
    }
    record.path = trim(row.fields[path_column]);
    std::string gender = mapped("gender", row.fields[gender_column]);
    record.gender = gender_index(options.taxonomy, gender);
    if (record.gender == -2) {
      fail(row.line, "unknown gender label '" + gender + "' (expected " + expected_genders +
                         "; map it with --map gender:" + trim(gender) + "=LABEL)");
      ok = false;
    }
    std::string race = mapped("race", row.fields[race_column]);
    record.race = race_index(options.taxonomy, race);
    if (record.race == -2) {
      fail(row.line, "unknown race label '" + race + "' (expected " + expected_races +
                         "; map it with --map race:" + trim(race) + "=LABEL)");
      ok = false;
    }
    record.age = kNoFace;
    if (age_column >= 0) {
      std::string age = mapped("age", row.fields[age_column]);
      record.age = canonical_age(age);
      if (record.age.empty()) {
        fail(row.line, "unknown age label '" + age + "' (expected a range like (25-32), 70+, an integer age or --)");
        ok = false;
      }
    }
    if (face_column >= 0) {
      long long index = 0;
      std::string text = trim(row.fields[face_column]);
      if (text.empty() || text == kNoFace) {
        face.face_index = -1;  // an image without faces
      } else if (!parse_int64(text, index) || index < 0) {
        fail(row.line, "face index '" + text + "' is not a non-negative integer");
        ok = false;
      } else {
        face.face_index = static_cast<int>(index);
      }
      double w = 0, h = 0, area = 0, x0 = 0, y0 = 0, x1 = 0, y1 = 0;
      if (principal_column >= 0) {
        // The analyzer marked its principal face: rank it first, whatever the box sizes.
        face.area = trim(row.fields[principal_column]) == "1" ? 1.0 : 0.0;
      } else if (area_column >= 0 && parse_double(trim(row.fields[area_column]), area)) {
        face.area = area;
      } else if (width_column >= 0 && height_column >= 0 && parse_double(trim(row.fields[width_column]), w) &&
                 parse_double(trim(row.fields[height_column]), h)) {
        face.area = w * h;
      } else if (x0_column >= 0 && y0_column >= 0 && x1_column >= 0 && y1_column >= 0 &&
                 parse_double(trim(row.fields[x0_column]), x0) && parse_double(trim(row.fields[y0_column]), y0) &&
                 parse_double(trim(row.fields[x1_column]), x1) && parse_double(trim(row.fields[y1_column]), y1)) {
        face.area = std::max(0.0, x1 - x0) * std::max(0.0, y1 - y0);
      }
    }
    if (ok) faces.push_back(face);
  }
  if (error_count > 0) {
    std::string message =
        source + ": " + std::to_string(error_count) + " row(s) could not be read:\n  " + join(errors, "\n  ");
    if (error_count > static_cast<int>(errors.size())) {
      message += "\n  ... and " + std::to_string(error_count - static_cast<int>(errors.size())) + " more";
    }
    throw InputError(message);
  }
  if (faces.empty()) throw InputError(source + ": no detection rows (expected prompt,path,gender,age,race rows)");

  if (face_column < 0) {
    for (auto& face : faces) run.images.push_back(std::move(face.record));
  } else {
    // Group faces by (prompt, image); the principal face is the largest, or face 0 without sizes.
    std::map<std::pair<int, std::string>, size_t> index_of;
    std::vector<FaceRow> principal;
    std::vector<int> face_counts;
    for (auto& face : faces) {
      auto key = std::make_pair(face.record.prompt, face.record.path);
      auto it = index_of.find(key);
      bool has_face = face.face_index >= 0 && (face.record.gender >= 0 || face.record.race >= 0);
      if (it == index_of.end()) {
        index_of[key] = principal.size();
        principal.push_back(face);
        face_counts.push_back(has_face ? 1 : 0);
        continue;
      }
      FaceRow& best = principal[it->second];
      face_counts[it->second] += has_face ? 1 : 0;
      bool better =
          best.face_index < 0 ||
          (has_face && (face.area >= 0 && best.area >= 0 ? face.area > best.area : face.face_index < best.face_index));
      if (better) best = face;
    }
    for (size_t i = 0; i < principal.size(); ++i) {
      principal[i].record.num_faces = face_counts[i];
      run.images.push_back(std::move(principal[i].record));
    }
  }
  for (const auto& [what, count] : mapped_rows) {
    run.notes.push_back(std::to_string(count) + " row(s): " + what);
  }
  return run;
}

Run read_detections(const std::filesystem::path& path, const std::string& run_name, const PromptSet& prompts,
                    const DetectionOptions& options) {
  require_file(path, "detections CSV of run '" + run_name + "'");
  return parse_detections(read_file(path), path.string(), run_name, prompts, options);
}

std::pair<std::string, std::string> parse_run_argument(const std::string& text) {
  size_t equals = text.find('=');
  if (equals == std::string::npos || equals == 0 || equals + 1 >= text.size()) {
    throw FieldError("run", "'" + text + "': expected NAME=DETECTIONS.csv (e.g. sd21=results.csv)");
  }
  std::string name = text.substr(0, equals);
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '.') {
      throw FieldError("run", "'" + text + "': the run name may hold letters, digits, '_', '-' and '.' only");
    }
  }
  return {name, text.substr(equals + 1)};
}

}  // namespace fairdiff::audit
