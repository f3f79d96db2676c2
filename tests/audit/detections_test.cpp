// Reading prompts and detection CSVs: both layouts, label spellings, mappings, and errors with line numbers.
#include "audit/detections.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "test_paths.h"

namespace fairdiff::audit {
namespace {

PromptSet two_prompts() {
  PromptSet prompts;
  prompts.source = "prompts.csv";
  prompts.ids = {"ceo", "nurse"};
  prompts.texts = {"A photo of a CEO", "A photo of a nurse"};
  prompts.templates = {"", ""};
  return prompts;
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

TEST(Labels, NormalizesSpellings) {
  Taxonomy t;
  EXPECT_EQ(normalize_label("  Latino_Hispanic "), "latino hispanic");
  EXPECT_EQ(normalize_label("--"), "--");
  EXPECT_EQ(gender_index(t, "Male"), 0);
  EXPECT_EQ(gender_index(t, "woman"), 1);
  EXPECT_EQ(gender_index(t, "--"), -1);
  EXPECT_EQ(gender_index(t, "robot"), -2);
  EXPECT_EQ(race_index(t, "Middle-Eastern"), 4);
  EXPECT_EQ(race_index(t, "race"), -2);
  EXPECT_EQ(canonical_age("(25-32)"), "(25-32)");
  EXPECT_EQ(canonical_age("70+"), "(70+)");
  EXPECT_EQ(canonical_age("34"), "(30-39)");
  EXPECT_EQ(canonical_age("old"), "");
  EXPECT_LT(age_sort_key("(4-6)"), age_sort_key("(25-32)"));
}

TEST(Labels, MapEntriesAreValidated) {
  LabelMap map;
  map.add("race:race=--");
  map.add("prompt:delivery_driver=delivery");
  EXPECT_EQ(map.apply("race", "Race"), "--");
  EXPECT_EQ(map.apply("race", "white"), "white");
  EXPECT_EQ(map.apply("prompt", "delivery_driver"), "delivery");
  EXPECT_THROW(map.add("race=--"), UsageError);
  EXPECT_THROW(map.add("colour:x=y"), UsageError);
  EXPECT_THROW(map.add("race:x="), UsageError);
  EXPECT_THROW(parse_race_list("white,white"), UsageError);
  EXPECT_EQ(parse_race_list("White, Black,asian,indian").size(), 4u);
}

TEST(Detections, ReadsTheStudyLayoutByTextOrId) {
  const std::string csv =
      "prompt,path,gender,age,race\n"
      "A photo of a CEO,ceo_0.png,Male,(25-32),white\n"
      "ceo,ceo_1.png,--,--,--\n"
      "nurse,nurse_0.png,Female,(8-12),latino hispanic\n"
      "nurse,nurse_1.png,Female,--,--\n";
  audit::Run run = parse_detections(csv, "d.csv", "sd", two_prompts(), DetectionOptions{});
  ASSERT_EQ(run.images.size(), 4u);
  EXPECT_EQ(run.layout, "study");
  EXPECT_EQ(run.images[0].prompt, 0);
  EXPECT_EQ(run.images[0].gender, 0);
  EXPECT_EQ(run.images[0].race, 2);
  EXPECT_EQ(run.images[1].prompt, 0);
  EXPECT_EQ(run.images[1].gender, -1);
  EXPECT_EQ(run.images[2].race, 5);
  EXPECT_EQ(run.images[3].race, -1);
  EXPECT_EQ(run.images[3].line, 5);
}

TEST(Detections, UnknownLabelsAndPromptsAreReportedWithLineNumbers) {
  const std::string csv =
      "prompt,path,gender,age,race\n"
      "ceo,a.png,Male,(25-32),white\n"
      "ceo,b.png,Male,(25-32),race\n"
      "teacher,c.png,Female,(25-32),asian\n"
      "nurse,d.png,Robot,(25-32),asian\n"
      "nurse,e.png,Female,ancient,asian\n";
  std::string message = error_of([&] { parse_detections(csv, "d.csv", "sd", two_prompts(), DetectionOptions{}); });
  EXPECT_NE(message.find("4 row(s) could not be read"), std::string::npos) << message;
  EXPECT_NE(message.find("line 3: unknown race label 'race'"), std::string::npos) << message;
  EXPECT_NE(message.find("--map race:race=LABEL"), std::string::npos) << message;
  EXPECT_NE(message.find("line 4: prompt 'teacher'"), std::string::npos) << message;
  EXPECT_NE(message.find("line 5: unknown gender label 'Robot'"), std::string::npos) << message;
  EXPECT_NE(message.find("line 6: unknown age label 'ancient'"), std::string::npos) << message;
}

TEST(Detections, MappedLabelsAreAcceptedAndCounted) {
  const std::string csv =
      "prompt,path,gender,age,race\n"
      "ceo,a.png,Male,(25-32),race\n"
      "delivery_driver,b.png,Male,(25-32),white\n";
  DetectionOptions options;
  options.label_map.add("race:race=--");
  options.label_map.add("prompt:delivery_driver=nurse");
  audit::Run run = parse_detections(csv, "d.csv", "sd", two_prompts(), options);
  ASSERT_EQ(run.images.size(), 2u);
  EXPECT_EQ(run.images[0].race, -1);
  EXPECT_EQ(run.images[1].prompt, 1);
  EXPECT_EQ(run.notes.size(), 2u);
}

TEST(Detections, MalformedCsvNamesTheLine) {
  const std::string csv = "prompt,path,gender,age,race\nceo,a.png,Male,(25-32)\n";
  std::string message = error_of([&] { parse_detections(csv, "bad.csv", "sd", two_prompts(), DetectionOptions{}); });
  EXPECT_NE(message.find("bad.csv:2"), std::string::npos) << message;
  std::string missing_column = error_of([&] {
    parse_detections("prompt,path,gender,age\nceo,a.png,Male,--\n", "m.csv", "sd", two_prompts(), DetectionOptions{});
  });
  EXPECT_NE(missing_column.find("missing column 'race'"), std::string::npos) << missing_column;
}

TEST(Detections, PerFaceLayoutTakesTheLargestFace) {
  const std::string csv =
      "prompt_id,image,face_index,box_w,box_h,gender,race,age\n"
      "ceo,a.png,0,50,50,Male,white,(25-32)\n"
      "ceo,a.png,1,120,100,Female,black,(38-43)\n"
      "ceo,b.png,,,,--,--,--\n"
      "nurse,c.png,0,80,80,Female,asian,34\n";
  audit::Run run = parse_detections(csv, "faces.csv", "fd", two_prompts(), DetectionOptions{});
  EXPECT_EQ(run.layout, "per-face");
  ASSERT_EQ(run.images.size(), 3u);
  EXPECT_EQ(run.images[0].gender, 1);  // the 120x100 face
  EXPECT_EQ(run.images[0].race, 3);
  EXPECT_EQ(run.images[0].num_faces, 2);
  EXPECT_EQ(run.images[1].gender, -1);
  EXPECT_EQ(run.images[1].num_faces, 0);
  EXPECT_EQ(run.images[2].age, "(30-39)");
}

TEST(Detections, AnalyzeFacesCsvUsesThePrincipalColumn) {
  // The layout `fairdiff analyze` writes: prompt,path,face,principal,x0,y0,x1,y1,score,gender,age,race,...
  const std::string csv =
      "prompt,path,face,principal,x0,y0,x1,y1,score,gender,age,race,gear.race\n"
      "ceo,a.png,0,0,0,0,200,200,0.9,Male,(25-32),white,white\n"
      "ceo,a.png,1,1,0,0,50,50,0.8,Female,(25-32),asian,asian\n"
      "nurse,b.png,0,1,10,10,60,90,0.95,Female,(38-43),black,black\n";
  audit::Run run = parse_detections(csv, "faces.csv", "fd", two_prompts(), DetectionOptions{});
  ASSERT_EQ(run.images.size(), 2u);
  EXPECT_EQ(run.images[0].gender, 1);  // marked principal, although smaller
  EXPECT_EQ(run.images[0].race, 0);
  EXPECT_EQ(run.images[0].num_faces, 2);
  EXPECT_EQ(run.images[1].race, 3);
  // Without the principal column the largest box (x0..y1) wins.
  const std::string boxes =
      "prompt,path,face,x0,y0,x1,y1,gender,age,race\n"
      "ceo,a.png,0,0,0,200,200,Male,(25-32),white\n"
      "ceo,a.png,1,0,0,50,50,Female,(25-32),asian\n";
  audit::Run by_box = parse_detections(boxes, "faces.csv", "fd", two_prompts(), DetectionOptions{});
  EXPECT_EQ(by_box.images[0].gender, 0);
}

TEST(Detections, MissingFilesAreClearErrors) {
  EXPECT_THROW(read_prompts_csv("/nonexistent/prompts.csv"), InputError);
  EXPECT_THROW(read_detections("/nonexistent/d.csv", "x", two_prompts(), DetectionOptions{}), InputError);
  std::string message =
      error_of([&] { read_detections("/nonexistent/d.csv", "x", two_prompts(), DetectionOptions{}); });
  EXPECT_NE(message.find("/nonexistent/d.csv"), std::string::npos);
  EXPECT_THROW(parse_run_argument("nameonly"), UsageError);
  EXPECT_THROW(parse_run_argument("bad name=x.csv"), UsageError);
  EXPECT_EQ(parse_run_argument("sd21=a=b.csv").second, "a=b.csv");
}

TEST(Detections, PromptsCsvIsValidated) {
  auto dir = test::scratch_dir("prompts_csv");
  std::string text = "prompt_id,prompt\nceo,A photo of a CEO\nceo,Again\n";
  std::FILE* f = std::fopen((dir / "p.csv").c_str(), "w");
  std::fputs(text.c_str(), f);
  std::fclose(f);
  std::string message = error_of([&] { read_prompts_csv(dir / "p.csv"); });
  EXPECT_NE(message.find(":3: prompt_id 'ceo' appears twice"), std::string::npos) << message;
}

}  // namespace
}  // namespace fairdiff::audit
