#include "core/confusion_matrix.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace fairdiff {

ConfusionMatrix::ConfusionMatrix(std::vector<std::string> labels_in)
    : labels(std::move(labels_in)), entries(labels.size(), std::vector<double>(labels.size(), 0.0)), counts(true) {}

void ConfusionMatrix::add(const std::string& truth, const std::string& predicted) {
  auto t = std::find(labels.begin(), labels.end(), truth), p = std::find(labels.begin(), labels.end(), predicted);
  if (t == labels.end() || p == labels.end()) {
    throw std::logic_error("confusion matrix has no label '" + (t == labels.end() ? truth : predicted) + "'");
  }
  if (!counts) throw std::logic_error("add() on a confusion matrix of rates");
  entries[t - labels.begin()][p - labels.begin()] += 1.0;
}

long long ConfusionMatrix::total() const {
  if (!counts) return 0;
  double n = 0;
  for (const auto& row : entries) {
    for (double c : row) n += c;
  }
  return std::llround(n);
}

double ConfusionMatrix::accuracy() const {
  const long long n = total();
  if (n == 0) return 0.0;
  double right = 0;
  for (size_t i = 0; i < entries.size(); ++i) right += entries[i][i];
  return right / static_cast<double>(n);
}

Matrix ConfusionMatrix::rates() const {
  if (kronecker_factors.size() == 2) {
    const Matrix a = kronecker_factors[0].rates();
    const Matrix b = kronecker_factors[1].rates();
    Matrix out(a.size() * b.size(), std::vector<double>(a.size() * b.size()));
    for (size_t i = 0; i < a.size(); ++i) {
      for (size_t j = 0; j < a.size(); ++j) {
        for (size_t k = 0; k < b.size(); ++k) {
          for (size_t l = 0; l < b.size(); ++l) out[i * b.size() + k][j * b.size() + l] = a[i][j] * b[k][l];
        }
      }
    }
    return out;
  }
  Matrix out = entries;
  for (auto& row : out) {
    double total = 0;
    for (double v : row) total += v;
    if (total > 0) {
      for (double& v : row) v /= total;
    }
  }
  return out;
}

double ConfusionMatrix::recall(size_t label) const {
  return rates()[label][label];
}

std::vector<double> ConfusionMatrix::recall_per_class() const {
  const Matrix r = rates();
  std::vector<double> out;
  for (size_t i = 0; i < r.size(); ++i) out.push_back(r[i][i]);
  return out;
}

Json ConfusionMatrix::to_json() const {
  Json per_class = Json::object(), support = Json::object(), confusion = Json::array();
  for (size_t i = 0; i < labels.size(); ++i) {
    double n = 0;
    Json row = Json::array();
    for (double c : entries[i]) {
      n += c;
      row.push_back(counts ? Json(std::llround(c)) : Json(c));
    }
    confusion.push_back(row);
    if (counts) support[labels[i]] = std::llround(n);
    if (n > 0) per_class[labels[i]] = recall(i);
  }
  return Json{{"accuracy", accuracy()}, {"n", total()},           {"labels", labels},
              {"confusion", confusion}, {"per_class", per_class}, {"support", support}};
}

}  // namespace fairdiff
