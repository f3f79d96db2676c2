// The run store: stages keyed by their settings, images and analyses committed a batch at a time, what survives
// reopening, and refusals that name what is wrong.
#include "study/run_store.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/sha256.h"
#include "faces/analysis_json.h"
#include "test_paths.h"

namespace fairdiff::study {
namespace {
namespace fs = std::filesystem;

TEST(Sha256, KnownDigests) {
  // FIPS 180-4 examples and the empty string; 55/56/64 bytes cross the padding boundaries.
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha256_hex(std::string(1000000, 'a')), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  EXPECT_EQ(sha256_hex(std::string(55, 'x')).size(), 64u);
  EXPECT_NE(sha256_hex(std::string(55, 'x')), sha256_hex(std::string(56, 'x')));
  EXPECT_NE(sha256_hex(std::string(64, 'x')), sha256_hex(std::string(63, 'x')));
}

TEST(RunStore, StagesAreKeyedBySettings) {
  const fs::path dir = test::scratch_dir("RunStore.Stages");
  {
    RunStore store(dir);
    EXPECT_FALSE(store.stage("generate:base"));
    store.begin_stage("generate:base", Json{{"steps", 50}, {"seed", 0}}, 10);
    EXPECT_EQ(store.stage("generate:base")->status, "running");
    store.begin_stage("generate:base", Json{{"steps", 50}, {"seed", 0}}, 10);  // a resumed try: kept
    try {
      store.begin_stage("generate:base", Json{{"steps", 20}, {"seed", 0}}, 10);
      FAIL() << "other settings were accepted";
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find("stage 'generate:base' made with other settings (steps)"), std::string::npos)
          << e.what();
    }
    store.finish_stage("generate:base", Json{{"images", 10}}, 2.5);
    store.finish_stage("generate:base", Json{{"images", 10}}, 7.0);  // already done: unchanged
  }
  RunStore reopened(dir);
  const auto record = reopened.stage("generate:base");
  ASSERT_TRUE(record);
  EXPECT_EQ(record->status, "done");
  EXPECT_DOUBLE_EQ(record->seconds, 2.5);
  EXPECT_EQ(record->work_total, 10);
  EXPECT_EQ(record->settings["steps"], 50);
  EXPECT_FALSE(record->finished_at.empty());
}

TEST(RunStore, ImagesAnalysesPlanModelsMetrics) {
  const fs::path dir = test::scratch_dir("RunStore.Rows");
  RunStore store(dir);
  store.put_prompts("base", {{"ceo", "A photo of a CEO", 2, "ceo", "A photo of a CEO"},
                             {"doctor", "A photo of a doctor", 2, "doctor", "A photo of a doctor"}});
  store.add_images({{"base", "doctor", 0, 7, "runs/base/images/doctor/00000.png", "aa"},
                    {"base", "ceo", 1, 8, "runs/base/images/ceo/00001.png", "bb"}});
  store.add_images({{"base", "ceo", 0, 7, "runs/base/images/ceo/00000.png", "cc"}});
  const auto images = store.images("base");
  ASSERT_EQ(images.size(), 3u);  // prompt order of the run, then index
  EXPECT_EQ(images[0].prompt_id, "ceo");
  EXPECT_EQ(images[0].index, 0);
  EXPECT_EQ(images[1].index, 1);
  EXPECT_EQ(images[2].prompt_id, "doctor");
  EXPECT_EQ(images[2].seed, 7u);
  EXPECT_EQ(store.image_keys("base").count({"ceo", 1}), 1u);
  EXPECT_TRUE(store.images("other").empty());

  AnalysisRow a;
  a.run = "base";
  a.prompt_id = "ceo";
  a.index = 0;
  a.n_faces = 1;
  a.gender = "Female";
  a.race = "black";
  a.age = "(25-32)";
  a.analysis = Json{{"width", 8}};
  store.add_analyses({a});
  ASSERT_EQ(store.analyses("base").size(), 1u);
  EXPECT_EQ(store.analyses("base")[0].race, "black");

  store.put_plan({{{"prompt_id", "ceo"}, {"gender", "Female"}}}, "prompt_id,gender\nceo,Female\n");
  ASSERT_EQ(store.plan().size(), 1u);
  EXPECT_EQ(store.plan()[0].at("gender"), "Female");

  store.put_model({"cell", "models/cell", Json{{"lr_scheduler", "linear"}}, "step,loss\n1,0.5\n", 0.5, 3.0});
  ASSERT_TRUE(store.model("cell"));
  EXPECT_EQ(store.model("cell")->settings["lr_scheduler"], "linear");

  store.put_metric("base", "bias", 0.4, 0.3, std::numeric_limits<double>::quiet_NaN());
  const auto metrics = store.metrics();
  EXPECT_DOUBLE_EQ(metrics.at("base").at("bias")[0], 0.4);
  EXPECT_TRUE(std::isnan(metrics.at("base").at("bias")[2]));

  // The dump leaves out timings: a second store with the same rows made at another time dumps the same.
  const std::string dump = store.dump_without_timings();
  EXPECT_NE(dump.find("runs/base/images/ceo/00001.png"), std::string::npos);
  EXPECT_EQ(dump.find("3.0"), std::string::npos);  // the model's seconds
}

TEST(RunStore, RefusesAFileThatIsNotARunStore) {
  const fs::path dir = test::scratch_dir("RunStore.Foreign");
  {
    Database db(RunStore::file_in(dir));
    db.execute("CREATE TABLE something(x)");
  }
  EXPECT_THROW(RunStore store(dir), InputError);
  const fs::path text_dir = test::scratch_dir("RunStore.Text");
  std::ofstream(RunStore::file_in(text_dir)) << "this is not a database, just text long enough to be read as one";
  EXPECT_THROW(RunStore store(text_dir), InputError);
}

TEST(AnalysisJson, RoundTripsEveryField) {
  ImageAnalysis analysis;
  analysis.width = 64;
  analysis.height = 48;
  Face face;
  face.box = {1.5f, 2.25f, 30.f, 40.f, 0.875f, {{3.f, 4.f}, {5.5f, 6.f}}};
  face.attributes.predictions.push_back({"gender", "heads", {"Male", "Female"}, {0.25f, 0.75f}, std::nullopt});
  face.attributes.predictions.push_back({"age", "heads", {"(25-32)", "(38-43)"}, {0.6f, 0.4f}, 31.5f});
  analysis.faces.push_back(face);
  analysis.principal = 0;
  const ImageAnalysis back = analysis_from_json(Json::parse(analysis_to_json(analysis).dump()), "test");
  EXPECT_EQ(back.width, 64);
  EXPECT_EQ(back.principal, 0);
  ASSERT_EQ(back.faces.size(), 1u);
  EXPECT_FLOAT_EQ(back.faces[0].box.y0, 2.25f);
  EXPECT_FLOAT_EQ(back.faces[0].box.score, 0.875f);
  ASSERT_EQ(back.faces[0].box.landmarks.size(), 2u);
  EXPECT_FLOAT_EQ(back.faces[0].box.landmarks[1].first, 5.5f);
  ASSERT_EQ(back.faces[0].attributes.predictions.size(), 2u);
  EXPECT_EQ(back.faces[0].attributes.predictions[0].label(), "Female");
  EXPECT_FALSE(back.faces[0].attributes.predictions[0].years);
  EXPECT_FLOAT_EQ(*back.faces[0].attributes.predictions[1].years, 31.5f);
  EXPECT_THROW(analysis_from_json(Json{{"width", 1}}, "row 3"), InputError);
}

}  // namespace
}  // namespace fairdiff::study
