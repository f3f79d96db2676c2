// Models named by their Hugging Face Hub id, ORG/NAME[@REVISION], found in the huggingface_hub cache, so a model a
// diffusers user has already downloaded is used where it is, without a second copy.
//
// The cache (as huggingface_hub lays it out; `fairdiff model pull` writes the same layout, core/hub_download.h):
//   <cache>/models--ORG--NAME/refs/<revision>          a branch or tag: a file holding the commit hash
//   <cache>/models--ORG--NAME/snapshots/<commit>/<path> relative symlinks to ../../blobs/<etag>
//   <cache>/models--ORG--NAME/blobs/<etag>             the content (etag: sha256 for LFS files, git blob id else)
//   <cache>/models--ORG--NAME/blobs/<etag>.incomplete  a download in progress (resumed where it stopped)
// <cache> is HF_HUB_CACHE, else $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace fairdiff {

struct HubModelId {
  std::string repo;               // ORG/NAME
  std::string revision = "main";  // a branch, a tag or a 40-hex commit hash
  bool revision_given = false;    // written as ORG/NAME@REVISION

  // "ORG/NAME", or "ORG/NAME@REVISION" when a revision was given.
  std::string str() const;
  // The repository's folder in the cache: "models--ORG--NAME".
  std::string cache_folder_name() const;
};

// ORG/NAME[@REVISION] with the Hub's rules for names (letters, digits, '-', '_', '.'; no "--" or ".."; at most 96
// characters), std::nullopt for anything else (a path such as ./model, /data/sd or a/b/c).
std::optional<HubModelId> parse_hub_model_id(const std::string& text);
bool is_commit_hash(const std::string& revision);

// huggingface_hub's home: HF_HOME, else $XDG_CACHE_HOME/huggingface, else ~/.cache/huggingface.
std::filesystem::path hf_home_dir();
// The cache folder, from the environment as huggingface_hub reads it.
std::filesystem::path hub_cache_dir();
// HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is 1/true/yes/on: nothing is fetched from the Hub.
bool hub_offline();

// The files the cache holds for one revision of a repository.
struct HubSnapshot {
  std::filesystem::path repo_dir;  // <cache>/models--ORG--NAME
  std::string commit;              // empty when the revision is not in the cache
  std::filesystem::path dir;       // <repo_dir>/snapshots/<commit>; empty when not in the cache
  std::string looked_for;          // the file or folder that decided it (for messages)
};
// Looks `id.revision` up in `cache`: a commit hash directly under snapshots/, a branch or tag through refs/.
HubSnapshot find_hub_snapshot(const HubModelId& id, const std::filesystem::path& cache);

// What `fairdiff model pull` fetches and what the loader reads, relative to a snapshot; `weights` holds the
// component weights' base paths ("unet/diffusion_pytorch_model"), stored as <base>.safetensors or, with a variant,
// <base>.<variant>.safetensors.
struct DiffusersModelFiles {
  std::vector<std::string> required;
  std::vector<std::string> optional;
  std::vector<std::string> weights;
};
const DiffusersModelFiles& diffusers_model_files();
// The files of diffusers_model_files() that `dir` lacks (weights: neither the plain nor the `variant` file, or, with
// no variant, no .safetensors at all).
std::vector<std::string> missing_model_files(const std::filesystem::path& dir, const std::string& variant = "");

// Where a model named on the command line or in a study config lives. In order:
//   - a file or folder that exists (relative to `base` when given and `ref` is relative) is used as it is;
//   - a Hub id, ORG/NAME[@REVISION], is its snapshot in the Hugging Face cache; InputError when the cache does not
//     hold it, saying where it looked and to run `fairdiff model pull ORG/NAME`;
//   - anything else is returned as a path, for the loader to report as missing.
std::filesystem::path resolve_model_path(const std::string& ref, const std::filesystem::path& base = {});

}  // namespace fairdiff
