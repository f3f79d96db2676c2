// End-to-end: fairdiff analyze on real photos (flat and --by-folder), with a corrupt file and a non-image
// file that must be reported and skipped, never fatal.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>

#include "core/csv.h"
#include "core/image.h"
#include "test_paths.h"

namespace fairdiff {
namespace {

namespace fs = std::filesystem;

const std::string kExe = FAIRDIFF_EXE;

// Issue 15 item 6: a folder where every file is skipped used to exit 0; now it fails, naming the folder and
// skipped.csv, which is still written.
TEST(AnalyzeCommand, AFolderOfOnlyBadFilesFails) {
  const fs::path root = test::scratch_dir("analyze_cli_all_bad");
  const fs::path images = root / "images";
  fs::create_directories(images);
  std::ofstream(images / "0.png") << "\x89PNG\r\n\x1a\n truncated";
  std::ofstream(images / "notes.txt") << "not an image";
  std::string log;
  const fs::path out = root / "out";
  EXPECT_EQ(test::run_command(kExe + " analyze --images " + images.string() + " --out " + out.string(), &log), 3);
  EXPECT_NE(log.find("none of its 2 files could be analyzed"), std::string::npos) << log;
  EXPECT_EQ(read_csv(out / "skipped.csv").rows.size(), 2u);
  // --max-pixels: a real face photo over the limit is skipped with the reason; 0 is refused.
  fs::copy_file(test::shared_dir() / "faces/fairface_margin125/fairface_0001.jpg", images / "1.jpg");
  EXPECT_EQ(test::run_command(kExe + " analyze --images " + images.string() + " --max-pixels 1000 --out " +
                                  (root / "limited").string(),
                              &log),
            3);
  EXPECT_NE(log.find("pixels, over the limit of 1000"), std::string::npos) << log;
  EXPECT_EQ(test::run_command(kExe + " analyze --images " + images.string() + " --out " + (root / "ok").string(), &log),
            0)
      << log;
  EXPECT_EQ(
      test::run_command(
          kExe + " analyze --images " + images.string() + " --max-pixels 0 --out " + (root / "zero").string(), &log),
      2);
  EXPECT_NE(log.find("--max-pixels"), std::string::npos) << log;
}

TEST(AnalyzeCommand, WritesStudyAndPerFaceCsvsAndSkipsCorruptFiles) {
  const fs::path root = test::scratch_dir("analyze_cli");
  const fs::path images = root / "images";
  const fs::path faces = test::shared_dir() / "faces/fairface_margin125";
  fs::create_directories(images / "ceo");
  fs::create_directories(images / "nurse");
  fs::copy_file(faces / "fairface_0001.jpg", images / "ceo/0.jpg");
  fs::copy_file(faces / "fairface_0002.jpg", images / "ceo/1.jpg");
  fs::copy_file(faces / "fairface_0003.jpg", images / "nurse/0.jpg");
  std::ofstream(images / "nurse/1.png") << "\x89PNG\r\n\x1a\n truncated";  // PNG signature, corrupt body
  std::ofstream(images / "nurse/notes.txt") << "not an image";
  // A 512x512 blank image: no face, labeled "--".
  write_png(images / "nurse/2.png", Image{512, 512, 3, std::vector<uint8_t>(512 * 512 * 3, 128)});
  std::string log;
  const fs::path out = root / "out";
  int rc =
      test::run_command(kExe + " analyze --images " + images.string() + " --by-folder --out " + out.string(), &log);
  ASSERT_EQ(rc, 0) << log;
  EXPECT_NE(log.find("skipped nurse/1.png"), std::string::npos) << log;
  EXPECT_NE(log.find("skipped nurse/notes.txt"), std::string::npos) << log;

  std::ifstream study_file(out / "detections.csv");
  const std::string study_text((std::istreambuf_iterator<char>(study_file)), std::istreambuf_iterator<char>());
  EXPECT_EQ(study_text.find("\n\n"), std::string::npos) << "one line per image, no blank lines";
  CsvTable study = read_csv(out / "detections.csv");
  ASSERT_EQ(study.header, (std::vector<std::string>{"prompt", "path", "gender", "age", "race"}));
  ASSERT_EQ(study.rows.size(), 4u);
  EXPECT_EQ(study.rows[0].fields[0], "ceo");
  EXPECT_EQ(study.rows[0].fields[1], "ceo/0.jpg");
  EXPECT_EQ(study.rows[3].fields[1], "nurse/2.png");
  EXPECT_EQ(study.rows[3].fields[2], "--");
  EXPECT_EQ(study.rows[3].fields[4], "--");
  const std::vector<std::string> study_races = {"white", "black",  "latino hispanic",
                                                "asian", "indian", "middle eastern"};
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(study.rows[i].fields[2] == "Male" || study.rows[i].fields[2] == "Female") << i;
    EXPECT_NE(std::find(study_races.begin(), study_races.end(), study.rows[i].fields[4]), study_races.end())
        << "the study's CSV uses DeepFace's 6 race classes, got " << study.rows[i].fields[4];
    EXPECT_EQ(study.rows[i].fields[3].front(), '(') << i;
  }
  // FairFace labels of the three photos: male, female, female.
  EXPECT_EQ(study.rows[0].fields[2], "Male");
  EXPECT_EQ(study.rows[1].fields[2], "Female");

