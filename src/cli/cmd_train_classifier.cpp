// fairdiff train-classifier: trains gender / race / age heads on face embeddings of labeled photos (issue 6).
// Embeddings are cached on disk (resumable, checked); heads are written as safetensors with a JSON card, and
// the validation confusion matrices in the form the audit's classifier-error correction reads.
#include <cstdio>
#include <set>

#include "cli/args.h"
#include "cli/cmd_face_profile.h"
#include "cli/subcommand.h"
#include "core/csv.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/interrupt.h"
#include "core/json.h"
#include "core/strings.h"
#include "faces/attribute_heads.h"
#include "faces/embedding_cache.h"
#include "faces/evaluation.h"

namespace fairdiff::cli {
namespace {

namespace fs = std::filesystem;

// `CSV[:COLUMN]`: the file names to leave out (column `fairface_file` when present, else `file`).
std::set<std::string> read_exclusions(const std::string& spec) {
  std::string path = spec, column;
  const auto colon = spec.rfind(':');
  if (colon != std::string::npos && !fs::exists(spec)) path = spec.substr(0, colon), column = spec.substr(colon + 1);
  require_file(path, "--exclude");
  CsvTable table = read_csv(path);
  if (column.empty()) column = table.column("fairface_file") >= 0 ? "fairface_file" : "file";
  const int col = table.require_column(column);
  std::set<std::string> names;
  for (const auto& row : table.rows) names.insert(trim(row.fields[col]));
  return names;
}

int64_t class_index(const std::vector<std::string>& classes, const std::string& label) {
  auto it = std::find(classes.begin(), classes.end(), label);
  return it == classes.end() ? -1 : it - classes.begin();
}

int run_train_classifier(const std::vector<std::string>& argv) {
  std::vector<OptionSpec> specs = {
      {"images", "DIR", "folder the labels' file names are relative to"},
      {"labels", "CSV", "labels: file,gender,race,age with FairFace's classes (default: DIR/labels.csv)"},
      {"embedder", "NAME",
       "face embedding: faceres or mobileface; NAME@flip averages over the mirror image; A+B joins several, "
       "one cache per part (default: faceres@flip+mobileface@flip, the committed heads')"},
      {"out", "FILE", "where to write the heads (.safetensors); the card goes to FILE's stem + .card.json"},
      {"cache", "DIR", "embedding cache (default: FILE's stem + .embeddings/ beside --out)"},
      {"exclude", "CSV[:COLUMN]", "leave out the photos this CSV lists (column fairface_file, else file)"},
      {"holdout-fraction", "F", "validation split, stratified by gender x race (default 0.1)"},
      {"head", "KIND", "mlp (one hidden layer, default) or linear (multinomial logistic regression)"},
      {"hidden", "N", "hidden units of the MLP (default 64)"},
      {"epochs", "N", "at most this many epochs (default 150; early stopping usually ends sooner)"},
      {"patience", "N", "stop after N epochs without a better validation loss (default 12)"},
      {"learning-rate", "LR", "AdamW learning rate (default 1e-4)"},
      {"weight-decay", "WD", "AdamW weight decay (default 1e-2)"},
      {"seed", "S", "split, initialisation and shuffling seed (default 0)"},
      {"crop-scale", "F", "embedder crop side / detector box side (default: the embedder's, 1.4 for faceres)"},
      {"limit", "N", "use only the first N labeled photos (after exclusions)"},
  };
  for (auto& s : face_profile_options()) {
    if (s.name == "human-models" || s.name == "detector" || s.name == "score-threshold" || s.name == "pad-fraction") {
      specs.push_back(s);
    }
  }
  Args args("train-classifier", "train gender/race/age heads on face embeddings of labeled photos", specs, argv);
  if (args.help_requested()) {
    std::printf("%s", args.usage().c_str());
    return 0;
  }
  const fs::path images = args.require("images");
  require_directory(images, "--images");
  const fs::path labels_csv = args.get("labels", (images / "labels.csv").string());
  require_file(labels_csv, "--labels");
  const fs::path out = args.require("out");
  if (out.extension() != ".safetensors") throw UsageError("--out " + out.string() + " must end in .safetensors");
  const fs::path base = out.parent_path() / out.stem();
  const fs::path cache = args.get("cache", base.string() + ".embeddings");
  const std::string embedder_name = args.get("embedder", "faceres@flip+mobileface@flip");
  HeadTrainingOptions options;
  options.kind = args.get("head", "mlp");
  if (options.kind != "mlp" && options.kind != "linear") {
    throw UsageError("--head " + options.kind + " is not mlp or linear");
  }
  options.hidden = args.get_int("hidden", 64, 1, 65536);
  options.holdout_fraction = args.get_double("holdout-fraction", 0.1, 0.001, 0.9);
  options.max_epochs = static_cast<int>(args.get_int("epochs", 150, 1, 100000));
  options.patience = static_cast<int>(args.get_int("patience", 12, 1, 100000));
  options.learning_rate = args.get_double("learning-rate", 1e-4, 1e-7, 10.0);
  options.weight_decay = args.get_double("weight-decay", 1e-2, 0.0, 10.0);
  options.seed = static_cast<uint64_t>(args.get_int("seed", 0, 0, 1LL << 62));
  const long long limit = args.get_int("limit", 0, 0, 100000000);
  ProfileOptions profile_options = read_face_profile_options(args, "gear");
  profile_options.embedder_crop_scale = static_cast<float>(args.get_double("crop-scale", -1.0, 0.5, 4.0));

  // Labels: FairFace's classes; unknown classes are rejected with their line numbers.
  LabeledSet set = read_labeled_set(images, labels_csv, RaceTaxonomy::fairface7);
  std::set<std::string> excluded;
  if (args.has("exclude")) excluded = read_exclusions(args.require("exclude"));
  std::vector<LabeledPhoto> photos;
  long long left_out = 0;
  for (const auto& p : set.photos) {
    if (excluded.count(p.file)) {
      ++left_out;
      continue;
    }
    if (limit > 0 && static_cast<long long>(photos.size()) >= limit) break;
    photos.push_back(p);
  }
  if (photos.empty()) throw InputError(labels_csv.string() + ": no photos left to train on after --exclude");
  std::vector<std::string> files;
  for (const auto& p : photos) files.push_back(p.file);

  install_interrupt_handler();
  auto detector = make_detection_analyzer(profile_options);
  const Json settings = embedding_settings(embedder_name, profile_options);
  EmbeddingSet embedded = compute_named_embeddings(*detector, embedder_name, profile_options, images, files, cache);

  const std::vector<std::string> genders = {"male", "female"};
  const std::vector<std::string>& races = race_labels(RaceTaxonomy::fairface7);
  const std::vector<std::string>& ages = fairface_age_ranges();
  HeadLabels gender{"gender", genders, {}}, race{"race", races, {}}, age{"age", ages, {}};
  std::vector<int64_t> rows;
  for (size_t i = 0; i < photos.size(); ++i) {
    if (!embedded.found[static_cast<int64_t>(i)].item<bool>()) continue;
    rows.push_back(static_cast<int64_t>(i));
    gender.targets.push_back(class_index(genders, photos[i].gender));
    race.targets.push_back(class_index(races, photos[i].race));
    age.targets.push_back(photos[i].age.empty() ? -1 : class_index(ages, photos[i].age));
  }
  const auto faceless = static_cast<long long>(photos.size() - rows.size());
  std::printf("%zu photos, %lld left out by --exclude, %lld without a detected face, %zu faces to train on\n",
              photos.size(), left_out, faceless, rows.size());

  Json data = settings;
  data["images"] = images.string();
  data["labels"] = labels_csv.string();
  data["labeled"] = set.photos.size();
  data["excluded"] = left_out;
  data["exclude"] = args.get("exclude", "");
  data["limit"] = limit;
  data["photos"] = photos.size();
  data["without_face"] = faceless;
  data["faces"] = rows.size();
  AttributeHeads heads = train_attribute_heads(embedded.embeddings.index_select(0, torch::tensor(rows, torch::kLong)),
                                               {gender, race, age}, options, data);

  if (!out.parent_path().empty()) ensure_directory(out.parent_path(), "--out folder");
  heads.save(out);
  write_json_file(base.string() + ".card.json", heads.card);
  Json confusion = Json::object();
  for (const Json& head : heads.card["heads"]) {
    confusion[head["attribute"].get<std::string>()] = {{"labels", head["validation"]["labels"]},
                                                       {"confusion", head["validation"]["confusion"]}};
  }
  write_json_file(base.string() + ".confusion.json", confusion);
  for (const Json& head : heads.card["heads"]) {
    const Json& v = head["validation"];
    std::printf("%-6s validation accuracy %.3f, balanced %.3f, ECE %.3f -> %.3f (T = %.3f), worst class",
                head["attribute"].get<std::string>().c_str(), v["accuracy"].get<double>(),
                v["balanced_accuracy"].get<double>(), v["ece_uncalibrated"].get<double>(), v["ece"].get<double>(),
                head["temperature"].get<double>());
    std::string worst;
    double worst_recall = 2;
    for (auto& [label, recall] : v["per_class"].items()) {
      if (recall.get<double>() < worst_recall) worst_recall = recall.get<double>(), worst = label;
    }
    std::printf(" %s %.3f\n", worst.c_str(), worst_recall);
  }
  std::printf("wrote %s, %s.card.json, %s.confusion.json\n", out.string().c_str(), base.string().c_str(),
              base.string().c_str());
  return 0;
}

}  // namespace

FAIRDIFF_SUBCOMMAND("train-classifier", "train gender/race/age heads on face embeddings of labeled photos",
                    run_train_classifier);

}  // namespace fairdiff::cli
