#include "faces/keras_h5.h"

#include "core/error.h"

#ifdef FAIRDIFF_HAVE_HDF5
#include <hdf5.h>
#endif

namespace fairdiff {

namespace fs = std::filesystem;

#ifdef FAIRDIFF_HAVE_HDF5
namespace {

// Closes an HDF5 handle when it leaves scope.
struct Handle {
  hid_t id;
  herr_t (*close)(hid_t);
  Handle(hid_t i, herr_t (*c)(hid_t)) : id(i), close(c) {}
  ~Handle() {
    if (id >= 0) close(id);
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
};

// A string-array attribute, fixed- or variable-length (h5py writes numpy byte strings: fixed length).
std::vector<std::string> read_string_attribute(hid_t object, const std::string& name, const std::string& where) {
  if (H5Aexists(object, name.c_str()) <= 0) throw InputError(where + ": missing attribute '" + name + "'");
  Handle attr(H5Aopen(object, name.c_str(), H5P_DEFAULT), H5Aclose);
  Handle type(H5Aget_type(attr.id), H5Tclose);
  Handle space(H5Aget_space(attr.id), H5Sclose);
  if (H5Tget_class(type.id) != H5T_STRING) throw InputError(where + ": attribute '" + name + "' is not a string array");
  const hssize_t count = H5Sget_simple_extent_npoints(space.id);
  std::vector<std::string> out;
  if (count <= 0) return out;
  if (H5Tis_variable_str(type.id) > 0) {
    std::vector<char*> ptrs(static_cast<size_t>(count), nullptr);
    Handle mem(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(mem.id, H5T_VARIABLE);
    if (H5Aread(attr.id, mem.id, ptrs.data()) < 0) throw InputError(where + ": cannot read attribute '" + name + "'");
    for (char* p : ptrs) out.push_back(p ? p : "");
    H5Dvlen_reclaim(mem.id, space.id, H5P_DEFAULT, ptrs.data());
  } else {
    const size_t size = H5Tget_size(type.id);
    std::vector<char> buffer(size * static_cast<size_t>(count) + 1, 0);
    if (H5Aread(attr.id, type.id, buffer.data()) < 0)
      throw InputError(where + ": cannot read attribute '" + name + "'");
    for (hssize_t i = 0; i < count; ++i) {
      const char* s = buffer.data() + static_cast<size_t>(i) * size;
      out.push_back(std::string(s, strnlen(s, size)));
    }
  }
  return out;
}

void write_string_attribute(hid_t object, const std::string& name, const std::vector<std::string>& values) {
  size_t size = 1;
  for (const auto& v : values) size = std::max(size, v.size());
  std::vector<char> buffer(size * std::max<size_t>(values.size(), 1), 0);
  for (size_t i = 0; i < values.size(); ++i) std::copy(values[i].begin(), values[i].end(), buffer.data() + i * size);
  Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type.id, size);
  hsize_t dims[1] = {values.size()};
  Handle space(values.empty() ? H5Screate(H5S_NULL) : H5Screate_simple(1, dims, nullptr), H5Sclose);
  Handle attr(H5Acreate2(object, name.c_str(), type.id, space.id, H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  if (!values.empty()) H5Awrite(attr.id, type.id, buffer.data());
}

}  // namespace

bool keras_h5_supported() {
  return true;
}

std::vector<KerasLayerWeights> read_keras_weights(const fs::path& path) {
  const std::string where = path.string();
  if (!fs::is_regular_file(path)) throw InputError(where + " does not exist (expected a Keras .h5 weights file)");
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);  // errors are reported by us, not printed by HDF5
  if (H5Fis_hdf5(where.c_str()) <= 0) throw InputError(where + " is not an HDF5 file (expected Keras .h5 weights)");
  Handle file(H5Fopen(where.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  if (file.id < 0) throw InputError(where + ": cannot open the HDF5 file");
  // Full models saved with model.save() keep the weights under /model_weights.
  hid_t root_id = H5Lexists(file.id, "model_weights", H5P_DEFAULT) > 0 ? H5Gopen2(file.id, "model_weights", H5P_DEFAULT)
                                                                       : H5Gopen2(file.id, "/", H5P_DEFAULT);
  Handle root(root_id, H5Gclose);
  std::vector<KerasLayerWeights> layers;
  for (const auto& layer : read_string_attribute(root.id, "layer_names", where)) {
    if (H5Lexists(root.id, layer.c_str(), H5P_DEFAULT) <= 0) {
      throw InputError(where + ": layer '" + layer + "' is listed in layer_names but has no group");
    }
    Handle group(H5Gopen2(root.id, layer.c_str(), H5P_DEFAULT), H5Gclose);
    KerasLayerWeights w;
    w.layer = layer;
    w.names = read_string_attribute(group.id, "weight_names", where + " layer '" + layer + "'");
    for (const auto& name : w.names) {
      Handle data(H5Dopen2(group.id, name.c_str(), H5P_DEFAULT), H5Dclose);
      if (data.id < 0) throw InputError(where + ": layer '" + layer + "' has no dataset '" + name + "'");
      Handle space(H5Dget_space(data.id), H5Sclose);
      const int rank = H5Sget_simple_extent_ndims(space.id);
      std::vector<hsize_t> dims(static_cast<size_t>(std::max(rank, 0)));
      H5Sget_simple_extent_dims(space.id, dims.data(), nullptr);
      std::vector<int64_t> shape(dims.begin(), dims.end());
      torch::Tensor t = torch::empty(shape, torch::kFloat);
      if (H5Dread(data.id, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, t.data_ptr<float>()) < 0) {
        throw InputError(where + ": cannot read dataset '" + layer + "/" + name + "' as float32");
      }
      w.values.push_back(t);
    }
    if (!w.names.empty()) layers.push_back(std::move(w));
  }
  return layers;
}

void write_keras_weights(const fs::path& path, const std::vector<KerasLayerWeights>& layers) {
  Handle file(H5Fcreate(path.string().c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose);
  if (file.id < 0) throw InputError("cannot create " + path.string());
  std::vector<std::string> names;
  for (const auto& l : layers) names.push_back(l.layer);
  write_string_attribute(file.id, "layer_names", names);
  for (const auto& l : layers) {
    Handle group(H5Gcreate2(file.id, l.layer.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose);
    write_string_attribute(group.id, "weight_names", l.names);
    for (size_t i = 0; i < l.names.size(); ++i) {
      torch::Tensor t = l.values[i].to(torch::kFloat).contiguous();
      std::vector<hsize_t> dims(t.sizes().begin(), t.sizes().end());
      Handle space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), H5Sclose);
      Handle lcpl(H5Pcreate(H5P_LINK_CREATE), H5Pclose);
      H5Pset_create_intermediate_group(lcpl.id, 1);  // "conv2d_1/kernel:0" creates the inner group
      Handle data(H5Dcreate2(group.id, l.names[i].c_str(), H5T_IEEE_F32LE, space.id, lcpl.id, H5P_DEFAULT, H5P_DEFAULT),
                  H5Dclose);
      H5Dwrite(data.id, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, t.data_ptr<float>());
    }
  }
}

#else

bool keras_h5_supported() {
  return false;
}

std::vector<KerasLayerWeights> read_keras_weights(const fs::path& path) {
  throw UnsupportedError("reading " + path.string() + " needs HDF5, which this build of fairdiff lacks " +
                         "(install libhdf5-dev and rebuild)");
}

void write_keras_weights(const fs::path& path, const std::vector<KerasLayerWeights>&) {
  throw UnsupportedError("writing " + path.string() + " needs HDF5, which this build of fairdiff lacks");
}

#endif

}  // namespace fairdiff
