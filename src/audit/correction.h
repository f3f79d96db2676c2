// Classifier-error correction (CLEAM, Teo et al., NeurIPS 2023, generalised to K classes).
// The classifier's confusion matrix C (rows = true class, columns = predicted class, row-normalised to
// C[i][j] = P(predicted j | true i)) links the true shares p to the expected observed shares q:
//     q = C^T p.
// Given the observed q, p is estimated by constrained least squares on the probability simplex:
//     p_hat = argmin ||C^T p - q||^2  subject to  p_k >= 0, sum_k p_k = 1,
// solved exactly by a primal active-set method. Intervals come from a bootstrap that redraws the observed
// labels (Multinomial(n, q_hat)) and, when C was given as counts, each row of C (Multinomial(row total,
// row shares)), then re-solves.
//
// Confusion JSON: {"labels": [...], "confusion": [[...]]} for one attribute (which one is read from its
// labels), or nested per attribute as `fairdiff eval-classifier` writes it:
// {"gender": {"labels": [...], "confusion": [[...]]}, "race": {...}, "gender_race": {...}}. Entries are
// counts or row-normalised rates; every row must have a positive total. Labels finer than the taxonomy
// (FairFace's east asian and southeast asian, for the study's asian) are folded into their class by summing
// their rows and columns, which needs counts (the committed models/faces/fairface_heads.confusion.json). Without a
// gender x race matrix the joint one is the Kronecker product of the gender and race matrices (errors assumed
// independent).
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "audit/bias_estimates.h"
#include "audit/distribution.h"
#include "audit/labels.h"
#include "core/confusion_matrix.h"
#include "core/json.h"

namespace fairdiff::audit {

// One confusion matrix type for the whole project (core/confusion_matrix.h): as eval-classifier and
// train-classifier count it, as the correction reads it. A gender x race matrix that was not given is the
// Kronecker product of the gender and race ones (kronecker_factors).
using fairdiff::ConfusionMatrix;
using fairdiff::Matrix;

struct ConfusionSet {
  std::string source;
  std::map<Attribute, ConfusionMatrix> matrices;  // gender, race and (given or product) gender_race
};

ConfusionSet read_confusion_json(const std::filesystem::path& path, const Taxonomy& taxonomy);
ConfusionSet parse_confusion_json(const Json& json, const std::string& source, const Taxonomy& taxonomy);

// argmin ||A p - q||^2 over the probability simplex (A is M x K, q has M entries).
std::vector<double> solve_simplex_least_squares(const Matrix& a, const std::vector<double>& q);

// p_hat from observed shares q with row-normalised confusion `rates` (q = rates^T p).
std::vector<double> correct_shares(const Matrix& rates, const std::vector<double>& q);

struct CorrectedShares {
  long long n = 0;
  std::vector<double> raw;              // observed shares over determined images
  std::vector<Interval> raw_ci;         // Wilson
  std::vector<double> corrected;        // p_hat
  std::vector<Interval> corrected_ci;   // percentile bootstrap
  std::vector<MetricEstimate> metrics;  // metrics of p_hat (bootstrap intervals; no floor)
};

CorrectedShares correct_distribution(const GroupDistribution& distribution, const ConfusionMatrix& confusion,
                                     const std::vector<double>& target, const std::vector<Metric>& metrics, int female,
                                     const BootstrapSettings& settings, const std::string& stream_name);

}  // namespace fairdiff::audit
