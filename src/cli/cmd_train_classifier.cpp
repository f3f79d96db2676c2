// fairdiff train-classifier: trains gender / race / age heads on face embeddings of labeled photos (issue 6);
// the work is faces/classifier_training.h's train_classifier.
#include <cstdio>

#include "cli/args.h"
#include "cli/cmd_face_profile.h"
#include "cli/options.h"
#include "cli/subcommand.h"
#include "core/interrupt.h"
#include "faces/classifier_training.h"

namespace fairdiff::cli {
namespace {

int run_train_classifier(const std::vector<std::string>& argv) {
  ClassifierTrainingConfig c;
  HeadTrainingOptions& h = c.heads;
  NetworkTuningOptions& t = c.tuning;
  OptionTable table;
  table.value("images", "DIR", "folder the labels' file names are relative to", c.images)
      .value("labels", "CSV", "labels: file,gender,race,age with FairFace's classes (default: DIR/labels.csv)",
             c.labels)
      .value("embedder", "NAME",
             "face embedding: faceres, faceres-deep or mobileface; NAME@flip averages over the mirror image; A+B joins "
             "several, "
             "one cache per part (the committed heads')",
             c.embedder)
      .value("out", "FILE", "where to write the heads (.safetensors); the card goes to FILE's stem + .card.json", c.out)
      .value("cache", "DIR", "embedding cache (default: FILE's stem + .embeddings/ beside --out)", c.cache)
      .value("exclude", "CSV[:COLUMN]", "leave out the photos this CSV lists (column fairface_file, else file)",
             c.exclude)
      .value("holdout-fraction", "F", "validation split, stratified by gender x race", h.holdout_fraction, 0.001, 0.9)
      .choice("head", "mlp (one hidden layer) or linear (multinomial logistic regression)", h.kind, {"mlp", "linear"},
              "kind")
      .value("hidden", "N", "hidden units of the MLP", h.hidden, 1, 65536)
      .value("epochs", "N", "at most this many epochs (early stopping usually ends sooner)", h.max_epochs, 1, 100000,
             "max_epochs")
      .value("patience", "N", "stop after N epochs without a better validation loss", h.patience, 1, 100000)
      .value("learning-rate", "LR", "AdamW learning rate", h.learning_rate, 1e-7, 10.0)
      .value("weight-decay", "WD", "AdamW weight decay", h.weight_decay, 0.0, 10.0)
      .value("seed", "S", "split, initialisation and shuffling seed", h.seed, 0, 1LL << 62)
      .value("crop-scale", "F", "embedder crop side / detector box side (default: the embedder's, 1.4 for faceres)",
             c.profile.embedder_crop_scale, 0.5, 4.0, "embedder_crop_scale")
      .value("limit", "N", "use only the first N labeled photos, after exclusions (0: all)", c.limit, 0, 100000000)
      .flag("tune-network",
            "fine-tune faceres end to end on the training split first (an embedder with a faceres or faceres@flip "
            "part); writes FILE's "
            "stem + .network.safetensors, which the card names",
            c.tune_network)
      .value("tune-epochs", "N", "epochs of the network's fine-tuning", t.epochs, 1, 1000)
      .value("tune-batch-size", "N", "faces per fine-tuning step", t.batch_size, 1, 65536)
      .value("tune-learning-rate", "LR", "the network's AdamW learning rate", t.learning_rate, 1e-9, 1.0)
      .value("tune-heads-learning-rate", "LR", "learning rate of the linear layers trained beside the network",
             t.heads_learning_rate, 1e-9, 10.0)
      .value("tune-device", "DEVICE", "where the fine-tuning runs: cpu, cuda or cuda:N", t.device)
      .flag("tune-only",
            "with --tune-network: stop once the network file is written (train the heads later with --tuned-network)",
            c.tune_only)
      .value("tuned-network", "FILE",
             "train the heads on this tuned network (a --tune-network run's .network.safetensors), copied beside them",
             c.tuned_network);
  std::vector<OptionSpec> profile_specs;
  for (auto& s : face_profile_options()) {
    if (s.name == "human-models" || s.name == "detector" || s.name == "score-threshold" || s.name == "pad-fraction" ||
        s.name == "face-device") {
      profile_specs.push_back(s);
    }
  }
  table.unbound(profile_specs);
  Args args("train-classifier", "train gender/race/age heads on face embeddings of labeled photos", table.specs(),
            argv);
  if (args.help_requested()) {
    std::printf("%s", args.usage().c_str());
    return 0;
  }
  const float crop_scale = c.profile.embedder_crop_scale;
  c.profile = read_face_profile_options(args, "gear");
  c.profile.embedder_crop_scale = crop_scale;
  table.read(args);
  if (c.images.empty()) throw UsageError("train-classifier: --images is required");
  if (c.out.empty()) throw UsageError("train-classifier: --out is required");
  t.seed = h.seed;
  t.weight_decay = h.weight_decay;
  table.with_flag_names([&] { validate(c); });

  install_interrupt_handler();
  const ClassifierTrainingResult result = table.with_flag_names([&] { return train_classifier(c); });
  if (result.network_only) {
    for (size_t e = 0; e < result.tuning_loss.size(); ++e) {
      std::printf("network fine-tuning epoch %zu: mean training loss %.4f\n", e + 1, result.tuning_loss[e]);
    }
    std::printf("wrote %s (--tune-only: no heads; train them with --tuned-network %s)\n",
                c.network_file().string().c_str(), c.network_file().string().c_str());
    return 0;
  }
  for (const HeadSummary& s : result.heads) {
    std::printf("%-6s validation accuracy %.3f, balanced %.3f, ECE %.3f -> %.3f (T = %.3f), worst class %s %.3f\n",
                s.attribute.c_str(), s.accuracy, s.balanced_accuracy, s.ece_uncalibrated, s.ece, s.temperature,
                s.worst_class.c_str(), s.worst_recall);
  }
  for (size_t e = 0; e < result.tuning_loss.size(); ++e) {
    std::printf("network fine-tuning epoch %zu: mean training loss %.4f\n", e + 1, result.tuning_loss[e]);
  }
  std::printf("wrote %s, %s, %s%s\n", c.out.string().c_str(), c.card_file().string().c_str(),
              c.confusion_file().string().c_str(),
              c.tune_network || !c.tuned_network.empty() ? (", " + c.network_file().string()).c_str() : "");
  return 0;
}

}  // namespace

FAIRDIFF_SUBCOMMAND("train-classifier", "train gender/race/age heads on face embeddings of labeled photos",
                    run_train_classifier);

}  // namespace fairdiff::cli