  CsvTable per_face = read_csv(out / "faces.csv");
  EXPECT_GE(per_face.rows.size(), 3u);
  EXPECT_GE(per_face.column("heads.gender.p.male"), 0);
  EXPECT_GE(per_face.column("heads.race.p.indian"), 0);
  EXPECT_GE(per_face.column("heads.age.years"), 0);
  CsvTable skipped = read_csv(out / "skipped.csv");
  EXPECT_EQ(skipped.rows.size(), 2u);

  // Flat folder: the folder's name is the prompt.
  rc = test::run_command(kExe + " analyze --images " + (images / "ceo").string() + " --out " + (root / "flat").string(),
                         &log);
  ASSERT_EQ(rc, 0) << log;
  CsvTable flat = read_csv(root / "flat/detections.csv");
  ASSERT_EQ(flat.rows.size(), 2u);
  EXPECT_EQ(flat.rows[0].fields[0], "ceo");
  EXPECT_EQ(flat.rows[0].fields[1], "0.jpg");
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Issue 15 item 6: a long analyze resumes. journal.jsonl records each finished image; a run stopped part-way (here:
// a journal cut inside its last line, as a crash leaves it) analyses only the rest, and the outputs equal an
// uninterrupted run's byte for byte. A rerun analyses only new or changed images; other settings start over.
TEST(AnalyzeCommand, ResumesFromItsJournalAndAnalysesOnlyNewOrChangedImages) {
  const fs::path root = test::scratch_dir("analyze_resume");
  const fs::path images = root / "images";
  const fs::path faces = test::shared_dir() / "faces/fairface_margin125";
  fs::create_directories(images);
  for (int i = 1; i <= 4; ++i) {
    fs::copy_file(faces / ("fairface_000" + std::to_string(i) + ".jpg"), images / (std::to_string(i) + ".jpg"));
  }
  const fs::path out = root / "out";
  const std::string command = kExe + " analyze --images " + images.string() + " --out " + out.string();
  std::string log;
  ASSERT_EQ(test::run_command(command, &log), 0) << log;
  EXPECT_NE(log.find("0 kept from journal.jsonl"), std::string::npos) << log;
  const std::string detections = read_text(out / "detections.csv"), per_face = read_text(out / "faces.csv");

  // Header + 2 images + half of the third line.
  std::string journal = read_text(out / "journal.jsonl");
  size_t cut = 0;
  for (int line = 0; line < 3; ++line) cut = journal.find('\n', cut) + 1;
  const size_t third_end = journal.find('\n', cut);
  std::ofstream(out / "journal.jsonl", std::ios::binary | std::ios::trunc) << journal.substr(0, (cut + third_end) / 2);
  fs::remove(out / "detections.csv");
  ASSERT_EQ(test::run_command(command, &log), 0) << log;
  EXPECT_NE(log.find("analyzed 4 images"), std::string::npos) << log;
  EXPECT_NE(log.find("2 kept from journal.jsonl"), std::string::npos) << log;
  EXPECT_EQ(read_text(out / "detections.csv"), detections);
  EXPECT_EQ(read_text(out / "faces.csv"), per_face);

  // A new image and a changed one are analysed; the other three come from the journal.
  fs::copy_file(faces / "fairface_0005.jpg", images / "5.jpg");
  fs::copy_file(faces / "fairface_0006.jpg", images / "1.jpg", fs::copy_options::overwrite_existing);
  ASSERT_EQ(test::run_command(command, &log), 0) << log;
  EXPECT_NE(log.find("analyzed 5 images"), std::string::npos) << log;
  EXPECT_NE(log.find("3 kept from journal.jsonl"), std::string::npos) << log;

  // Other settings: the journal is started over, and says so.
  ASSERT_EQ(test::run_command(command + " --score-threshold 0.6", &log), 0) << log;
  EXPECT_NE(log.find("was made with other settings"), std::string::npos) << log;
  EXPECT_NE(log.find("0 kept from journal.jsonl"), std::string::npos) << log;
}

// A folder of folders needs --by-folder (without it nothing would be read); with it, files at the top level belong
// to no prompt and are reported, not silently skipped.
TEST(AnalyzeCommand, FolderOfFoldersNeedsByFolderAndTopLevelFilesAreReported) {
  const fs::path root = test::scratch_dir("analyze_cli_layout");
  const fs::path images = root / "images";
  const fs::path faces = test::shared_dir() / "faces/fairface_margin125";
  fs::create_directories(images / "ceo");
  fs::copy_file(faces / "fairface_0001.jpg", images / "ceo/0.jpg");
  std::string log;
  EXPECT_EQ(
      test::run_command(kExe + " analyze --images " + images.string() + " --out " + (root / "flat").string(), &log), 3)
      << log;
  EXPECT_NE(log.find("1 sub-folder(s) with files: pass --by-folder"), std::string::npos) << log;
  EXPECT_FALSE(fs::exists(root / "flat" / "detections.csv"));

  fs::copy_file(faces / "fairface_0002.jpg", images / "stray.jpg");
  ASSERT_EQ(
      test::run_command(
          kExe + " analyze --images " + images.string() + " --by-folder --out " + (root / "by-folder").string(), &log),
      0)
      << log;
  EXPECT_NE(log.find("file(s) at the top level (e.g. stray.jpg) belong to no prompt"), std::string::npos) << log;
  EXPECT_EQ(read_csv(root / "by-folder" / "detections.csv").rows.size(), 1u);
}

TEST(AnalyzeCommand, RejectsBadFlagsBeforeLoadingModels) {
  std::string log;
  EXPECT_EQ(test::run_command(kExe + " analyze --images /nonexistent --out /tmp/x", &log), 3) << log;
  EXPECT_NE(log.find("/nonexistent"), std::string::npos) << log;
  EXPECT_EQ(test::run_command(kExe + " analyze --images . --out /tmp/x --profile nope", &log), 2) << log;
  EXPECT_NE(log.find("nope"), std::string::npos) << log;
  EXPECT_EQ(test::run_command(kExe + " analyze --images . --out /tmp/x --profile seed", &log), 2) << log;
  EXPECT_NE(log.find("--ssd-detector"), std::string::npos) << log;
  EXPECT_EQ(
      test::run_command(kExe + " analyze --images . --out /tmp/x --profile fairface --fairface-weights /no.pt", &log),
      3)
      << log;
}

}  // namespace
}  // namespace fairdiff
