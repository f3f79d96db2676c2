#include "audit/target.h"

#include <cmath>

#include "core/csv.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/strings.h"

namespace fairdiff::audit {

Target::Target(const Taxonomy& taxonomy, int num_prompts) : taxonomy_(taxonomy), num_prompts_(num_prompts) {}

void Target::set(Attribute attribute, int prompt, std::vector<double> shares) {
  explicit_[{attribute, prompt}] = std::move(shares);
}

std::vector<double> Target::shares(Attribute attribute, int prompt) const {
  for (int key : {prompt, -1}) {
    auto it = explicit_.find({attribute, key});
    if (it != explicit_.end()) return it->second;
  }
  if (attribute == Attribute::gender_race) {
    std::vector<double> genders = shares(Attribute::gender, prompt);
    std::vector<double> races = shares(Attribute::race, prompt);
    std::vector<double> joint;
    for (double g : genders) {
      for (double r : races) joint.push_back(g * r);
    }
    return joint;
  }
  int k = taxonomy_.num_groups(attribute);
  return std::vector<double>(static_cast<size_t>(k), k > 0 ? 1.0 / k : 0.0);
}

Target read_target(const std::filesystem::path& path, const Taxonomy& taxonomy, const PromptSet& prompts,
                   bool allow_zero_shares) {
  require_file(path, "target CSV");
  CsvTable table = read_csv(path);
  int attribute_column = table.require_column("attribute");
  int group_column = table.require_column("group");
  int share_column = table.require_column("share");
  int prompt_column = table.column("prompt_id");
  // (attribute, prompt) -> shares, with NaN for groups not given yet, and the line of each entry.
  std::map<std::pair<Attribute, int>, std::vector<double>> tables;
  std::map<std::pair<Attribute, int>, int> first_line;
  for (const auto& row : table.rows) {
    std::string where = table.source + ":" + std::to_string(row.line);
    std::string attribute_text = trim(row.fields[attribute_column]);
    Attribute attribute;
    try {
      attribute = parse_attribute(attribute_text, where);
    } catch (const UsageError& e) {
      throw InputError(e.what());
    }
    if (attribute == Attribute::age)
      throw InputError(where + ": targets for age are not supported (gender, race, gender_race)");
    int prompt = -1;
    if (prompt_column >= 0) {
      std::string id = trim(row.fields[prompt_column]);
      if (!id.empty() && id != "*") {
        prompt = prompts.find(id);
        if (prompt < 0) throw InputError(where + ": prompt_id '" + id + "' is not in " + prompts.source);
      }
    }
    std::string group = trim(row.fields[group_column]);
    int index = -2;
    if (attribute == Attribute::gender) {
      index = gender_index(taxonomy, group);
    } else if (attribute == Attribute::race) {
      index = race_index(taxonomy, group);
    } else {
      size_t space = group.find(' ');
      if (space != std::string::npos) {
        int g = gender_index(taxonomy, group.substr(0, space));
        int r = race_index(taxonomy, group.substr(space + 1));
        if (g >= 0 && r >= 0) index = taxonomy.gender_race_index(g, r);
      }
    }
    if (index < 0) {
      throw InputError(where + ": unknown " + attribute_text + " group '" + group + "' (expected one of " +
                       join(taxonomy.group_labels(attribute), ", ") + ")");
    }
    double share = 0;
    if (!parse_double(trim(row.fields[share_column]), share) || share < 0 || share > 1) {
      throw InputError(where + ": share '" + row.fields[share_column] + "' is not a number in [0, 1]");
    }
    auto key = std::make_pair(attribute, prompt);
    auto& shares = tables[key];
    if (shares.empty()) {
      shares.assign(static_cast<size_t>(taxonomy.num_groups(attribute)), std::nan(""));
      first_line[key] = row.line;
    }
    if (!std::isnan(shares[index])) throw InputError(where + ": group '" + group + "' is given twice");
    shares[index] = share;
  }
  Target target(taxonomy, prompts.size());
  target.set_source(path.string());
  auto labels_of = [&](Attribute a) { return taxonomy.group_labels(a); };
  for (auto& [key, shares] : tables) {
    std::string where = table.source + ":" + std::to_string(first_line[key]) + " (" + attribute_name(key.first) +
                        (key.second >= 0 ? ", prompt " + prompts.ids[key.second] : std::string(", every prompt")) + ")";
    double sum = 0;
    for (size_t k = 0; k < shares.size(); ++k) {
      if (std::isnan(shares[k])) throw InputError(where + ": no share for group '" + labels_of(key.first)[k] + "'");
      sum += shares[k];
    }
    if (std::fabs(sum - 1.0) > 1e-3) {
      throw InputError(where + ": shares sum to " + std::to_string(sum) + ", expected 1");
    }
    for (double& s : shares) s /= sum;
    for (size_t k = 0; k < shares.size(); ++k) {
      if (shares[k] <= 0 && !allow_zero_shares) {
        throw InputError(where + ": share of '" + labels_of(key.first)[k] +
                         "' is 0; KL divergence and chi-square need every target share above 0");
      }
    }
    target.set(key.first, key.second, shares);
  }
  return target;
}

}  // namespace fairdiff::audit
