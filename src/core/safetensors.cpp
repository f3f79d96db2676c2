#include "core/safetensors.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>

#include "core/error.h"
#include "core/fs.h"
#include "core/json.h"

namespace fairdiff {
namespace {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors data is little-endian");

// A header larger than this is certainly not a real checkpoint's (the reference library uses 100 MB).
constexpr uint64_t kMaxHeaderBytes = 100ull * 1024 * 1024;

struct Entry {
  std::string name;
  torch::Dtype dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0;
  uint64_t end = 0;
};

struct Header {
  std::vector<Entry> entries;
  std::map<std::string, std::string> metadata;
  uint64_t data_start = 0;
};

Header parse_header(std::ifstream& in, const std::string& source, uint64_t file_size) {
  if (file_size < 8) throw InputError("truncated safetensors file " + source + ": shorter than its 8-byte header");
  uint64_t header_size = 0;
  in.read(reinterpret_cast<char*>(&header_size), 8);
  if (header_size > kMaxHeaderBytes || header_size > file_size - 8) {
    throw InputError("malformed safetensors file " + source + ": header length " + std::to_string(header_size) +
                     " exceeds the file size " + std::to_string(file_size));
  }
  std::string text(header_size, '\0');
  in.read(text.data(), static_cast<std::streamsize>(header_size));
  if (!in) throw InputError("truncated safetensors file " + source + ": cannot read its header");
  Json json;
  try {
    json = Json::parse(text);
  } catch (const nlohmann::json::exception& e) {  // parse_error, and out_of_range for a number like 1e400
    throw InputError("malformed safetensors header in " + source + ": " + e.what());
  }
  if (!json.is_object()) throw InputError("malformed safetensors header in " + source + ": not a JSON object");
  Header header;
  header.data_start = 8 + header_size;
  uint64_t data_size = file_size - header.data_start;
  for (auto it = json.begin(); it != json.end(); ++it) {
    const std::string& name = it.key();
    const std::string where = source + ": tensor '" + name + "'";
    if (name == "__metadata__") {
      if (!it->is_object()) throw InputError(source + ": __metadata__ must be an object of strings");
      for (auto m = it->begin(); m != it->end(); ++m) {
        if (!m->is_string()) throw InputError(source + ": __metadata__ value '" + m.key() + "' is not a string");
        header.metadata[m.key()] = m->get<std::string>();
      }
      continue;
    }
    const Json& info = *it;
    if (!info.is_object() || !info.contains("dtype") || !info.contains("shape") || !info.contains("data_offsets")) {
      throw InputError(where + " needs dtype, shape and data_offsets");
    }
    Entry entry;
    entry.name = name;
    // json_value checks whole numbers: get<int64_t>() would cast a shape of [1e300] unchecked.
    entry.dtype = safetensors_dtype(json_value<std::string>(info.at("dtype"), where + ": dtype"), where);
    entry.shape = json_value<std::vector<int64_t>>(info.at("shape"), where + ": shape");
    const auto offsets = json_value<std::vector<uint64_t>>(info.at("data_offsets"), where + ": data_offsets");
    if (offsets.size() != 2) throw InputError(where + ": data_offsets must have two entries");
    entry.begin = offsets[0];
    entry.end = offsets[1];
    // Offsets first, so that nothing below can describe more bytes than the file holds; then the element
    // count and byte size with every product checked for overflow (a shape like [2^62 + 32] must not wrap
    // around to a small size that matches its offsets).
    if (entry.end < entry.begin || entry.end > data_size) {
      throw InputError("truncated safetensors file " + source + ": tensor '" + name + "' has data_offsets [" +
                       std::to_string(entry.begin) + ", " + std::to_string(entry.end) + ") outside a data section of " +
                       std::to_string(data_size) + " bytes");
    }
    const uint64_t element_size = static_cast<uint64_t>(c10::elementSize(entry.dtype));
    const uint64_t limit = std::numeric_limits<uint64_t>::max() / element_size;
    bool empty = false, overflow = false;
    uint64_t numel = 1;
    for (int64_t dim : entry.shape) {
      if (dim < 0) throw InputError(where + ": negative dimension in shape");
      if (dim == 0) empty = true;
      const auto d = static_cast<uint64_t>(dim);
      if (d != 0 && numel > limit / d) overflow = true;
      numel = overflow ? numel : numel * d;
    }
    if (overflow && !empty) {
      throw InputError(where + ": shape " + nlohmann::json(entry.shape).dump() +
                       " has more elements than any file can hold");
    }
    const uint64_t expected = empty ? 0 : numel * element_size;
    if (entry.end - entry.begin != expected) {
      throw InputError(where + ": data_offsets [" + std::to_string(entry.begin) + ", " + std::to_string(entry.end) +
                       ") hold " + std::to_string(entry.end - entry.begin) + " bytes but its dtype and shape need " +
                       std::to_string(expected));
    }
    header.entries.push_back(std::move(entry));
  }
  // The data section must be covered exactly: no overlaps, no holes.
  std::vector<const Entry*> sorted;
  for (const auto& e : header.entries) sorted.push_back(&e);
  std::sort(sorted.begin(), sorted.end(), [](const Entry* a, const Entry* b) { return a->begin < b->begin; });
  uint64_t cursor = 0;
  for (const Entry* e : sorted) {
    if (e->begin != cursor) {
      throw InputError("malformed safetensors file " + source + ": tensor '" + e->name + "' starts at byte " +
                       std::to_string(e->begin) + " but the previous tensor ends at " + std::to_string(cursor) +
                       (e->begin < cursor ? " (overlap)" : " (hole)"));
    }
    cursor = e->end;
  }
  if (cursor != data_size) {
    throw InputError("malformed safetensors file " + source + ": " + std::to_string(data_size - cursor) +
                     " trailing bytes after the last tensor");
  }
  return header;
}

}  // namespace

torch::Dtype safetensors_dtype(const std::string& name, const std::string& where) {
  if (name == "F32") return torch::kFloat32;
  if (name == "F16") return torch::kFloat16;
  if (name == "BF16") return torch::kBFloat16;
  if (name == "F64") return torch::kFloat64;
  if (name == "I64") return torch::kInt64;
  if (name == "I32") return torch::kInt32;
  if (name == "I16") return torch::kInt16;
  if (name == "I8") return torch::kInt8;
  if (name == "U8") return torch::kUInt8;
  if (name == "BOOL") return torch::kBool;
  throw InputError(where + ": unsupported dtype '" + name +
                   "' (expected F32, F16, BF16, F64, I64, I32, I16, I8, U8 or BOOL)");
}

std::string safetensors_dtype_name(torch::Dtype dtype) {
  switch (dtype) {
    case torch::kFloat32:
      return "F32";
    case torch::kFloat16:
      return "F16";
    case torch::kBFloat16:
      return "BF16";
    case torch::kFloat64:
      return "F64";
    case torch::kInt64:
      return "I64";
    case torch::kInt32:
      return "I32";
    case torch::kInt16:
      return "I16";
    case torch::kInt8:
      return "I8";
    case torch::kUInt8:
      return "U8";
    case torch::kBool:
      return "BOOL";
    default:
      throw std::invalid_argument("safetensors cannot store dtype " + std::string(c10::toString(dtype)));
  }
}

std::map<std::string, SafetensorsInfo> read_safetensors_header(const std::filesystem::path& path) {
  require_file(path, "safetensors file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError("cannot open " + path.string());
  Header header = parse_header(in, path.string(), std::filesystem::file_size(path));
  std::map<std::string, SafetensorsInfo> out;
  for (const auto& e : header.entries) out[e.name] = {safetensors_dtype_name(e.dtype), e.shape};
  return out;
}

SafetensorsFile read_safetensors(const std::filesystem::path& path) {
  require_file(path, "safetensors file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError("cannot open " + path.string());
  Header header = parse_header(in, path.string(), std::filesystem::file_size(path));
  SafetensorsFile file;
  file.metadata = header.metadata;
  for (const auto& e : header.entries) {
    torch::Tensor tensor = torch::empty(e.shape, torch::TensorOptions().dtype(e.dtype));
    uint64_t bytes = e.end - e.begin;
    if (bytes > 0) {
      in.seekg(static_cast<std::streamoff>(header.data_start + e.begin));
      in.read(static_cast<char*>(tensor.data_ptr()), static_cast<std::streamsize>(bytes));
      if (!in)
        throw InputError("truncated safetensors file " + path.string() + ": cannot read tensor '" + e.name + "'");
    }
    file.tensors.emplace(e.name, std::move(tensor));
  }
  return file;
}

void write_safetensors(const std::filesystem::path& path, const TensorMap& tensors,
                       const std::map<std::string, std::string>& metadata) {
  Json header = Json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<torch::Tensor> data;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    torch::Tensor t = tensor.detach().to(torch::kCPU).contiguous();
    uint64_t bytes = static_cast<uint64_t>(t.numel()) * t.element_size();
    header[name] = {{"dtype", safetensors_dtype_name(t.scalar_type())},
                    {"shape", t.sizes().vec()},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    data.push_back(t);
  }
  std::string text = header.dump();
  while ((8 + text.size()) % 8 != 0) text += ' ';  // align the data section to 8 bytes
  std::filesystem::path temporary = path;
  temporary += ".tmp";
  {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    if (!out) throw InputError("cannot write " + temporary.string());
    uint64_t size = text.size();
    out.write(reinterpret_cast<const char*>(&size), 8);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    for (const auto& t : data) {
      out.write(static_cast<const char*>(t.data_ptr()), static_cast<std::streamsize>(t.numel() * t.element_size()));
    }
    out.flush();
    if (!out) throw InputError("failed while writing " + temporary.string() + " (disk full?)");
  }
  std::filesystem::rename(temporary, path);
}

}  // namespace fairdiff
