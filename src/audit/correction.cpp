#include "audit/correction.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "core/error.h"
#include "core/labels.h"
#include "core/strings.h"

namespace fairdiff::audit {

namespace {

// Index of `label` among the attribute's groups, -1 when unknown.
int group_index(const Taxonomy& taxonomy, Attribute attribute, const std::string& label) {
  if (attribute == Attribute::gender) return std::max(-1, gender_index(taxonomy, label));
  if (attribute == Attribute::race) return std::max(-1, race_index(taxonomy, label));
  std::string text = trim(label);
  size_t space = text.find(' ');
  if (space == std::string::npos) return -1;
  int g = gender_index(taxonomy, text.substr(0, space));
  int r = race_index(taxonomy, text.substr(space + 1));
  return g >= 0 && r >= 0 ? taxonomy.gender_race_index(g, r) : -1;
}

// Index of the class a finer label folds into: FairFace's "east asian" and "southeast asian" are the
// "asian" of a taxonomy that has it (the FairFace 7 -> DeepFace 6 mapping used everywhere), also inside a
// gender x race cell. -1 when the label is unknown either way.
int folded_group_index(const Taxonomy& taxonomy, Attribute attribute, const std::string& label) {
  const int direct = group_index(taxonomy, attribute, label);
  if (direct >= 0 || attribute == Attribute::gender) return direct;
  std::string text = normalize_label(label);
  for (const char* finer : {"southeast asian", "east asian"}) {
    const size_t at = text.find(finer);
    if (at != std::string::npos && at + std::string(finer).size() == text.size()) {
      return group_index(taxonomy, attribute, text.substr(0, at) + "asian");
    }
  }
  return -1;
}

ConfusionMatrix parse_matrix(const Json& object, Attribute attribute, const std::string& where,
                             const Taxonomy& taxonomy) {
  if (!object.is_object() || !object.contains("labels") || !object.contains("confusion")) {
    throw InputError(where +
                     ": expected an object with \"labels\" (class names in the order of the rows) and "
                     "\"confusion\" (rows = true class, columns = predicted class)");
  }
  const Json& labels = object["labels"];
  const Json& confusion = object["confusion"];
  const size_t k = static_cast<size_t>(taxonomy.num_groups(attribute));
  const std::string expected = std::to_string(k) + " " + attribute_name(attribute) + " classes (" +
                               join(taxonomy.group_labels(attribute), ", ") + ")";
  if (!labels.is_array() || labels.size() < k) throw InputError(where + ": \"labels\" must list the " + expected);
  const size_t n = labels.size();
  // File position -> taxonomy index. Labels finer than the taxonomy (FairFace's 7 races for the study's 6)
  // fold into their class: their rows and columns are summed, which needs counts.
  std::vector<int> order;
  std::vector<int> seen(k, 0);
  std::set<std::string> distinct;
  for (const auto& label : labels) {
    std::string text = label.is_string() ? label.get<std::string>() : label.dump();
    int index = folded_group_index(taxonomy, attribute, text);
    if (index < 0) {
      throw InputError(where + ": unknown " + attribute_name(attribute) + " label '" + text + "' (expected the " +
                       expected + ")");
    }
    if (!distinct.insert(normalize_label(text)).second)
      throw InputError(where + ": label '" + text + "' appears twice");
    ++seen[static_cast<size_t>(index)];
    order.push_back(index);
  }
  for (size_t i = 0; i < k; ++i) {
    if (!seen[i]) throw InputError(where + ": \"labels\" has no " + taxonomy.group_labels(attribute)[i] + " class");
  }
  const bool folded = n > k;
  if (!confusion.is_array() || confusion.size() != n) {
    throw InputError(where + ": \"confusion\" must be a " + std::to_string(n) + "x" + std::to_string(n) +
                     " array (one row and column per label)");
  }
  ConfusionMatrix matrix;
  matrix.labels = taxonomy.group_labels(attribute);
  matrix.entries.assign(k, std::vector<double>(k, 0.0));
  bool all_integral = true;
  bool rows_sum_to_one = true;
  for (size_t i = 0; i < n; ++i) {
    const Json& row = confusion[i];
    if (!row.is_array() || row.size() != n) {
      throw InputError(where + ": row " + std::to_string(i) + " of \"confusion\" must have " + std::to_string(n) +
                       " numbers");
    }
    double total = 0;
    for (size_t j = 0; j < n; ++j) {
      if (!row[j].is_number() || row[j].get<double>() < 0 || !std::isfinite(row[j].get<double>())) {
        throw InputError(where + ": confusion[" + std::to_string(i) + "][" + std::to_string(j) +
                         "] must be a non-negative number");
      }
      double v = row[j].get<double>();
      matrix.entries[order[i]][order[j]] += v;
      total += v;
      if (std::fabs(v - std::round(v)) > 1e-9) all_integral = false;
    }
    if (total <= 0) {
      throw InputError(where + ": the row of true class '" + labels[i].dump() +
                       "' is all zero (the evaluation set had none of them, so its errors are unknown)");
    }
    if (std::fabs(total - 1.0) > 1e-6) rows_sum_to_one = false;
  }
  if (!all_integral && !rows_sum_to_one) {
    throw InputError(where +
                     ": \"confusion\" holds fractions whose rows do not sum to 1 (expected counts or "
                     "row-normalised rates)");
  }
  matrix.counts = all_integral && !rows_sum_to_one;
  if (folded && !matrix.counts) {
    throw InputError(where + ": its " + std::to_string(n) + " labels fold into the " + expected +
                     ", which needs counts (how many faces of each true class), not row-normalised rates");
  }
  return matrix;
}

// The attribute whose groups the labels name (all of them), or nullopt-like -1.
int attribute_of_labels(const Json& labels, const Taxonomy& taxonomy) {
  if (!labels.is_array() || labels.empty()) return -1;
  for (Attribute a : {Attribute::gender, Attribute::race, Attribute::gender_race}) {
    const size_t k = static_cast<size_t>(taxonomy.num_groups(a));
    bool all = labels.size() >= k;
    std::vector<bool> covered(k, false);
    for (const auto& label : labels) {
      if (!all) break;
      const int index = label.is_string() ? folded_group_index(taxonomy, a, label.get<std::string>()) : -1;
      all = index >= 0;
      if (all) covered[static_cast<size_t>(index)] = true;
    }
    if (all && std::all_of(covered.begin(), covered.end(), [](bool c) { return c; })) return static_cast<int>(a);
  }
  return -1;
}

Matrix resampled_rates(const ConfusionMatrix& matrix, Rng& rng) {
  if (matrix.kronecker_factors.size() == 2) {
    ConfusionMatrix product;
    product.kronecker_factors = {matrix.kronecker_factors[0], matrix.kronecker_factors[1]};
    for (auto& factor : product.kronecker_factors) {
      if (factor.counts) {
        factor.entries = resampled_rates(factor, rng);
        factor.counts = false;
      }
    }
    return product.rates();
  }
  Matrix rates = matrix.rates();
  if (!matrix.counts) return rates;
  std::vector<long long> counts;
  for (size_t i = 0; i < rates.size(); ++i) {
    double total = 0;
    for (double v : matrix.entries[i]) total += v;
    const long long n = static_cast<long long>(std::llround(total));
    sample_multinomial(rng, n, rates[i], counts);
    for (size_t j = 0; j < counts.size(); ++j) rates[i][j] = static_cast<double>(counts[j]) / static_cast<double>(n);
  }
  return rates;
}

// Solves the square system m x = b by Gaussian elimination with partial pivoting; false when singular.
bool solve_linear(Matrix m, std::vector<double> b, std::vector<double>& x) {
  const size_t n = b.size();
  for (size_t col = 0; col < n; ++col) {
    size_t pivot = col;
    for (size_t r = col + 1; r < n; ++r) {
      if (std::fabs(m[r][col]) > std::fabs(m[pivot][col])) pivot = r;
    }
    if (std::fabs(m[pivot][col]) < 1e-300) return false;
    std::swap(m[pivot], m[col]);
    std::swap(b[pivot], b[col]);
    for (size_t r = col + 1; r < n; ++r) {
      const double factor = m[r][col] / m[col][col];
      if (factor == 0) continue;
      for (size_t c = col; c < n; ++c) m[r][c] -= factor * m[col][c];
      b[r] -= factor * b[col];
    }
  }
  x.assign(n, 0.0);
  for (size_t i = n; i-- > 0;) {
    double sum = b[i];
    for (size_t c = i + 1; c < n; ++c) sum -= m[i][c] * x[c];
    x[i] = sum / m[i][i];
  }
  return true;
}

}  // namespace

ConfusionSet parse_confusion_json(const Json& json, const std::string& source, const Taxonomy& taxonomy) {
  ConfusionSet set;
  set.source = source;
  if (!json.is_object()) throw InputError(source + ": expected a JSON object with \"labels\" and \"confusion\"");
  if (json.contains("confusion")) {
    int attribute = attribute_of_labels(json.value("labels", Json()), taxonomy);
    if (attribute < 0) {
      throw InputError(source + ": \"labels\" " + json.value("labels", Json()).dump() + " name neither the genders (" +
                       join(taxonomy.genders, ", ") + ") nor the races (" + join(taxonomy.races, ", ") +
                       ") nor their gender x race cells");
    }
    Attribute a = static_cast<Attribute>(attribute);
    set.matrices[a] = parse_matrix(json, a, source, taxonomy);
  } else {
    for (Attribute a : {Attribute::gender, Attribute::race, Attribute::gender_race}) {
      auto it = json.find(attribute_name(a));
      if (it != json.end()) set.matrices[a] = parse_matrix(*it, a, source + ": " + attribute_name(a), taxonomy);
    }
    if (set.matrices.empty()) {
      throw InputError(source +
                       ": no confusion matrix found (expected {\"labels\",\"confusion\"} or keys "
                       "\"gender\", \"race\", \"gender_race\" holding them)");
    }
  }
  if (!set.matrices.count(Attribute::gender_race) && set.matrices.count(Attribute::gender) &&
      set.matrices.count(Attribute::race)) {
    ConfusionMatrix joint;
    joint.labels = taxonomy.group_labels(Attribute::gender_race);
    joint.kronecker_factors = {set.matrices[Attribute::gender], set.matrices[Attribute::race]};
    set.matrices[Attribute::gender_race] = joint;
  }
  return set;
}

ConfusionSet read_confusion_json(const std::filesystem::path& path, const Taxonomy& taxonomy) {
  return parse_confusion_json(read_json_file(path), path.string(), taxonomy);
}

std::vector<double> solve_simplex_least_squares(const Matrix& a, const std::vector<double>& q) {
  const size_t k = a.empty() ? 0 : a[0].size();
  if (k == 0) return {};
  // Quadratic form: 1/2 p^T H p - f^T p with H = A^T A, f = A^T q; a tiny ridge keeps H invertible when
  // two classes are indistinguishable to the classifier.
  Matrix h(k, std::vector<double>(k, 0.0));
  std::vector<double> f(k, 0.0);
  double trace = 0;
  for (size_t r = 0; r < a.size(); ++r) {
    for (size_t i = 0; i < k; ++i) {
      f[i] += a[r][i] * q[r];
      for (size_t j = 0; j < k; ++j) h[i][j] += a[r][i] * a[r][j];
    }
  }
  for (size_t i = 0; i < k; ++i) trace += h[i][i];
  for (size_t i = 0; i < k; ++i) h[i][i] += 1e-12 * (trace / k + 1e-300);

  std::vector<double> p(k, 1.0 / static_cast<double>(k));  // feasible start, no bound active
  std::vector<bool> at_zero(k, false);
  const double tolerance = 1e-12;
  for (size_t iteration = 0; iteration < 20 * k + 20; ++iteration) {
    std::vector<size_t> free;
    for (size_t i = 0; i < k; ++i) {
      if (!at_zero[i]) free.push_back(i);
    }
    // Equality-constrained problem on the free set: [H_FF 1; 1^T 0] [p_F; mu] = [f_F; 1].
    const size_t m = free.size();
    Matrix kkt(m + 1, std::vector<double>(m + 1, 0.0));
    std::vector<double> rhs(m + 1, 0.0);
    for (size_t i = 0; i < m; ++i) {
      for (size_t j = 0; j < m; ++j) kkt[i][j] = h[free[i]][free[j]];
      kkt[i][m] = 1.0;
      kkt[m][i] = 1.0;
      rhs[i] = f[free[i]];
    }
    rhs[m] = 1.0;
    std::vector<double> solution;
    if (!solve_linear(kkt, rhs, solution)) break;
    std::vector<double> candidate(k, 0.0);
    for (size_t i = 0; i < m; ++i) candidate[free[i]] = solution[i];
    const double mu = solution[m];

    double step = 1.0;
    size_t blocking = k;
    for (size_t i : free) {
      if (candidate[i] < -tolerance && candidate[i] < p[i]) {
        double ratio = p[i] / (p[i] - candidate[i]);
        if (ratio < step) {
          step = ratio;
          blocking = i;
        }
      }
    }
    if (blocking == k) {
      p = candidate;
      for (double& v : p) v = std::max(0.0, v);
      // Optimal when no bound's multiplier lambda_i = (H p - f)_i + mu is negative.
      size_t release = k;
      double most_negative = -1e-10;
      for (size_t i = 0; i < k; ++i) {
        if (!at_zero[i]) continue;
        double gradient = -f[i] + mu;
        for (size_t j = 0; j < k; ++j) gradient += h[i][j] * p[j];
        if (gradient < most_negative) {
          most_negative = gradient;
          release = i;
        }
      }
      if (release == k) break;
      at_zero[release] = false;
    } else {
      for (size_t i = 0; i < k; ++i) p[i] += step * (candidate[i] - p[i]);
      p[blocking] = 0.0;
      at_zero[blocking] = true;
    }
  }
  double total = 0;
  for (double& v : p) {
    v = std::max(0.0, v);
    total += v;
  }
  for (double& v : p) v /= total;
  return p;
}

std::vector<double> correct_shares(const Matrix& rates, const std::vector<double>& q) {
  // q = C^T p: A = C^T.
  const size_t k = rates.size();
  Matrix a(k, std::vector<double>(k));
  for (size_t i = 0; i < k; ++i) {
    for (size_t j = 0; j < k; ++j) a[j][i] = rates[i][j];
  }
  return solve_simplex_least_squares(a, q);
}

CorrectedShares correct_distribution(const GroupDistribution& distribution, const ConfusionMatrix& confusion,
                                     const std::vector<double>& target, const std::vector<Metric>& metrics, int female,
                                     const BootstrapSettings& settings, const std::string& stream_name) {
  CorrectedShares out;
  out.n = distribution.n_determined();
  out.metrics.assign(metrics.size(), MetricEstimate{});
  if (out.n <= 0) return out;
  out.raw = distribution.determined_shares();
  for (int k = 0; k < distribution.num_groups(); ++k) out.raw_ci.push_back(distribution.wilson_of_determined(k));
  const Matrix rates = confusion.rates();
  out.corrected = correct_shares(rates, out.raw);
  for (size_t m = 0; m < metrics.size(); ++m) {
    out.metrics[m].value = metric_value(metrics[m], out.corrected, target, out.n, female);
    out.metrics[m].n = out.n;
  }
  const size_t k = out.raw.size();
  std::vector<std::vector<double>> share_replicates(k);
  std::vector<std::vector<double>> metric_replicates(metrics.size());
  Rng rng(stream_seed(settings.seed, stream_name + "/corrected"));
  std::vector<long long> counts;
  std::vector<double> q(k);
  for (int b = 0; b < settings.resamples; ++b) {
    sample_multinomial(rng, out.n, out.raw, counts);
    for (size_t i = 0; i < k; ++i) q[i] = static_cast<double>(counts[i]) / static_cast<double>(out.n);
    std::vector<double> p = correct_shares(resampled_rates(confusion, rng), q);
    for (size_t i = 0; i < k; ++i) share_replicates[i].push_back(p[i]);
    for (size_t m = 0; m < metrics.size(); ++m) {
      metric_replicates[m].push_back(metric_value(metrics[m], p, target, out.n, female));
    }
  }
  for (size_t i = 0; i < k; ++i) {
    if (settings.resamples > 0) {
      out.corrected_ci.push_back({percentile(share_replicates[i], 0.025), percentile(share_replicates[i], 0.975)});
    } else {
      out.corrected_ci.push_back({out.corrected[i], out.corrected[i]});
    }
  }
  for (size_t m = 0; m < metrics.size() && settings.resamples > 0; ++m) {
    out.metrics[m].ci = {percentile(metric_replicates[m], 0.025), percentile(metric_replicates[m], 0.975)};
  }
  return out;
}

}  // namespace fairdiff::audit
