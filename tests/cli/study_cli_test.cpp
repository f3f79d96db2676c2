// The study commands end to end on the tiny fixture model: `study init`, `audit`/`mitigate --dry-run`, a whole
// mitigation study (audit -> plan -> augment -> class images -> fine-tune -> audit -> report), `status`, bad
// inputs, and the kill -9 harness: the study killed at random moments and rerun gives exactly the uninterrupted
// run's images, store contents and report numbers.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>

#include "core/csv.h"
#include "core/fs.h"
#include "core/json.h"
#include "core/prompts.h"
#include "core/sha256.h"
#include "core/strings.h"
#include "study/run_store.h"
#include "test_paths.h"

namespace fairdiff {
namespace {
namespace fs = std::filesystem;

std::string exe() {
  return FAIRDIFF_EXE;
}
std::string q(const fs::path& p) {
  return "'" + p.string() + "'";
}

// A tiny study: two prompts, three images each, a one-cell grid (or `cells` cells) on the tiny SD2 fixture.
fs::path write_tiny_study(const fs::path& dir, const std::string& grid = "lr_scheduler = [\"constant\"]\n") {
  fs::create_directories(dir);
  std::ofstream(dir / "prompts.csv") << "prompt_id,prompt\nceo,A photo of a CEO of an important company\n"
                                        "nurse,A photo of a nurse at work\n";
  std::ofstream(dir / "study.toml") << "name = \"tiny\"\nmodel = " << Json((test::fixtures_dir() / "tiny-sd2").string())
                                    << "\ndevice = \"cpu\"\nprompts = \"prompts.csv\"\n"
                                       "[generation]\nimages_per_prompt = 3\nsteps = 2\nbatch_size = 2\n"
                                       "[plan]\nimages_per_group = 1\n"
                                       "[mitigation]\n"
                                    << grid
                                    << "num_class_images = [2]\nmax_train_steps = [4]\ncheckpointing_steps = 2\n"
                                       "learning_rate = 1e-4\n"
                                       "[evaluation]\nimages_per_prompt = 3\n"
                                       "[report]\nbootstrap = 50\npaired_images = 2\n";
  return dir / "study.toml";
}

std::string mitigate_command(const fs::path& config) {
  return exe() + " mitigate --config " + q(config);
}

// Everything that must not depend on interruptions: the store without timings, every image's bytes (and that
// each matches the store's SHA-256), the report's numbers and tables.
struct StudyState {
  std::string store_dump;
  std::map<std::string, std::string> files;  // relative path -> sha256 (images, exports, report numbers)
};

StudyState read_state(const fs::path& dir) {
  StudyState state;
  study::RunStore store(dir);
  state.store_dump = store.dump_without_timings();
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    const std::string rel = fs::relative(entry.path(), dir).string();
    const std::string ext = entry.path().extension().string();
    const bool compared = ext == ".png" || ext == ".csv" || entry.path().filename() == "metrics.json";
    if (rel.rfind("study.sqlite", 0) == 0) continue;
    // A leftover temporary file would be a half-written output.
    EXPECT_EQ(rel.find(".tmp"), std::string::npos) << "left behind: " << rel;
    if (compared) state.files[rel] = sha256_file(entry.path());
  }
  return state;
}

std::string running_stage(const fs::path& dir) {
  std::error_code ec;
  if (!fs::exists(study::RunStore::file_in(dir), ec)) return "(before the store)";
  study::RunStore store(dir);
  std::string last = "(between stages)";
  for (const auto& s : store.stages())
    if (s.status == "running") last = s.name;
  return last;
}

pid_t spawn(const std::vector<std::string>& args, const fs::path& log) {
  const pid_t pid = fork();
  if (pid == 0) {
    FILE* out = std::fopen(log.c_str(), "a");
    if (out) {
      dup2(fileno(out), 1);
      dup2(fileno(out), 2);
    }
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

TEST(StudyCli, InitWritesTheSeedStudyAndDryRunListsItsStages) {
  const fs::path dir = test::scratch_dir("StudyCli.Init");
  std::string output;
  ASSERT_EQ(test::run_command(exe() + " study init --out " + q(dir / "study.toml") + " --model " +
                                  q(test::fixtures_dir() / "tiny-sd2"),
                              &output),
            0)
      << output;
  EXPECT_TRUE(fs::is_regular_file(dir / "prompts.csv"));
  EXPECT_NE(test::run_command(exe() + " study init --out " + q(dir / "study.toml"), &output), 0);
  EXPECT_NE(output.find("already exists"), std::string::npos) << output;

  ASSERT_EQ(test::run_command(exe() + " mitigate --dry-run --config " + q(dir / "study.toml"), &output), 0) << output;
  EXPECT_NE(output.find("generate:base"), std::string::npos) << output;
  EXPECT_NE(output.find("1000 images"), std::string::npos) << output;  // 10 prompts x 100
  EXPECT_NE(output.find("finetune:dreambooth-polynomial-c300-s1000"), std::string::npos) << output;
  EXPECT_NE(output.find("known after the plan"), std::string::npos) << output;
  EXPECT_FALSE(fs::exists(dir / "study.sqlite"));  // a dry run writes nothing
}

TEST(StudyCli, MitigateRunsTheWholeStudyThenStatusSaysDone) {
  const fs::path dir = test::scratch_dir("StudyCli.Mitigate");
  const fs::path config = write_tiny_study(dir, "methods = [\"dreambooth\", \"lora\"]\nlr_scheduler = [\"linear\"]\n");
  std::string output;
  ASSERT_EQ(test::run_command(mitigate_command(config), &output), 0) << output;
  EXPECT_NE(output.find("report: "), std::string::npos) << output;
  for (const char* file : {"runs/base/detections.csv", "runs/base/faces.csv", "plan.csv", "augment/instance.csv",
                           "runs/dreambooth-linear-c2-s4/detections.csv", "runs/lora-linear-c2-s4/detections.csv",
                           "models/dreambooth-linear-c2-s4/unet/diffusion_pytorch_model.safetensors",
                           "report/report.html", "report/metrics.json"}) {
    EXPECT_TRUE(fs::is_regular_file(dir / file)) << file;
  }
  study::RunStore store(dir);
  EXPECT_EQ(store.images("base").size(), 6u);
  EXPECT_EQ(store.analyses("base").size(), 6u);
  EXPECT_EQ(store.images("class").size(), 4u);  // two occupations x 2 class images
  EXPECT_FALSE(store.plan().empty());
  // Noise images have no faces: the plan warns instead of silently planning every cell at share 0.
  EXPECT_NE(output.find("no face"), std::string::npos) << output;
  ASSERT_TRUE(store.model("lora-linear-c2-s4"));
  EXPECT_NE(store.model("lora-linear-c2-s4")->loss_curve_csv.find("step,loss"), std::string::npos);
  const std::string html = read_file(dir / "report" / "report.html");
  for (const char* section : {"id=\"grid\"", "id=\"targeted\"", "id=\"paired\"", "id=\"provenance\"",
                              "../runs/lora-linear-c2-s4/images/ceo/00001.png", "<svg"}) {
    EXPECT_NE(html.find(section), std::string::npos) << section;
  }

  ASSERT_EQ(test::run_command(exe() + " status " + q(dir), &output), 0) << output;
  EXPECT_NE(output.find("stages done"), std::string::npos) << output;
  EXPECT_EQ(output.find("to do"), std::string::npos) << output;

  // A rerun finds everything done and changes nothing.
  const std::string before = store.dump_without_timings();
  ASSERT_EQ(test::run_command(mitigate_command(config), &output), 0) << output;
  EXPECT_EQ(study::RunStore(dir).dump_without_timings(), before);
  EXPECT_EQ(output.find("generate:"), std::string::npos) << output;  // no stage did any work
}

// Every training-free method beside a DreamBooth cell, in one study: each gets its run (images generated with the
// method, or with the UCE-edited model), the report ranks them all, and a rerun redoes nothing.
TEST(StudyCli, TrainingFreeMethodsRunBesideDreamBoothAndAreRanked) {
  const fs::path dir = test::scratch_dir("StudyCli.TrainingFree");
  const fs::path config = write_tiny_study(
      dir,
      "methods = [\"dreambooth\", \"balanced_prompting\", \"projection\", \"fair_diffusion\", \"uce\"]\n"
      "lr_scheduler = [\"constant\"]\nfair_diffusion_warmup_steps = 0\n");
  std::string output;
  ASSERT_EQ(test::run_command(exe() + " mitigate --dry-run --config " + q(config), &output), 0) << output;
  for (const char* stage : {"finetune:dreambooth-constant-c2-s4", "generate:balanced_prompting", "edit:uce",
                            "analyze:fair_diffusion", "generate:projection"}) {
    EXPECT_NE(output.find(stage), std::string::npos) << stage << "\n" << output;
  }
  ASSERT_EQ(test::run_command(mitigate_command(config), &output), 0) << output;
  study::RunStore store(dir);
  std::map<std::string, std::string> digests;  // run/prompt/index -> sha256
  for (const std::string run :
       {"base", "dreambooth-constant-c2-s4", "balanced_prompting", "projection", "fair_diffusion", "uce"}) {
    const auto images = store.images(run);
    ASSERT_EQ(images.size(), 6u) << run;
    EXPECT_EQ(store.analyses(run).size(), 6u) << run;
    for (const auto& image : images)
      digests[run + "/" + image.prompt_id + "/" + std::to_string(image.index)] = image.sha256;
  }
  // Each method changes the pixels of the same-seed image.
  for (const std::string run : {"balanced_prompting", "projection", "fair_diffusion", "uce"}) {
    int same = 0;
    for (const std::string id : {"ceo/0", "ceo/1", "ceo/2", "nurse/0", "nurse/1", "nurse/2"})
      same += digests.at(run + "/" + id) == digests.at("base/" + id);
    EXPECT_EQ(same, 0) << run;
  }
  EXPECT_EQ(store.run_info("projection")["mitigation"]["method"], "projection");
  EXPECT_EQ(store.run_info("fair_diffusion")["mitigation"]["method"], "fair_diffusion");
  ASSERT_TRUE(store.model("uce"));
  EXPECT_EQ(store.model("uce")->settings["method"], "uce");
  EXPECT_TRUE(fs::is_regular_file(dir / "models" / "uce" / "unet" / "diffusion_pytorch_model.safetensors"));
  const std::string html = read_file(dir / "report" / "report.html");
  for (const char* section : {"id=\"ranking\"", "<td>balanced_prompting</td>", "<td>projection</td>",
                              "<td>fair_diffusion</td>", "<td>uce</td>", "<td>DreamBooth</td>",
                              // the edited model's provenance: its edit, not a fine-tuning loss curve
                              "<td>uce of gender_race, preserve scale 0.1"}) {
    EXPECT_NE(html.find(section), std::string::npos) << section;
  }
  const auto metrics = store.metrics();
  for (const std::string run : {"balanced_prompting", "projection", "fair_diffusion", "uce"}) {
    ASSERT_TRUE(metrics.count(run)) << run;
    for (const char* key : {"change_shen_gender_normalized", "change_shen_race_normalized",
                            "change_shen_gender_race_normalized", "face_share"})
      EXPECT_TRUE(metrics.at(run).count(key)) << run << " " << key;
  }
  const std::string before = store.dump_without_timings();
  ASSERT_EQ(test::run_command(mitigate_command(config), &output), 0) << output;
  EXPECT_EQ(study::RunStore(dir).dump_without_timings(), before);
  EXPECT_EQ(output.find("generate:"), std::string::npos) << output;
}

// The README's main job, shortened for CI: the whole study on the built-in model (models/builtin), which makes
// faces, so the audit finds and classifies them, the plan targets real groups and the report shows faces.
TEST(StudyCli, BuiltinModelStudyFindsFacesAndWritesTheReport) {
  const fs::path dir = test::scratch_dir("StudyCli.Builtin");
  fs::create_directories(dir);
  std::ofstream(dir / "prompts.csv") << "prompt_id,prompt\ndelivery,A photo of a delivery driver\n"
                                        "cleaning,A photo of a cleaning worker\n";
  std::ofstream(dir / "study.toml") << "name = \"builtin-ci\"\nmodel = \"builtin\"\ndevice = \"cpu\"\n"
                                       "prompts = \"prompts.csv\"\n"
                                       "[generation]\nimages_per_prompt = 6\nsteps = 10\nscheduler = \"ddim\"\n"
                                       "batch_size = 6\n"
                                       "[plan]\nimages_per_group = 1\n"
                                       "[mitigation]\nlr_scheduler = [\"constant\"]\nmax_train_steps = [5]\n"
                                       "prior_preservation = false\ninstance_captions = \"base\"\n"
                                       "augment_check = \"group\"\naugment_oversample = 3\n"
                                       "learning_rate = 1e-4\ntrain_batch_size = 2\n"
                                       "[evaluation]\nimages_per_prompt = 6\n"
                                       "[report]\nbootstrap = 50\npaired_images = 2\n";
  std::string output;
  ASSERT_EQ(test::run_command(mitigate_command(dir / "study.toml"), &output), 0) << output;
  study::RunStore store(dir);
  for (const std::string run : {"base", "dreambooth-constant-c0-s5"}) {
    const auto rows = store.analyses(run);
    ASSERT_EQ(rows.size(), 12u) << run;
    int64_t with_face = 0;
    for (const auto& row : rows) with_face += row.n_faces > 0 ? 1 : 0;
    EXPECT_GE(with_face, 11) << run << ": the built-in model makes faces (99.8% of 1,000 images at guidance 7.5)";
  }
  // Faces were found, so the plan targets groups by their measured shares (no "no face" warning).
  EXPECT_FALSE(store.plan().empty());
  EXPECT_EQ(output.find("no face"), std::string::npos) << output;
  // The group check: three candidates per image wanted, read by the face analysis; only those read as their
  // planned gender and race train.
  int64_t wanted = 0;
  std::map<std::string, std::pair<std::string, std::string>> group;  // plan group id -> (gender, race)
  for (const auto& row : store.plan()) {
    wanted += std::stoll(row.at("n_images"));
    group[plan_group_id(row.at("prompt_id"), row.at("gender"), row.at("race"))] = {row.at("gender"), row.at("race")};
  }
  EXPECT_EQ(static_cast<int64_t>(store.images("augment").size()), 3 * wanted);
  std::map<std::string, std::pair<std::string, std::string>> read_as;  // image file -> (gender, race) read
  for (const auto& row : store.analyses("augment"))
    read_as[row.prompt_id + "/" + std::to_string(row.index)] = {row.gender, row.race};
  EXPECT_EQ(read_as.size(), store.images("augment").size());
  const CsvTable instance = read_csv(dir / "augment" / "instance.csv");
  EXPECT_GT(instance.rows.size(), 0u);
  EXPECT_LE(static_cast<int64_t>(instance.rows.size()), wanted);
  for (const auto& row : instance.rows) {
    const fs::path path = row.fields.at(0);  // ../runs/augment/images/<group>/<index>.png
    const std::string id = path.parent_path().filename().string();
    const std::string file = id + "/" + std::to_string(std::stoll(path.stem().string()));
    ASSERT_TRUE(read_as.count(file) && group.count(id)) << path;
    EXPECT_EQ(to_lower(read_as.at(file).first), to_lower(group.at(id).first)) << file;
    EXPECT_EQ(to_lower(read_as.at(file).second), to_lower(group.at(id).second)) << file;
  }
  const std::string html = read_file(dir / "report" / "report.html");
  for (const char* section : {"id=\"grid\"", "id=\"paired\"", "../runs/base/images/delivery/00001.png"}) {
    EXPECT_NE(html.find(section), std::string::npos) << section;
  }
}

TEST(StudyCli, BadInputsFailClearlyBeforeAnyWork) {
  const fs::path dir = test::scratch_dir("StudyCli.Bad");
  const fs::path config = write_tiny_study(dir);
  std::string output;
  std::ofstream(config, std::ios::app) << "[generation]\nstesp = 3\n";
  EXPECT_EQ(test::run_command(exe() + " audit --config " + q(config), &output), 3) << output;
  EXPECT_NE(output.find("study.toml:"), std::string::npos) << output;
  EXPECT_NE(output.find("generation"), std::string::npos) << output;

  write_tiny_study(dir);
  std::string text = read_file(config);
  text.replace(text.find("tiny-sd2"), 8, "no-such-model");
  write_file_atomic(config, text);
  EXPECT_EQ(test::run_command(exe() + " audit --config " + q(config), &output), 3) << output;
  EXPECT_NE(output.find("no-such-model"), std::string::npos) << output;
  EXPECT_FALSE(fs::exists(dir / "runs"));  // nothing was generated

  write_tiny_study(dir);
  EXPECT_NE(test::run_command(exe() + " audit --config " + q(config) + " --dir /proc/fairdiff-study", &output), 0);
  EXPECT_NE(output.find("/proc/fairdiff-study"), std::string::npos) << output;

  EXPECT_EQ(test::run_command(exe() + " status " + q(dir / "nothing-here"), &output), 3) << output;
  EXPECT_NE(output.find("no study in"), std::string::npos) << output;
}

// A write error (a file-size limit, which fails writes with EFBIG the way a full disk fails them with ENOSPC) stops
// the audit with one clear error; rerun with room, it completes with exactly the uninterrupted result.
TEST(StudyCli, WriteErrorStopsWithAClearErrorAndTheRerunLosesNothing) {
  const fs::path root = test::scratch_dir("StudyCli.WriteError");
  const fs::path reference_config = write_tiny_study(root / "reference");
  std::string output;
  ASSERT_EQ(test::run_command(exe() + " audit --config " + q(reference_config), &output), 0) << output;
  const StudyState reference = read_state(root / "reference");

  const fs::path config = write_tiny_study(root / "limited");
  int failures = 0;
  // Growing limits (KiB): each run gets further before a write fails; everything written before is kept.
  for (int limit_kib : {8, 24, 64, 160}) {
    const int rc = test::run_command("bash -c \"trap '' XFSZ; ulimit -f " + std::to_string(limit_kib) + "; exec " +
                                         exe() + " audit --config " + q(config) + "\"",
                                     &output);
    if (rc == 0) break;
    ++failures;
    EXPECT_LT(rc, 128) << "a write error must be an error, not a crash: " << output;
    EXPECT_TRUE(output.find("disk") != std::string::npos || output.find("File too large") != std::string::npos)
        << output;
  }
  EXPECT_GE(failures, 2) << "the limits must stop the audit at least twice";
  ASSERT_EQ(test::run_command(exe() + " audit --config " + q(config), &output), 0) << output;
  const StudyState state = read_state(root / "limited");
  EXPECT_EQ(state.store_dump, reference.store_dump);
  EXPECT_EQ(state.files, reference.files);
}

// kill -9 at random moments of a whole mitigation study; each interrupted study is rerun until it completes and
// must equal the uninterrupted one: nothing lost, duplicated, half-written or different.
// `audit --shard K/N` on two "machines", then `audit` on the study folder: the store, images, exports and report
// of the unsharded audit. A shard made with other settings is refused by name.
TEST(StudyCli, ShardedAuditThenAuditEqualsTheUnshardedAudit) {
  const fs::path root = test::scratch_dir("StudyCli.Shards");
  std::string output;
  const fs::path reference_config = write_tiny_study(root / "reference");
  ASSERT_EQ(test::run_command(exe() + " audit --config " + q(reference_config), &output), 0) << output;
  const StudyState reference = read_state(root / "reference");

  const fs::path dir = root / "sharded";
  const fs::path config = write_tiny_study(dir);
  for (const char* shard : {"1/2", "0/2"}) {
    ASSERT_EQ(test::run_command(exe() + " audit --config " + q(config) + " --shard " + shard, &output), 0) << output;
    EXPECT_NE(output.find("shard " + std::string(shard) + ": "), std::string::npos) << output;
  }
  // Batches of 2 over 6 images: shard 0 owns batches 0 and 2, shard 1 batch 1.
  EXPECT_EQ(study::RunStore(dir / "shards" / "0-of-2").images("base").size(), 4u);
  EXPECT_EQ(study::RunStore(dir / "shards" / "1-of-2").images("base").size(), 2u);
  EXPECT_FALSE(fs::exists(study::RunStore::file_in(dir))) << "a shard writes only its own folder";
  ASSERT_EQ(test::run_command("FAIRDIFF_NO_SHARD=1 " + exe() + " audit --config " + q(config), &output), 0) << output;
  EXPECT_NE(output.find("took 6 images and 6 analyses from the shard folders"), std::string::npos) << output;
  StudyState state = read_state(dir);
  for (auto it = state.files.begin(); it != state.files.end();)
    it = it->first.rfind("shards/", 0) == 0 ? state.files.erase(it) : std::next(it);
  EXPECT_EQ(state.store_dump, reference.store_dump);
  ASSERT_EQ(state.files.size(), reference.files.size());
  for (const auto& [file, digest] : reference.files) {
    auto it = state.files.find(file);
    ASSERT_NE(it, state.files.end()) << "missing: " << file;
    EXPECT_EQ(it->second, digest) << "differs: " << file;
  }

  const fs::path other = root / "other";
  const fs::path other_config = write_tiny_study(other);
  ASSERT_EQ(test::run_command(exe() + " audit --config " + q(other_config) + " --shard 0/2", &output), 0) << output;
  std::string text = read_file(other_config);
  text.replace(text.find("steps = 2"), 9, "steps = 3");
  write_file_atomic(other_config, text);
  EXPECT_EQ(test::run_command(exe() + " audit --config " + q(other_config), &output), 3) << output;
  EXPECT_NE(output.find("shard folder " + (other / "shards" / "0-of-2").string()), std::string::npos) << output;
  EXPECT_NE(output.find("other settings (steps)"), std::string::npos) << output;
}

TEST(StudyCli, KillNineAnywhereThenRerunGivesTheUninterruptedResult) {
  const int trials = std::getenv("FAIRDIFF_KILL_TRIALS") ? std::atoi(std::getenv("FAIRDIFF_KILL_TRIALS")) : 20;
  const fs::path root = test::scratch_dir("StudyCli.KillNine");
  const fs::path reference_dir = root / "reference";
  const fs::path reference_config = write_tiny_study(reference_dir);
  std::string output;
  const auto started = std::chrono::steady_clock::now();
  ASSERT_EQ(test::run_command(mitigate_command(reference_config), &output), 0) << output;
  const double full_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  const StudyState reference = read_state(reference_dir);
  ASSERT_GT(reference.files.size(), 20u);

  std::mt19937 random(20261201);
  std::uniform_real_distribution<double> fraction(0.05, 0.6);
  int kills = 0, chains = 0;
  std::map<std::string, int> stages_hit;
  std::string log_lines;
  while (kills < trials) {
    const fs::path dir = root / ("chain-" + std::to_string(chains++));
    const fs::path config = write_tiny_study(dir);
    while (kills < trials) {
      const pid_t pid = spawn({exe(), "mitigate", "--config", config.string()}, dir / "log.txt");
      const double delay = fraction(random) * full_seconds;
      std::this_thread::sleep_for(std::chrono::duration<double>(delay));
      int status = 0;
      if (waitpid(pid, &status, WNOHANG) == pid) break;  // it finished first: this chain is complete
      const std::string stage = running_stage(dir);
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      ++kills;
      ++stages_hit[stage.substr(0, stage.find(':'))];
      log_lines += "  trial " + std::to_string(kills) + ": killed after " + std::to_string(delay).substr(0, 5) +
                   " s during " + stage + "\n";
    }
    ASSERT_EQ(test::run_command(mitigate_command(config), &output), 0) << output;
    const StudyState state = read_state(dir);
    EXPECT_EQ(state.store_dump, reference.store_dump) << "chain " << chains - 1;
    ASSERT_EQ(state.files.size(), reference.files.size()) << "chain " << chains - 1;
    for (const auto& [file, digest] : reference.files) {
      auto it = state.files.find(file);
      ASSERT_NE(it, state.files.end()) << "lost: " << file;
      EXPECT_EQ(it->second, digest) << "differs: " << file;
    }
    // Every image on disk is the one the store recorded.
    study::RunStore store(dir);
    for (const char* run : {"base", "augment", "class", "dreambooth-constant-c2-s4"}) {
      for (const auto& image : store.images(run)) EXPECT_EQ(sha256_file(dir / image.file), image.sha256) << image.file;
    }
  }
  // Stages too short for a random moment to land in (plan, the reports): kill as soon as each is seen running.
  {
    const fs::path dir = root / ("chain-" + std::to_string(chains++));
    const fs::path config = write_tiny_study(dir);
    for (const std::string target : {"report:base", "plan", "report:study"}) {
      const pid_t pid = spawn({exe(), "mitigate", "--config", config.string()}, dir / "log.txt");
      int status = 0;
      bool exited = false;
      std::string stage;
      const auto begun = std::chrono::steady_clock::now();
      while (!(exited = waitpid(pid, &status, WNOHANG) == pid)) {
        stage = running_stage(dir);
        if (stage == target) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      if (exited) continue;  // the stage passed between two looks
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      ++kills;
      ++stages_hit[stage.substr(0, stage.find(':'))];
      log_lines +=
          "  targeted: killed after " +
          std::to_string(std::chrono::duration<double>(std::chrono::steady_clock::now() - begun).count()).substr(0, 5) +
          " s during " + stage + "\n";
    }
    ASSERT_EQ(test::run_command(mitigate_command(config), &output), 0) << output;
    const StudyState state = read_state(dir);
    EXPECT_EQ(state.store_dump, reference.store_dump) << "targeted chain";
    EXPECT_EQ(state.files, reference.files) << "targeted chain";
  }
  std::string summary;
  for (const auto& [kind, count] : stages_hit) summary += " " + kind + "=" + std::to_string(count);
  std::printf("kill -9 harness: %d kills over %d studies (uninterrupted run %.1f s); stages hit:%s\n%s", kills, chains,
              full_seconds, summary.c_str(), log_lines.c_str());
  EXPECT_GE(kills, trials);
  EXPECT_GE(stages_hit.size(), 4u) << summary;  // the kills landed in generate, analyze, finetune and report
}

}  // namespace
}  // namespace fairdiff
