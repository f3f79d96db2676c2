// Face embeddings of a list of photos, computed once and cached on disk in chunks so that a long run
// (40,000 FairFace photos) resumes after a crash or Ctrl-C and a damaged cache is found and rebuilt.
//
// Cache layout (DIR):
//   cache.json             what the embeddings depend on: embedder, detector, crop, padding, chunk size
//   chunk-00000.safetensors  "embedding" [n, D] F32, "found" [n] U8 (1: a face was detected), "box" [n, 5]
//                            F32 (x0, y0, x1, y1, score); metadata "files" (JSON array, the chunk's photos
//                            in order) and "checksum" (FNV-1a 64 of the three tensors' bytes)
// A chunk whose file list, shapes or checksum disagree, or that cannot be read, is recomputed; a cache.json
// that disagrees with the current settings empties the cache.
//
// Shape legend: N photos, D = embedder's embedding size.
#pragma once

#include <torch/torch.h>

#include <filesystem>
#include <string>
#include <vector>

#include "core/json.h"
#include "faces/attribute_classifier.h"
#include "faces/face_analyzer.h"

namespace fairdiff {

struct EmbeddingSet {
  torch::Tensor embeddings;      // [N, D] float32 (zeros where no face was found)
  torch::Tensor found;           // [N] bool
  torch::Tensor boxes;           // [N, 5] float32
  long long computed = 0;        // photos embedded by this call (the rest came from the cache)
  long long rebuilt_chunks = 0;  // chunks found damaged or stale and recomputed
};

struct EmbeddingCacheOptions {
  long long chunk_size = 1000;
  bool show_progress = true;
};

// The principal (largest) face's embedding of each photo in `files` (relative to `images_dir`).
// `settings` describes everything the embeddings depend on (written to cache.json). Unreadable photos are
// recorded as "no face" with a warning naming them.
EmbeddingSet compute_embeddings(FaceAnalyzer& detector, FaceEmbedder& embedder, const Json& settings,
                                const std::filesystem::path& images_dir, const std::vector<std::string>& files,
                                const std::filesystem::path& cache_dir, const EmbeddingCacheOptions& options = {});

// FNV-1a 64 over the bytes of contiguous CPU tensors, as 16 hex digits.
std::string tensor_checksum(const std::vector<torch::Tensor>& tensors);

}  // namespace fairdiff
