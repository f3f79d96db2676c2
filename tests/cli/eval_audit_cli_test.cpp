// Issue 14 items 2 and 3 end to end: `analyze` records the face profile that labelled a run, `report` then corrects
// with that profile's confusion matrices by default and says so (--no-correction, --confusion override it); and
// `fairdiff eval-audit`, the known-truth audit of labeled photos drawn to a mix per prompt.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "core/csv.h"
#include "core/fs.h"
#include "core/json.h"
#include "test_paths.h"

namespace fairdiff {
namespace {

namespace fs = std::filesystem;

const std::string kExe = FAIRDIFF_EXE;

fs::path faces() {
  return test::shared_dir() / "faces" / "fairface_margin125";
}

TEST(ReportCli, CorrectsWithTheConfusionOfTheProfileAnalyzeRecorded) {
  const fs::path root = test::scratch_dir("report_profile_correction");
  const fs::path images = root / "images";
  fs::create_directories(images / "ceo");
  fs::create_directories(images / "nurse");
  for (int i = 1; i <= 3; ++i) {
    char name[32];
    std::snprintf(name, sizeof(name), "fairface_%04d.jpg", i);
    fs::copy_file(faces() / name, images / "ceo" / name);
    std::snprintf(name, sizeof(name), "fairface_%04d.jpg", i + 3);
    fs::copy_file(faces() / name, images / "nurse" / name);
  }
  std::string log;
  ASSERT_EQ(test::run_command(
                kExe + " analyze --images " + images.string() + " --by-folder --out " + (root / "run").string(), &log),
            0)
      << log;
  const Json info = read_json_file(root / "run" / "analysis.json");
  EXPECT_EQ(info["profile"], "default");
  const std::string shipped = (test::source_dir() / "models/faces/fairface_heads.confusion.json").string();
  EXPECT_EQ(fs::weakly_canonical(info["confusion"].get<std::string>()), fs::weakly_canonical(shipped));

  write_file_atomic(root / "prompts.csv", "prompt_id,prompt\nceo,A photo of a CEO\nnurse,A photo of a nurse\n");
  const std::string report = kExe + " report --prompts " + (root / "prompts.csv").string() +
                             " --bootstrap 50 --no-thumbnails --run base=" + (root / "run/detections.csv").string();
  ASSERT_EQ(test::run_command(report + " --out " + (root / "corrected").string(), &log), 0) << log;
  EXPECT_NE(log.find("correcting the classifier's errors with its profile's confusion matrices"), std::string::npos)
      << log;
  Json metrics = read_json_file(root / "corrected" / "metrics.json");
  EXPECT_TRUE(metrics["runs"][0].contains("corrected")) << metrics["runs"][0].dump().substr(0, 400);

  ASSERT_EQ(test::run_command(report + " --no-correction --out " + (root / "raw").string(), &log), 0) << log;
  EXPECT_EQ(log.find("correcting"), std::string::npos) << log;
  metrics = read_json_file(root / "raw" / "metrics.json");
  EXPECT_FALSE(metrics["runs"][0].contains("corrected"));

  EXPECT_EQ(
      test::run_command(report + " --no-correction --confusion " + shipped + " --out " + (root / "x").string(), &log),
      2)
      << log;
  EXPECT_NE(log.find("contradict"), std::string::npos) << log;

  // A run whose folder does not say which profile labelled it is reported raw, and the report says why.
  fs::create_directories(root / "bare");
  fs::copy_file(root / "run/detections.csv", root / "bare/detections.csv");
  ASSERT_EQ(test::run_command(kExe + " report --prompts " + (root / "prompts.csv").string() +
                                  " --bootstrap 50 --no-thumbnails --run base=" +
                                  (root / "bare/detections.csv").string() + " --out " + (root / "bare_out").string(),
                              &log),
            0)
      << log;
  EXPECT_NE(log.find("not corrected for the classifier's errors: run 'base' does not say which face profile"),
            std::string::npos)
      << log;
}

// The first 160 FairFace photos (7-19 per gender x race cell) drawn to two prompts' mixes.
struct EvalAuditInputs {
  fs::path root, labels, prompts, target;
};

EvalAuditInputs eval_audit_inputs(const std::string& name) {
  EvalAuditInputs in;
  in.root = test::scratch_dir(name);
  std::ifstream all(faces() / "labels.csv");
  std::string line, subset;
  for (int i = 0; i <= 160 && std::getline(all, line); ++i) subset += line + "\n";
  in.labels = in.root / "labels.csv";
  write_file_atomic(in.labels, subset);
  in.prompts = in.root / "prompts.csv";
  write_file_atomic(in.prompts, "prompt_id,prompt\nceo,A photo of a CEO\nnurse,A photo of a nurse\n");
  std::string target = "prompt_id,attribute,group,share\n";
  for (const char* gender : {"Male", "Female"}) {
    for (const char* race : {"asian", "indian", "white", "black", "middle eastern", "latino hispanic"}) {
      const std::string group = std::string(gender) + " " + race;
      const char* ceo = group == "Male white" ? "0.6" : group == "Male black" || group == "Female asian" ? "0.2" : "0";
      const char* nurse = group == "Female white" || group == "Female black" ? "0.5" : "0";
      target += "ceo,gender_race," + group + "," + ceo + "\nnurse,gender_race," + group + "," + nurse + "\n";
    }
  }
  in.target = in.root / "target.csv";
  write_file_atomic(in.target, target);
  return in;
}

TEST(EvalAuditCli, ScoresAKnownTruthAuditRawAndCorrected) {
  const EvalAuditInputs in = eval_audit_inputs("eval_audit_cli");
  const std::string command = kExe + " eval-audit --images " + faces().string() + " --labels " + in.labels.string() +
                              " --prompts " + in.prompts.string() + " --target " + in.target.string() +
                              " --images-per-prompt 30 --bootstrap 200 --no-report";
  std::string log;
  ASSERT_EQ(test::run_command(command + " --out " + (in.root / "out").string(), &log), 0) << log;
  EXPECT_NE(log.find("60 photos over 2 prompts"), std::string::npos) << log;
  EXPECT_NE(log.find("corrected with"), std::string::npos) << log;
  EXPECT_NE(log.find("MAE raw"), std::string::npos) << log;

  const Json json = read_json_file(in.root / "out" / "eval-audit.json");
  EXPECT_EQ(json["images"], 60);
  EXPECT_EQ(json["profile"], "default");
  for (const char* attribute : {"gender", "race", "gender_race"}) {
    const Json& a = json["attributes"][attribute];
    EXPECT_GE(a["mean_abs_error_raw"].get<double>(), 0.0) << attribute;
    EXPECT_LT(a["mean_abs_error_raw"].get<double>(), 0.5) << attribute;
    ASSERT_TRUE(a["mean_abs_error_corrected"].is_number()) << attribute;
    EXPECT_GE(a["coverage_corrected"].get<double>(), 0.0) << attribute;
    EXPECT_LE(a["coverage_corrected"].get<double>(), 1.0) << attribute;
  }
  EXPECT_EQ(json["attributes"]["gender"]["shares"], 4);
  EXPECT_EQ(json["attributes"]["race"]["shares"], 12);

  // The drawn photos are the mix asked for: 18 Male white, 6 Male black, 6 Female asian for the CEO.
  const CsvTable detections = read_csv(in.root / "out" / "detections.csv");
  EXPECT_EQ(detections.rows.size(), 60U);
  const CsvTable shares = read_csv(in.root / "out" / "shares.csv");
  bool seen = false;
  for (const auto& row : shares.rows) {
    if (row.fields[0] == "ceo" && row.fields[1] == "gender" && row.fields[2] == "Male") {
      EXPECT_EQ(row.fields[3], "0.8");
      EXPECT_FALSE(row.fields[7].empty());  // corrected
      seen = true;
    }
  }
  EXPECT_TRUE(seen) << shares.rows.size();

  // The same seed draws the same photos; --no-correction scores the raw labels only.
  ASSERT_EQ(test::run_command(command + " --no-correction --out " + (in.root / "raw").string(), &log), 0) << log;
  EXPECT_EQ(read_csv(in.root / "raw" / "detections.csv").rows.size(), 60U);
  std::ifstream a(in.root / "out" / "detections.csv"), b(in.root / "raw" / "detections.csv");
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(a), {}), std::string(std::istreambuf_iterator<char>(b), {}));
  const Json raw = read_json_file(in.root / "raw" / "eval-audit.json");
  EXPECT_TRUE(raw["attributes"]["gender"]["mean_abs_error_corrected"].is_null());
  EXPECT_EQ(raw["attributes"]["gender"]["mean_abs_error_raw"], json["attributes"]["gender"]["mean_abs_error_raw"]);
}

