// A classifier's confusion matrix (rows = true class, columns = predicted class): counted by the face module's
// evaluation and the attribute heads' card, read back by the audit's classifier-error correction.
#pragma once

#include <string>
#include <vector>

#include "core/json.h"

namespace fairdiff {

using Matrix = std::vector<std::vector<double>>;

struct ConfusionMatrix {
  std::vector<std::string> labels;
  Matrix entries;       // [true][predicted]: counts, or rates already row-normalised
  bool counts = false;  // entries are counts (not row-normalised)
  // A matrix that is the Kronecker product of two (e.g. gender x race from the gender and race matrices when
  // their errors are independent): the factors; `entries` is unused.
  std::vector<ConfusionMatrix> kronecker_factors;

  ConfusionMatrix() = default;
  // All-zero counts over `labels`, filled by add().
  explicit ConfusionMatrix(std::vector<std::string> labels);

  // Counts one answer; std::logic_error when a label is not in `labels`.
  void add(const std::string& truth, const std::string& predicted);
  long long total() const;                       // answers counted (0 when entries are rates)
  double accuracy() const;                       // share of the counted answers on the diagonal (0 when none)
  double recall(size_t label) const;             // rates()[label][label]; 0 when the class has no examples
  Matrix rates() const;                          // row-normalised (a row without examples stays zero)
  std::vector<double> recall_per_class() const;  // diagonal of rates()
  // {"labels": [...], "confusion": [[...]]} (counts as integers) plus accuracy, n, per-class recall (classes
  // with examples) and support.
  Json to_json() const;
};

}  // namespace fairdiff
