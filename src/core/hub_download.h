// `fairdiff model pull`: downloads from the Hugging Face Hub only the files fairdiff loads (the diffusers layout's
// configs, tokenizer and *.safetensors weights; never .bin or .ckpt) into the huggingface_hub cache layout
// (core/hub_cache.h), so diffusers and fairdiff share one copy.
//
// Protocol, as huggingface_hub speaks it:
//   GET {endpoint}/api/models/{ORG/NAME}/revision/{revision}?blobs=true   the commit ("sha") and its files
//       ("siblings": rfilename, size, blobId, lfs {sha256, size})
//   GET {endpoint}/{ORG/NAME}/resolve/{commit}/{path}   the file, often by a redirect to a CDN; the Hub's own answer
//       carries X-Repo-Commit and X-Linked-Etag / ETag, which must agree with the metadata
// A download goes to blobs/<etag>.incomplete and is resumed from there with an HTTP Range request (after a broken
// connection, a few times in the same run; after Ctrl-C or a failed run, by the next pull). LFS files are checked
// against their sha256 before they become blobs/<etag>; only then is snapshots/<commit>/<path> linked to it, and
// refs/<revision> is written once every file is in place. A file whose checksum is wrong is deleted.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "core/hub_cache.h"

namespace fairdiff {

struct HubPullOptions {
  std::string variant;               // "" or "fp16": the component weights <base>.fp16.safetensors
  std::string endpoint;              // HF_ENDPOINT, default https://huggingface.co
  std::string token;                 // HF_TOKEN (or the token file `huggingface-cli login` writes)
  std::string token_source;          // where the token came from, for messages; empty when there is none
  std::filesystem::path cache;       // hub_cache_dir()
  bool offline = false;              // HF_HUB_OFFLINE
  int max_attempts_per_file = 5;     // broken connections in a row before a file's download gives up
  double retry_delay_seconds = 1.0;  // the n-th retry waits n times this
};
// The options from the environment, as huggingface_hub reads it.
HubPullOptions hub_pull_options_from_environment();

struct HubPullResult {
  std::string commit;
  std::filesystem::path snapshot;  // <cache>/models--ORG--NAME/snapshots/<commit>
  std::vector<std::string> files;  // the repository paths fairdiff loads, all now in the snapshot
  int64_t files_downloaded = 0;
  int64_t bytes_downloaded = 0;    // received in this run (a resumed file counts only its rest)
  bool offline = false;            // HF_HUB_OFFLINE: the cached snapshot, nothing asked of the Hub
  std::vector<std::string> notes;  // e.g. a variant that is not published, so the plain weights were taken
};

// Brings the model into the cache (see above); a second pull of a complete snapshot downloads nothing.
// InputError for a repository, revision or file the Hub does not have or will not give (401/403/404, with what to
// do); UnsupportedError when offline and the cache lacks it; Error for a network failure or a checksum mismatch.
HubPullResult pull_hub_model(const HubModelId& id, const HubPullOptions& options);

}  // namespace fairdiff