// --calibrate-on: part of the photos measures the confusion matrices (written for report --confusion), the rest is
// audited and corrected with them.
TEST(EvalAuditCli, CalibratesOnPhotosSetAsideAndAuditsTheRest) {
  const EvalAuditInputs in = eval_audit_inputs("eval_audit_cli_calibrate");
  std::string log;
  ASSERT_EQ(test::run_command(kExe + " eval-audit --images " + faces().string() + " --labels " + in.labels.string() +
                                  " --prompts " + in.prompts.string() + " --target " + in.target.string() +
                                  " --images-per-prompt 30 --bootstrap 100 --no-report --calibrate-on 0.3 --out " +
                                  (in.root / "out").string(),
                              &log),
            0)
      << log;
  EXPECT_NE(log.find("photos set aside"), std::string::npos) << log;
  const Json matrices = read_json_file(in.root / "out" / "confusion.json");
  EXPECT_EQ(matrices["gender"]["labels"].size(), 2U);
  EXPECT_EQ(matrices["race"]["labels"].size(), 6U);
  const Json json = read_json_file(in.root / "out" / "eval-audit.json");
  const int64_t set_aside = json["calibration_photos"].get<int64_t>();
  EXPECT_GT(set_aside, 40);
  EXPECT_LT(set_aside, 56);
  EXPECT_EQ(matrices["photos"].get<int64_t>(), set_aside);
  EXPECT_TRUE(json["attributes"]["race"]["mean_abs_error_corrected"].is_number());
  EXPECT_NE(json["confusion"].get<std::string>().find("confusion.json"), std::string::npos);
  // Fewer photos are left for the draw: the CEO's 18 Male white photos of 30 no longer fit.
  EXPECT_LT(json["images"].get<int64_t>(), 60);
  // The matrices serve report --confusion.
  ASSERT_EQ(test::run_command(kExe + " report --prompts " + in.prompts.string() +
                                  " --run photos=" + (in.root / "out" / "detections.csv").string() + " --confusion " +
                                  (in.root / "out" / "confusion.json").string() +
                                  " --bootstrap 20 --no-thumbnails --out " + (in.root / "report").string(),
                              &log),
            0)
      << log;
  EXPECT_EQ(test::run_command(kExe + " eval-audit --images " + faces().string() + " --labels " + in.labels.string() +
                                  " --calibrate-on 0.3 --no-correction --out " + (in.root / "x").string(),
                              &log),
            2);
  EXPECT_NE(log.find("--calibrate-on measures its own"), std::string::npos) << log;
}

