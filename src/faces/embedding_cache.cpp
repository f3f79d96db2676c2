#include "faces/embedding_cache.h"

#include <cinttypes>
#include <cstdio>

#include "core/error.h"
#include "core/fs.h"
#include "core/image.h"
#include "core/interrupt.h"
#include "core/progress.h"
#include "core/safetensors.h"

namespace fairdiff {
namespace {

namespace fs = std::filesystem;

fs::path chunk_path(const fs::path& dir, long long index) {
  char name[64];
  std::snprintf(name, sizeof(name), "chunk-%05lld.safetensors", index);
  return dir / name;
}

struct Chunk {
  torch::Tensor embeddings, found, boxes;  // [n, D] F32, [n] U8, [n, 5] F32
};

// The chunk's tensors when the file is intact and holds exactly `files` with embeddings of size `dim`;
// otherwise an empty optional and `why` says what is wrong.
std::optional<Chunk> read_chunk(const fs::path& path, const std::vector<std::string>& files, int64_t dim,
                                std::string* why) {
  if (!fs::exists(path)) {
    *why = "missing";
    return std::nullopt;
  }
  SafetensorsFile file;
  try {
    file = read_safetensors(path);
  } catch (const Error& e) {
    *why = e.what();
    return std::nullopt;
  }
  const auto n = static_cast<int64_t>(files.size());
  auto get = [&](const std::string& name, torch::Dtype dtype, std::vector<int64_t> shape) -> torch::Tensor {
    auto it = file.tensors.find(name);
    if (it == file.tensors.end() || it->second.scalar_type() != dtype || it->second.sizes().vec() != shape) {
      return {};
    }
    return it->second;
  };
  Chunk chunk{get("embedding", torch::kFloat, {n, dim}), get("found", torch::kByte, {n}),
              get("box", torch::kFloat, {n, 5})};
  if (!chunk.embeddings.defined() || !chunk.found.defined() || !chunk.boxes.defined()) {
    *why = "tensors missing or of the wrong shape";
    return std::nullopt;
  }
  Json listed;
  try {
    listed = Json::parse(file.metadata.count("files") ? file.metadata.at("files") : "null");
  } catch (const Json::exception&) {
    listed = nullptr;
  }
  if (!listed.is_array() || listed.get<std::vector<std::string>>() != files) {
    *why = "its photo list differs from the labels'";
    return std::nullopt;
  }
  const std::string checksum = tensor_checksum({chunk.embeddings, chunk.found, chunk.boxes});
  if (!file.metadata.count("checksum") || file.metadata.at("checksum") != checksum) {
    *why = "checksum mismatch (the data was altered)";
    return std::nullopt;
  }
  return chunk;
}

Chunk embed_chunk(FaceAnalyzer& detector, FaceEmbedder& embedder, const fs::path& images_dir,
                  const std::vector<std::string>& files, Progress* progress) {
  const auto n = static_cast<int64_t>(files.size());
  Chunk chunk{torch::zeros({n, embedder.embedding_size()}), torch::zeros({n}, torch::kByte), torch::zeros({n, 5})};
  for (int64_t i = 0; i < n; ++i) {
    check_interrupt();
    const fs::path path = images_dir / files[i];
    std::optional<FaceImage> image;
    try {
      image = FaceImage::from(read_image(path));
    } catch (const Error& e) {
      std::fprintf(stderr, "warning: skipping %s: %s\n", path.string().c_str(), e.what());
    }
    if (image) {
      const std::vector<FaceBox> boxes = detector.detect(*image);
      const int largest = largest_box(boxes);
      if (largest >= 0) {
        const FaceBox* principal = &boxes[largest];
        chunk.embeddings[i] = embedder.embed(*image, *principal);
        chunk.found[i] = 1;
        chunk.boxes[i] = torch::tensor({principal->x0, principal->y0, principal->x1, principal->y1, principal->score});
      }
    }
    if (progress) progress->advance();
  }
  return chunk;
}

}  // namespace

std::string tensor_checksum(const std::vector<torch::Tensor>& tensors) {
  uint64_t hash = 1469598103934665603ULL;
  for (const auto& t : tensors) {
    const torch::Tensor c = t.to(torch::kCPU).contiguous();
    const auto* bytes = static_cast<const uint8_t*>(c.data_ptr());
    const size_t size = static_cast<size_t>(c.numel()) * c.element_size();
    for (size_t i = 0; i < size; ++i) {
      hash ^= bytes[i];
      hash *= 1099511628211ULL;
    }
  }
  char hex[17];
  std::snprintf(hex, sizeof(hex), "%016" PRIx64, hash);
  return hex;
}

EmbeddingSet compute_embeddings(FaceAnalyzer& detector, FaceEmbedder& embedder, const Json& settings,
                                const fs::path& images_dir, const std::vector<std::string>& files,
                                const fs::path& cache_dir, const EmbeddingCacheOptions& options) {
  if (options.chunk_size < 1) throw UsageError("embedding cache chunk size must be at least 1");
  ensure_directory(cache_dir, "embedding cache folder");
  Json cache_settings = settings;
  cache_settings["embedding_size"] = embedder.embedding_size();
  cache_settings["chunk_size"] = options.chunk_size;
  const fs::path settings_path = cache_dir / "cache.json";
  bool stale = false;
  if (fs::exists(settings_path)) {
    try {
      stale = read_json_file(settings_path) != cache_settings;
    } catch (const Error&) {
      stale = true;
    }
    if (stale) {
      std::fprintf(stderr, "embedding cache %s was made with other settings: emptying it\n",
                   cache_dir.string().c_str());
      for (const auto& entry : fs::directory_iterator(cache_dir)) {
        if (entry.path().extension() == ".safetensors") fs::remove(entry.path());
      }
    }
  }
  write_json_file(settings_path, cache_settings);

  const auto total = static_cast<long long>(files.size());
  const long long chunks = (total + options.chunk_size - 1) / options.chunk_size;
  auto chunk_files = [&](long long c) {
    const auto begin = files.begin() + c * options.chunk_size;
    return std::vector<std::string>(begin, begin + std::min(options.chunk_size, total - c * options.chunk_size));
  };
  const int64_t dim = embedder.embedding_size();
  std::vector<Chunk> parts(static_cast<size_t>(chunks));
  std::vector<long long> todo;
  EmbeddingSet result;
  for (long long c = 0; c < chunks; ++c) {
    const std::vector<std::string> slice = chunk_files(c);
    std::string why;
    if (auto chunk = read_chunk(chunk_path(cache_dir, c), slice, dim, &why)) {
      parts[c] = *chunk;
    } else {
      if (why != "missing") {
        std::fprintf(stderr, "embedding cache %s: %s, recomputing it\n", chunk_path(cache_dir, c).string().c_str(),
                     why.c_str());
        ++result.rebuilt_chunks;
      }
      todo.push_back(c);
    }
  }
  long long todo_photos = 0;
  for (long long c : todo) todo_photos += static_cast<long long>(chunk_files(c).size());
  if (!todo.empty()) {
    std::optional<Progress> progress;
    if (options.show_progress) progress.emplace("embedding faces", total, total - todo_photos, "photo");
    for (long long c : todo) {
      const std::vector<std::string> slice = chunk_files(c);
      parts[c] = embed_chunk(detector, embedder, images_dir, slice, progress ? &*progress : nullptr);
      write_safetensors(chunk_path(cache_dir, c),
                        {{"embedding", parts[c].embeddings}, {"found", parts[c].found}, {"box", parts[c].boxes}},
                        {{"files", Json(slice).dump()},
                         {"checksum", tensor_checksum({parts[c].embeddings, parts[c].found, parts[c].boxes})}});
      result.computed += static_cast<long long>(slice.size());
    }
    if (progress) progress->finish();
  }
  std::vector<torch::Tensor> e, f, b;
  for (const auto& p : parts) e.push_back(p.embeddings), f.push_back(p.found), b.push_back(p.boxes);
  result.embeddings = chunks ? torch::cat(e) : torch::zeros({0, dim});
  result.found = chunks ? torch::cat(f).to(torch::kBool) : torch::zeros({0}, torch::kBool);
  result.boxes = chunks ? torch::cat(b) : torch::zeros({0, 5});
  return result;
}

}  // namespace fairdiff
