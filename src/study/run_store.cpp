#include "study/run_store.h"

#include <cmath>
#include <ctime>
#include <limits>

#include "core/error.h"
#include "core/sha256.h"

namespace fairdiff::study {
namespace fs = std::filesystem;
namespace {

const char* kSchema = R"(
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS stages(name TEXT PRIMARY KEY, status TEXT NOT NULL, settings_hash TEXT NOT NULL,
  settings TEXT NOT NULL, work_total INTEGER NOT NULL, seconds REAL NOT NULL DEFAULT 0, started_at TEXT NOT NULL,
  finished_at TEXT NOT NULL DEFAULT '', detail TEXT NOT NULL DEFAULT '{}');
CREATE TABLE IF NOT EXISTS runs(name TEXT PRIMARY KEY, info TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS prompts(run TEXT NOT NULL, position INTEGER NOT NULL, prompt_id TEXT NOT NULL,
  prompt TEXT NOT NULL, n_images INTEGER NOT NULL, base_prompt_id TEXT NOT NULL, caption TEXT NOT NULL,
  PRIMARY KEY(run, prompt_id));
CREATE TABLE IF NOT EXISTS images(run TEXT NOT NULL, prompt_id TEXT NOT NULL, idx INTEGER NOT NULL,
  seed INTEGER NOT NULL, file TEXT NOT NULL, sha256 TEXT NOT NULL, PRIMARY KEY(run, prompt_id, idx));
CREATE TABLE IF NOT EXISTS analyses(run TEXT NOT NULL, prompt_id TEXT NOT NULL, idx INTEGER NOT NULL,
  n_faces INTEGER NOT NULL, gender TEXT NOT NULL, age TEXT NOT NULL, race TEXT NOT NULL, analysis TEXT NOT NULL,
  PRIMARY KEY(run, prompt_id, idx));
CREATE TABLE IF NOT EXISTS plan(position INTEGER PRIMARY KEY, row TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS models(cell TEXT PRIMARY KEY, path TEXT NOT NULL, settings TEXT NOT NULL,
  loss_curve TEXT NOT NULL, final_loss REAL NOT NULL, seconds REAL NOT NULL);
CREATE TABLE IF NOT EXISTS metrics(run TEXT NOT NULL, key TEXT NOT NULL, value REAL, low REAL, high REAL,
  PRIMARY KEY(run, key));
)";

const char* kFormat = "fairdiff-run-store-1";

// NaN cannot be stored in SQLite REAL (it reads back as NULL): keep it as NULL and read NULL back as NaN.
void bind_real(Statement& s, int index, double value) {
  if (std::isnan(value)) {
    s.bind_null(index);
  } else {
    s.bind(index, value);
  }
}
double read_real(const Statement& s, int column) {
  return s.is_null(column) ? std::numeric_limits<double>::quiet_NaN() : s.real(column);
}

}  // namespace

std::string utc_now() {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char text[32];
  std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

std::string settings_hash(const Json& settings) {
  return sha256_hex(settings.dump()).substr(0, 16);
}

fs::path RunStore::file_in(const fs::path& study_dir) {
  return study_dir / "study.sqlite";
}

std::string differing_keys(const Json& a, const Json& b) {
  std::string keys;
  auto add = [&keys](const std::string& key) { keys += (keys.empty() ? "" : ", ") + key; };
  if (!a.is_object() || !b.is_object()) return "settings";
  for (auto it = a.begin(); it != a.end(); ++it) {
    if (!b.contains(it.key()) || b[it.key()] != *it) add(it.key());
  }
  for (auto it = b.begin(); it != b.end(); ++it) {
    if (!a.contains(it.key())) add(it.key());
  }
  return keys.empty() ? "settings" : keys;
}

RunStore::RunStore(const fs::path& study_dir) {
  std::error_code ec;
  fs::create_directories(study_dir, ec);
  if (!fs::is_directory(study_dir, ec)) {
    throw InputError("cannot create the study folder " + study_dir.string() + " (is its parent writable?)");
  }
  db_ = std::make_unique<Database>(file_in(study_dir));
  {
    Statement check(*db_, "SELECT name FROM sqlite_master WHERE type='table' AND name='meta'");
    const bool has_meta = check.step();
    check.reset();
    Statement tables(*db_, "SELECT count(*) FROM sqlite_master WHERE type='table'");
    tables.step();
    const int64_t count = tables.integer(0);
    tables.reset();
    if (!has_meta && count > 0) {
      throw InputError(file_in(study_dir).string() +
                       " is an SQLite file but not a fairdiff run store; choose another study folder");
    }
  }
  Transaction t(*db_);
  db_->execute(kSchema);
  Statement format(*db_, "SELECT value FROM meta WHERE key='format'");
  if (format.step()) {
    const std::string value = format.text(0);
    if (value != kFormat)
      throw InputError(file_in(study_dir).string() + " is a run store of format '" + value + "' (expected " + kFormat +
                       ")");
  } else {
    Statement(*db_, "INSERT INTO meta(key, value) VALUES('format', ?1)").bind(1, std::string(kFormat)).run();
  }
  format.reset();
  t.commit();
}

std::optional<StageRecord> RunStore::stage(const std::string& name) {
  Statement s(*db_,
              "SELECT status, settings_hash, settings, work_total, seconds, started_at, finished_at, detail FROM "
              "stages WHERE name=?1");
  s.bind(1, name);
  if (!s.step()) return std::nullopt;
  StageRecord r;
  r.name = name;
  r.status = s.text(0);
  r.settings_hash = s.text(1);
  r.settings = Json::parse(s.text(2));
  r.work_total = s.integer(3);
  r.seconds = s.real(4);
  r.started_at = s.text(5);
  r.finished_at = s.text(6);
  r.detail = Json::parse(s.text(7));
  return r;
}

std::vector<StageRecord> RunStore::stages() {
  std::vector<std::string> names;
  {
    Statement s(*db_, "SELECT name FROM stages ORDER BY rowid");
    while (s.step()) names.push_back(s.text(0));
  }
  std::vector<StageRecord> records;
  for (const auto& name : names) records.push_back(*stage(name));
  return records;
}

bool RunStore::stage_done(const std::string& name) {
  auto record = stage(name);
  return record && record->status == "done";
}

void RunStore::begin_stage(const std::string& name, const Json& settings, int64_t work_total) {
  const std::string hash = settings_hash(settings);
  if (auto existing = stage(name)) {
    if (existing->settings_hash != hash) {
      throw InputError("the study folder " + db_->path().parent_path().string() + " holds stage '" + name +
                       "' made with other settings (" + differing_keys(existing->settings, settings) +
                       "); its work is kept: use another study folder for these settings, or restore them");
    }
    return;
  }
  Statement(*db_,
            "INSERT INTO stages(name, status, settings_hash, settings, work_total, started_at) VALUES(?1, "
            "'running', ?2, ?3, ?4, ?5)")
      .bind(1, name)
      .bind(2, hash)
      .bind(3, settings.dump())
      .bind(4, work_total)
      .bind(5, utc_now())
      .run();
}

void RunStore::finish_stage(const std::string& name, const Json& detail, double seconds) {
  Statement(*db_,
            "UPDATE stages SET status='done', finished_at=?2, detail=?3, seconds=seconds+?4 WHERE name=?1 AND "
            "status!='done'")
      .bind(1, name)
      .bind(2, utc_now())
      .bind(3, detail.dump())
      .bind(4, seconds)
      .run();
}

void RunStore::put_run(const std::string& run, const Json& info) {
  Statement(*db_, "INSERT OR REPLACE INTO runs(name, info) VALUES(?1, ?2)").bind(1, run).bind(2, info.dump()).run();
}

Json RunStore::run_info(const std::string& run) {
  Statement s(*db_, "SELECT info FROM runs WHERE name=?1");
  s.bind(1, run);
  return s.step() ? Json::parse(s.text(0)) : Json::object();
}

void RunStore::put_prompts(const std::string& run, const std::vector<StudyPrompt>& prompts) {
  Transaction t(*db_);
  Statement(*db_, "DELETE FROM prompts WHERE run=?1").bind(1, run).run();
  Statement insert(*db_,
                   "INSERT INTO prompts(run, position, prompt_id, prompt, n_images, base_prompt_id, caption) "
                   "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)");
  int64_t position = 0;
  for (const auto& p : prompts) {
    insert.bind(1, run)
        .bind(2, position++)
        .bind(3, p.prompt_id)
        .bind(4, p.prompt)
        .bind(5, p.n_images)
        .bind(6, p.base_prompt_id)
        .bind(7, p.caption)
        .run();
  }
  t.commit();
}

std::vector<StudyPrompt> RunStore::prompts(const std::string& run) {
  Statement s(*db_,
              "SELECT prompt_id, prompt, n_images, base_prompt_id, caption FROM prompts WHERE run=?1 ORDER BY "
              "position");
  s.bind(1, run);
  std::vector<StudyPrompt> prompts;
  while (s.step()) prompts.push_back({s.text(0), s.text(1), s.integer(2), s.text(3), s.text(4)});
  return prompts;
}

void RunStore::add_images(const std::vector<ImageRow>& rows) {
  Transaction t(*db_);
  Statement insert(*db_,
                   "INSERT OR REPLACE INTO images(run, prompt_id, idx, seed, file, sha256) VALUES(?1, ?2, ?3, ?4, "
                   "?5, ?6)");
  for (const auto& r : rows) {
    insert.bind(1, r.run)
        .bind(2, r.prompt_id)
        .bind(3, r.index)
        .bind(4, static_cast<int64_t>(r.seed))
        .bind(5, r.file)
        .bind(6, r.sha256)
        .run();
  }
  t.commit();
}

std::vector<ImageRow> RunStore::images(const std::string& run) {
  // In the run's prompt order, then by index.
  Statement s(*db_,
              "SELECT i.prompt_id, i.idx, i.seed, i.file, i.sha256 FROM images i LEFT JOIN prompts p ON "
              "p.run=i.run AND p.prompt_id=i.prompt_id WHERE i.run=?1 ORDER BY p.position, i.prompt_id, i.idx");
  s.bind(1, run);
  std::vector<ImageRow> rows;
  while (s.step())
    rows.push_back({run, s.text(0), s.integer(1), static_cast<uint64_t>(s.integer(2)), s.text(3), s.text(4)});
  return rows;
}

std::set<std::pair<std::string, int64_t>> RunStore::image_keys(const std::string& run) {
  Statement s(*db_, "SELECT prompt_id, idx FROM images WHERE run=?1");
  s.bind(1, run);
  std::set<std::pair<std::string, int64_t>> keys;
  while (s.step()) keys.emplace(s.text(0), s.integer(1));
  return keys;
}

void RunStore::add_analyses(const std::vector<AnalysisRow>& rows) {
  Transaction t(*db_);
  Statement insert(*db_,
                   "INSERT OR REPLACE INTO analyses(run, prompt_id, idx, n_faces, gender, age, race, analysis) "
                   "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
  for (const auto& r : rows) {
    insert.bind(1, r.run)
        .bind(2, r.prompt_id)
        .bind(3, r.index)
        .bind(4, r.n_faces)
        .bind(5, r.gender)
        .bind(6, r.age)
        .bind(7, r.race)
        .bind(8, r.analysis.dump())
        .run();
  }
  t.commit();
}

std::vector<AnalysisRow> RunStore::analyses(const std::string& run) {
  Statement s(*db_,
              "SELECT a.prompt_id, a.idx, a.n_faces, a.gender, a.age, a.race, a.analysis FROM analyses a LEFT JOIN "
              "prompts p ON p.run=a.run AND p.prompt_id=a.prompt_id WHERE a.run=?1 ORDER BY p.position, "
              "a.prompt_id, a.idx");
  s.bind(1, run);
  std::vector<AnalysisRow> rows;
  while (s.step()) {
    AnalysisRow r;
    r.run = run;
    r.prompt_id = s.text(0);
    r.index = s.integer(1);
    r.n_faces = s.integer(2);
    r.gender = s.text(3);
    r.age = s.text(4);
    r.race = s.text(5);
    r.analysis = Json::parse(s.text(6));
    rows.push_back(std::move(r));
  }
  return rows;
}

std::set<std::pair<std::string, int64_t>> RunStore::analysis_keys(const std::string& run) {
  Statement s(*db_, "SELECT prompt_id, idx FROM analyses WHERE run=?1");
  s.bind(1, run);
  std::set<std::pair<std::string, int64_t>> keys;
  while (s.step()) keys.emplace(s.text(0), s.integer(1));
  return keys;
}

void RunStore::put_plan(const std::vector<std::map<std::string, std::string>>& rows, const std::string& csv) {
  Statement(*db_, "DELETE FROM plan").run();
  Statement insert(*db_, "INSERT INTO plan(position, row) VALUES(?1, ?2)");
  int64_t position = 0;
  for (const auto& row : rows) insert.bind(1, position++).bind(2, Json(row).dump()).run();
  Statement(*db_, "INSERT OR REPLACE INTO meta(key, value) VALUES('plan_csv', ?1)").bind(1, csv).run();
}

std::vector<std::map<std::string, std::string>> RunStore::plan() {
  Statement s(*db_, "SELECT row FROM plan ORDER BY position");
  std::vector<std::map<std::string, std::string>> rows;
  while (s.step()) rows.push_back(Json::parse(s.text(0)).get<std::map<std::string, std::string>>());
  return rows;
}

void RunStore::put_model(const ModelRow& row) {
  Statement(*db_,
            "INSERT OR REPLACE INTO models(cell, path, settings, loss_curve, final_loss, seconds) VALUES(?1, ?2, ?3, "
            "?4, ?5, ?6)")
      .bind(1, row.cell)
      .bind(2, row.path)
      .bind(3, row.settings.dump())
      .bind(4, row.loss_curve_csv)
      .bind(5, row.final_loss)
      .bind(6, row.seconds)
      .run();
}

std::optional<ModelRow> RunStore::model(const std::string& cell) {
  Statement s(*db_, "SELECT path, settings, loss_curve, final_loss, seconds FROM models WHERE cell=?1");
  s.bind(1, cell);
  if (!s.step()) return std::nullopt;
  return ModelRow{cell, s.text(0), Json::parse(s.text(1)), s.text(2), s.real(3), s.real(4)};
}

void RunStore::put_metric(const std::string& run, const std::string& key, double value, double low, double high) {
  Statement s(*db_, "INSERT OR REPLACE INTO metrics(run, key, value, low, high) VALUES(?1, ?2, ?3, ?4, ?5)");
  s.bind(1, run).bind(2, key);
  bind_real(s, 3, value);
  bind_real(s, 4, low);
  bind_real(s, 5, high);
  s.run();
}

std::map<std::string, std::map<std::string, std::vector<double>>> RunStore::metrics() {
  Statement s(*db_, "SELECT run, key, value, low, high FROM metrics ORDER BY run, key");
  std::map<std::string, std::map<std::string, std::vector<double>>> out;
  while (s.step()) out[s.text(0)][s.text(1)] = {read_real(s, 2), read_real(s, 3), read_real(s, 4)};
  return out;
}

std::string RunStore::dump_without_timings() {
  // Tables and columns that do not depend on when or how fast the work ran.
  const std::vector<std::pair<std::string, std::string>> queries = {
      {"stages", "SELECT name, status, settings_hash, settings, work_total FROM stages ORDER BY name"},
      {"runs", "SELECT name, info FROM runs ORDER BY name"},
      {"prompts", "SELECT * FROM prompts ORDER BY run, position"},
      {"images", "SELECT * FROM images ORDER BY run, prompt_id, idx"},
      {"analyses", "SELECT * FROM analyses ORDER BY run, prompt_id, idx"},
      {"plan", "SELECT * FROM plan ORDER BY position"},
      {"models", "SELECT cell, path, settings, loss_curve, final_loss FROM models ORDER BY cell"},
      {"metrics", "SELECT * FROM metrics ORDER BY run, key"},
  };
  std::string text;
  for (const auto& [table, sql] : queries) {
    text += "[" + table + "]\n";
    Statement s(*db_, sql);
    while (s.step()) {
      for (int c = 0; c < s.columns(); ++c) text += (c ? "|" : "") + (s.is_null(c) ? std::string("NULL") : s.text(c));
      text += "\n";
    }
  }
  return text;
}

}  // namespace fairdiff::study