TEST(EvalAuditCli, BadInputsFailBeforeAnyWork) {
  const EvalAuditInputs in = eval_audit_inputs("eval_audit_cli_errors");
  const std::string base = kExe + " eval-audit --images " + faces().string() + " --labels " + in.labels.string();
  std::string log;
  EXPECT_EQ(test::run_command(base + " --prompts " + in.prompts.string() + " --out " + (in.root / "a").string(), &log),
            2);
  EXPECT_NE(log.find("--prompts and --target go together"), std::string::npos) << log;
  EXPECT_EQ(
      test::run_command(
          base + " --no-correction --confusion " + in.labels.string() + " --out " + (in.root / "b").string(), &log),
      2);
  EXPECT_NE(log.find("contradict"), std::string::npos) << log;
  EXPECT_EQ(test::run_command(kExe + " eval-audit --images /nonexistent --out " + (in.root / "c").string(), &log), 3);
  EXPECT_NE(log.find("/nonexistent"), std::string::npos) << log;
  EXPECT_EQ(test::run_command(base + " --images-per-prompt 0 --out " + (in.root / "d").string(), &log), 2);
  EXPECT_NE(log.find("--images-per-prompt"), std::string::npos) << log;
  // Labels without a single middle eastern photo cannot be drawn to a mix that wants some; nothing is analyzed.
  std::ifstream all(in.labels);
  std::string line, subset;
  while (std::getline(all, line))
    if (line.find("Middle Eastern") == std::string::npos) subset += line + "\n";
  write_file_atomic(in.root / "no_me.csv", subset);
  std::string target = "prompt_id,attribute,group,share\n*,race,middle eastern,1\n";
  for (const char* race : {"asian", "indian", "white", "black", "latino hispanic"})
    target += std::string("*,race,") + race + ",0\n";
  write_file_atomic(in.root / "me.csv", target);
  EXPECT_EQ(
      test::run_command(kExe + " eval-audit --images " + faces().string() + " --labels " +
                            (in.root / "no_me.csv").string() + " --prompts " + in.prompts.string() + " --target " +
                            (in.root / "me.csv").string() + " --no-report --out " + (in.root / "e").string(),
                        &log),
      3);
  EXPECT_NE(log.find("prompt 'ceo' wants Male middle eastern faces and the labeled photos have none"),
            std::string::npos)
      << log;
  EXPECT_FALSE(fs::exists(in.root / "e" / "detections.csv"));
}

}  // namespace
}  // namespace fairdiff
