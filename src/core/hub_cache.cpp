#include "core/hub_cache.h"

#include <pwd.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "core/strings.h"

namespace fairdiff {
namespace fs = std::filesystem;
namespace {

std::string env(const char* name) {
  const char* value = std::getenv(name);
  return value ? std::string(value) : std::string();
}

// "~" and "~/x" as the shell expands them (huggingface_hub applies os.path.expanduser to these variables).
fs::path expand_home(const std::string& path) {
  if (path != "~" && !starts_with(path, "~/")) return path;
  std::string home = env("HOME");
  if (home.empty()) {
    if (const passwd* user = ::getpwuid(::getuid())) home = user->pw_dir;
  }
  return fs::path(home) / path.substr(path == "~" ? 1 : 2);
}

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
}
bool is_word_char(char c) {
  return is_name_char(c) && c != '-' && c != '.';
}

// One half of ORG/NAME: the Hub's validate_repo_id rules (word characters at both ends, no "--" or "..").
bool valid_name_part(const std::string& part) {
  if (part.empty() || !is_word_char(part.front()) || !is_word_char(part.back())) return false;
  for (char c : part) {
    if (!is_name_char(c)) return false;
  }
  return part.find("--") == std::string::npos && part.find("..") == std::string::npos;
}

// A branch, tag or commit: it names a file under refs/, so no empty, "." or ".." component and no odd characters.
bool valid_revision(const std::string& revision) {
  if (revision.empty() || revision.size() > 255) return false;
  for (char c : revision) {
    if (!is_name_char(c) && c != '/') return false;
  }
  for (const std::string& part : split(revision, '/')) {
    if (part.empty() || part == "." || part == "..") return false;
  }
  return true;
}

std::string read_ref(const fs::path& file) {
  std::ifstream in(file);
  std::stringstream text;
  text << in.rdbuf();
  return trim(text.str());
}

}  // namespace

std::string HubModelId::str() const {
  return revision_given ? repo + "@" + revision : repo;
}

std::string HubModelId::cache_folder_name() const {
  const size_t slash = repo.find('/');
  return "models--" + repo.substr(0, slash) + "--" + repo.substr(slash + 1);
}

std::optional<HubModelId> parse_hub_model_id(const std::string& text) {
  HubModelId id;
  const size_t at = text.find('@');
  id.repo = text.substr(0, at);
  if (at != std::string::npos) {
    id.revision = text.substr(at + 1);
    id.revision_given = true;
    if (!valid_revision(id.revision)) return std::nullopt;
  }
  const size_t slash = id.repo.find('/');
  if (slash == std::string::npos || id.repo.size() > 96) return std::nullopt;
  if (!valid_name_part(id.repo.substr(0, slash)) || !valid_name_part(id.repo.substr(slash + 1))) return std::nullopt;
  return id;
}

bool is_commit_hash(const std::string& revision) {
  if (revision.size() != 40) return false;
  for (char c : revision) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

fs::path hf_home_dir() {
  const std::string home = env("HF_HOME");
  if (!home.empty()) return expand_home(home);
  const std::string xdg = env("XDG_CACHE_HOME");
  return (xdg.empty() ? expand_home("~/.cache") : expand_home(xdg)) / "huggingface";
}

fs::path hub_cache_dir() {
  for (const char* name : {"HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"}) {
    const std::string value = env(name);
    if (!value.empty()) return expand_home(value);
  }
  return hf_home_dir() / "hub";
}

bool hub_offline() {
  for (const char* name : {"HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"}) {
    const std::string value = to_lower(trim(env(name)));
    if (value.empty()) continue;  // huggingface_hub reads the first one that is set
    return value == "1" || value == "true" || value == "yes" || value == "on";
  }
  return false;
}

HubSnapshot find_hub_snapshot(const HubModelId& id, const fs::path& cache) {
  HubSnapshot snapshot;
  snapshot.repo_dir = cache / id.cache_folder_name();
  std::error_code ec;
  std::string commit;
  const fs::path ref = snapshot.repo_dir / "refs" / id.revision;
  if (fs::is_regular_file(ref, ec)) {
    commit = read_ref(ref);
    snapshot.looked_for = ref.string();
  } else if (is_commit_hash(id.revision)) {
    commit = id.revision;
    snapshot.looked_for = (snapshot.repo_dir / "snapshots" / commit).string();
  } else {
    snapshot.looked_for = ref.string();
  }
  if (commit.empty() || !is_commit_hash(commit)) return snapshot;
  const fs::path dir = snapshot.repo_dir / "snapshots" / commit;
  if (!fs::is_directory(dir, ec)) {
    snapshot.looked_for = dir.string();
    return snapshot;
  }
  snapshot.commit = commit;
  snapshot.dir = dir;
  return snapshot;
}

const DiffusersModelFiles& diffusers_model_files() {
  static const DiffusersModelFiles files = {
      {"model_index.json", "unet/config.json", "vae/config.json", "text_encoder/config.json",
       "scheduler/scheduler_config.json", "tokenizer/vocab.json", "tokenizer/merges.txt"},
      {"tokenizer/tokenizer_config.json", "tokenizer/special_tokens_map.json"},
      {"unet/diffusion_pytorch_model", "vae/diffusion_pytorch_model", "text_encoder/model"}};
  return files;
}

std::vector<std::string> missing_model_files(const fs::path& dir, const std::string& variant) {
  std::vector<std::string> missing;
  std::error_code ec;
  for (const std::string& file : diffusers_model_files().required) {
    if (!fs::is_regular_file(dir / file, ec)) missing.push_back(file);
  }
  // The loader reads <base>.safetensors, else <base>.fp16.safetensors (core/name_conversion.h).
  const std::string other = variant.empty() ? "fp16" : variant;
  for (const std::string& base : diffusers_model_files().weights) {
    if (!fs::is_regular_file(dir / (base + ".safetensors"), ec) &&
        !fs::is_regular_file(dir / (base + "." + other + ".safetensors"), ec)) {
      missing.push_back(base + ".safetensors");
    }
  }
  return missing;
}

fs::path resolve_model_path(const std::string& ref, const fs::path& base) {
  if (ref.empty()) return {};
  const fs::path local = fs::path(ref).is_absolute() || base.empty() ? fs::path(ref) : (base / ref).lexically_normal();
  std::error_code ec;
  if (fs::exists(local, ec)) return local;
  const std::optional<HubModelId> id = parse_hub_model_id(ref);
  if (!id) return local;
  const fs::path cache = hub_cache_dir();
  const HubSnapshot snapshot = find_hub_snapshot(*id, cache);
  const std::string pull =
      "fairdiff model pull " + id->repo + (id->revision_given ? " --revision " + id->revision : "");
  if (snapshot.dir.empty()) {
    throw InputError("model " + ref + ": no such file or folder (" + local.string() +
                     "), and the Hugging Face cache has no " + id->repo + " at revision '" + id->revision +
                     "' (looked for " + snapshot.looked_for + "; the cache is HF_HUB_CACHE, else $HF_HOME/hub, here " +
                     cache.string() + "); download it with `" + pull + "`");
  }
  std::error_code index_ec;
  if (!fs::is_regular_file(snapshot.dir / "model_index.json", index_ec)) {
    throw InputError(
        "model " + ref + ": the Hugging Face cache holds commit " + snapshot.commit + " at " + snapshot.dir.string() +
        " but without model_index.json (a partial download, or not a diffusers model); complete it with `" + pull +
        "`");
  }
  return snapshot.dir;
}

}  // namespace fairdiff
