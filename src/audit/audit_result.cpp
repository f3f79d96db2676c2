#include "audit/audit_result.h"

#include <algorithm>
#include <atomic>
#include <thread>

#include "core/error.h"

namespace fairdiff::audit {

const std::vector<Attribute>& scored_attributes() {
  static const std::vector<Attribute> attributes = {Attribute::gender, Attribute::race, Attribute::gender_race};
  return attributes;
}

const std::vector<Attribute>& described_attributes() {
  static const std::vector<Attribute> attributes = {Attribute::gender, Attribute::race, Attribute::gender_race,
                                                    Attribute::age};
  return attributes;
}

MetricEstimate average_over(const AttributeMetrics& metrics, const std::vector<int>& prompts, size_t m) {
  std::vector<const PromptMetrics*> used;
  for (int p : prompts) {
    if (metrics.prompts[p].n > 0) used.push_back(&metrics.prompts[p]);
  }
  return average_estimate(used, m);
}

namespace {

RunAudit audit_one_run(const Run& run, const PromptSet& prompts, const Taxonomy& taxonomy,
                       const std::vector<std::string>& age_labels, const Target& target, const ConfusionSet* confusion,
                       const AuditSettings& settings) {
  RunAudit out;
  out.name = run.name;
  out.source = run.source;
  out.layout = run.layout;
  out.rows_read = run.rows_read;
  out.n_images = static_cast<long long>(run.images.size());
  out.notes = run.notes;
  std::vector<std::vector<const ImageRecord*>> by_prompt(prompts.size());
  for (const auto& image : run.images) by_prompt[image.prompt].push_back(&image);
  for (int p = 0; p < prompts.size(); ++p) out.has_prompt.push_back(!by_prompt[p].empty());

  const int female = female_index(taxonomy);
  for (Attribute attribute : described_attributes()) {
    auto& per_prompt = out.distributions[attribute];
    GroupDistribution overall;
    for (int p = 0; p < prompts.size(); ++p) {
      per_prompt.push_back(make_distribution(by_prompt[p], attribute, taxonomy, age_labels));
      accumulate(overall, per_prompt.back());
    }
    out.overall[attribute] = overall;
  }
  for (Attribute attribute : scored_attributes()) {
    AttributeMetrics metrics;
    metrics.attribute = attribute;
    metrics.metrics = metrics_for(attribute);
    for (int p = 0; p < prompts.size(); ++p) {
      const std::string stream = run.name + "/" + attribute_name(attribute) + "/" + prompts.ids[p];
      metrics.prompts.push_back(estimate_prompt_metrics(out.distributions[attribute][p], target.shares(attribute, p),
                                                        metrics.metrics, female, settings.bootstrap, stream));
      if (metrics.prompts.back().n > 0) metrics.averaged_prompts.push_back(p);
    }
    for (size_t m = 0; m < metrics.metrics.size(); ++m) {
      metrics.average.push_back(average_over(metrics, metrics.averaged_prompts, m));
    }
    if (confusion && confusion->matrices.count(attribute)) {
      auto& corrected = out.corrected[attribute];
      for (int p = 0; p < prompts.size(); ++p) {
        const std::string stream = run.name + "/" + attribute_name(attribute) + "/" + prompts.ids[p];
        corrected.push_back(correct_distribution(out.distributions[attribute][p], confusion->matrices.at(attribute),
                                                 target.shares(attribute, p), metrics.metrics, female,
                                                 settings.bootstrap, stream));
      }
    }
    out.metrics[attribute] = std::move(metrics);
  }
  return out;
}

BaselineComparison compare_with_baseline(const AuditResult& result, int run_index, const AuditSettings& settings) {
  BaselineComparison c;
  c.run = run_index;
  c.baseline = 0;
  const RunAudit& run = result.runs[run_index];
  const RunAudit& base = result.runs[0];
  for (int p = 0; p < result.prompts.size(); ++p) {
    if (run.has_prompt[p] && base.has_prompt[p]) c.prompts.push_back(p);
  }
  for (Attribute attribute : scored_attributes()) {
    auto& tests = c.tests[attribute];
    auto& changes = c.share_changes[attribute];
    for (int p = 0; p < result.prompts.size(); ++p) {
      const GroupDistribution& a = run.distributions.at(attribute)[p];
      const GroupDistribution& b = base.distributions.at(attribute)[p];
      std::vector<Difference> groups;
      if (run.has_prompt[p] && base.has_prompt[p]) {
        tests.push_back(chi_square_homogeneity(
            {b.counts, a.counts}, settings.homogeneity_resamples,
            stream_seed(settings.bootstrap.seed, run.name + "/vs/" + base.name + "/" + attribute_name(attribute) + "/" +
                                                     result.prompts.ids[p])));
        for (int k = 0; k < a.num_groups(); ++k) {
          groups.push_back(share_difference(a.counts[k], a.n_determined(), b.counts[k], b.n_determined()));
        }
      } else {
        tests.push_back(HomogeneityTest{});
      }
      changes.push_back(groups);
    }
    const AttributeMetrics& run_metrics = run.metrics.at(attribute);
    const AttributeMetrics& base_metrics = base.metrics.at(attribute);
    // Average over the prompts both runs have and both determined at least one image of.
    std::vector<int> used;
    for (int p : c.prompts) {
      if (run_metrics.prompts[p].n > 0 && base_metrics.prompts[p].n > 0) used.push_back(p);
    }
    for (size_t m = 0; m < run_metrics.metrics.size(); ++m) {
      MetricEstimate ra = average_over(run_metrics, used, m);
      MetricEstimate ba = average_over(base_metrics, used, m);
      std::vector<const PromptMetrics*> run_prompts, base_prompts;
      for (int p : used) {
        run_prompts.push_back(&run_metrics.prompts[p]);
        base_prompts.push_back(&base_metrics.prompts[p]);
      }
      c.average_changes[attribute].push_back(metric_difference(ra.value, average_replicates(run_prompts, m, false),
                                                               ba.value, average_replicates(base_prompts, m, false)));
      c.run_average[attribute].push_back(ra);
      c.baseline_average[attribute].push_back(ba);
    }
  }
  return c;
}

}  // namespace

AuditResult run_audit(const PromptSet& prompts, const std::vector<Run>& runs, const Taxonomy& taxonomy,
                      const Target& target, const ConfusionSet* confusion, const AuditSettings& settings) {
  if (runs.empty()) throw UsageError("nothing to audit: no run's detections were given");
  AuditResult result;
  result.prompts = prompts;
  result.taxonomy = taxonomy;
  result.age_labels = age_labels_of(runs);
  result.target = target;
  if (confusion) result.confusion = *confusion;
  result.settings = settings;
  result.runs.resize(runs.size());

  // Runs are independent: audit them on the machine's cores (results do not depend on the split, since
  // every random stream is seeded by name).
  const unsigned workers = std::max(1u, std::min<unsigned>(std::thread::hardware_concurrency(), runs.size()));
  std::atomic<size_t> next{0};
  std::vector<std::exception_ptr> errors(runs.size());
  auto work = [&]() {
    for (size_t i = next++; i < runs.size(); i = next++) {
      try {
        result.runs[i] = audit_one_run(runs[i], prompts, taxonomy, result.age_labels, target, confusion, settings);
      } catch (...) {
        errors[i] = std::current_exception();
      }
    }
  };
  std::vector<std::thread> threads;
  for (unsigned w = 1; w < workers; ++w) threads.emplace_back(work);
  work();
  for (auto& t : threads) t.join();
  for (auto& e : errors) {
    if (e) std::rethrow_exception(e);
  }

  for (int p = 0; p < prompts.size(); ++p) {
    bool everywhere = true;
    for (const auto& run : result.runs) everywhere = everywhere && run.has_prompt[p];
    if (everywhere) result.common_prompts.push_back(p);
  }
  if (result.runs.size() >= 2) {
    for (Attribute attribute : scored_attributes()) {
      for (int p = 0; p < prompts.size(); ++p) {
        std::vector<std::vector<long long>> table;
        for (const auto& run : result.runs) {
          if (run.has_prompt[p]) table.push_back(run.distributions.at(attribute)[p].counts);
        }
        result.homogeneity[attribute].push_back(chi_square_homogeneity(
            table, settings.homogeneity_resamples,
            stream_seed(settings.bootstrap.seed, "all-runs/" + attribute_name(attribute) + "/" + prompts.ids[p])));
      }
    }
    for (size_t r = 1; r < result.runs.size(); ++r) {
      result.comparisons.push_back(compare_with_baseline(result, static_cast<int>(r), settings));
    }
  }
  return result;
}

}  // namespace fairdiff::audit
