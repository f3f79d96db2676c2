#include "core/safetensors.h"

#include <gtest/gtest.h>

#include <fstream>

#include "core/error.h"
#include "test_paths.h"

namespace fairdiff {
namespace {

TEST(Safetensors, RoundTripsEveryDtype) {
  auto dir = test::scratch_dir("safetensors_roundtrip");
  TensorMap tensors;
  tensors["f32"] = torch::randn({2, 3});
  tensors["f16"] = torch::randn({4}).to(torch::kFloat16);
  tensors["bf16"] = torch::randn({3, 1}).to(torch::kBFloat16);
  tensors["i64"] = torch::arange(5, torch::kInt64);
  tensors["i32"] = torch::arange(6, torch::kInt32).reshape({2, 3});
  tensors["u8"] = torch::arange(7, torch::kUInt8);
  tensors["bool"] = torch::tensor({true, false, true});
  tensors["scalar"] = torch::tensor(3.5f);
  tensors["empty"] = torch::zeros({0, 4});
  write_safetensors(dir / "a.safetensors", tensors, {{"format", "pt"}});
  SafetensorsFile file = read_safetensors(dir / "a.safetensors");
  ASSERT_EQ(file.tensors.size(), tensors.size());
  EXPECT_EQ(file.metadata.at("format"), "pt");
  for (const auto& [name, tensor] : tensors) {
    const auto& loaded = file.tensors.at(name);
    EXPECT_EQ(loaded.scalar_type(), tensor.scalar_type()) << name;
    EXPECT_EQ(loaded.sizes(), tensor.sizes()) << name;
    EXPECT_TRUE(torch::equal(loaded, tensor)) << name;
  }
}

TEST(Safetensors, ReadsTheFixtureReference) {
  auto file = read_safetensors(test::fixtures_dir() / "tiny-sd2" / "reference.safetensors");
  ASSERT_TRUE(file.tensors.count("tokenizer.input_ids"));
  EXPECT_EQ(file.tensors.at("tokenizer.input_ids").sizes(), torch::IntArrayRef({6, 77}));
  EXPECT_EQ(file.tensors.at("tokenizer.input_ids").scalar_type(), torch::kInt64);
}

std::string bytes_of(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_bytes(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string raw_file(const std::string& header, size_t data_bytes) {
  uint64_t size = header.size();
  std::string out(reinterpret_cast<const char*>(&size), 8);
  return out + header + std::string(data_bytes, '\0');
}

void expect_input_error(const std::filesystem::path& path, const std::string& fragment) {
  try {
    read_safetensors(path);
    FAIL() << "expected an InputError mentioning '" << fragment << "'";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(path.filename().string()), std::string::npos) << e.what();
  }
}

TEST(Safetensors, RejectsMalformedFiles) {
  auto dir = test::scratch_dir("safetensors_bad");
  TensorMap tensors{{"w", torch::randn({8, 8})}};
  write_safetensors(dir / "good.safetensors", tensors);
  std::string good = bytes_of(dir / "good.safetensors");

  write_bytes(dir / "truncated.safetensors", good.substr(0, good.size() - 10));
  expect_input_error(dir / "truncated.safetensors", "truncated");

  write_bytes(dir / "tiny.safetensors", "abc");
  expect_input_error(dir / "tiny.safetensors", "truncated");

  write_bytes(dir / "huge_header.safetensors", std::string("\xff\xff\xff\xff\x00\x00\x00\x00", 8) + "{}");
  expect_input_error(dir / "huge_header.safetensors", "header length");

  write_bytes(dir / "notjson.safetensors", raw_file("{not json", 0));
  expect_input_error(dir / "notjson.safetensors", "malformed");

  write_bytes(dir / "badsize.safetensors",
              raw_file(R"({"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,12]}})", 12));
  expect_input_error(dir / "badsize.safetensors", "need 16");

  write_bytes(dir / "baddtype.safetensors", raw_file(R"({"w":{"dtype":"F8_E9","shape":[2],"data_offsets":[0,2]}})", 2));
  expect_input_error(dir / "baddtype.safetensors", "unsupported dtype");

  write_bytes(
      dir / "overlap.safetensors",
      raw_file(
          R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
          12));
  expect_input_error(dir / "overlap.safetensors", "overlap");

  write_bytes(dir / "hole.safetensors", raw_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8));
  expect_input_error(dir / "hole.safetensors", "hole");

  expect_input_error(dir / "missing.safetensors", "does not exist");

  // Sizes that wrap around 2^64: (2^62 + 32) x 4 bytes = 2^64 + 128 would match offsets [0, 128].
  write_bytes(dir / "wrap.safetensors",
              raw_file(R"({"w":{"dtype":"F32","shape":[4611686018427387936],"data_offsets":[0,128]}})", 128));
  expect_input_error(dir / "wrap.safetensors", "more elements than any file can hold");
  write_bytes(dir / "wrap2.safetensors",
              raw_file(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296,2],"data_offsets":[0,0]}})", 0));
  expect_input_error(dir / "wrap2.safetensors", "more elements than any file can hold");
  write_bytes(
      dir / "far.safetensors",
      raw_file(R"({"w":{"dtype":"U8","shape":[8],"data_offsets":[9223372036854775808,9223372036854775816]}})", 8));
  expect_input_error(dir / "far.safetensors", "outside a data section of 8 bytes");
  // Found by fuzz/safetensors_fuzzer.cpp's review: numbers JSON can write but the reader cannot use. A number beyond
  // a double is nlohmann's out_of_range, not its parse_error; a float shape was cast to int64 unchecked (undefined
  // behaviour for 1e300) and a fraction or a negative offset was silently truncated or wrapped.
  write_bytes(dir / "overflow.safetensors",
              raw_file(R"({"w":{"dtype":"F32","shape":[1e400],"data_offsets":[0,0]}})", 0));
  expect_input_error(dir / "overflow.safetensors", "number overflow");
  write_bytes(dir / "floatshape.safetensors",
              raw_file(R"({"w":{"dtype":"F32","shape":[1e300],"data_offsets":[0,4]}})", 4));
  expect_input_error(dir / "floatshape.safetensors", "shape = 1e+300 is not a whole number");
  write_bytes(dir / "fraction.safetensors", raw_file(R"({"w":{"dtype":"U8","shape":[2.5],"data_offsets":[0,2]}})", 2));
  expect_input_error(dir / "fraction.safetensors", "shape = 2.5 is not a whole number");
  write_bytes(dir / "negoffset.safetensors", raw_file(R"({"w":{"dtype":"U8","shape":[2],"data_offsets":[-2,0]}})", 2));
  expect_input_error(dir / "negoffset.safetensors", "data_offsets = -2 is not a whole number");
  write_bytes(dir / "textshape.safetensors", raw_file(R"({"w":{"dtype":"U8","shape":"2","data_offsets":[0,2]}})", 2));
  expect_input_error(dir / "textshape.safetensors", "shape has the wrong type");
  // A shape written as whole floats is read as the integers it holds.
  write_bytes(dir / "wholefloat.safetensors",
              raw_file(R"({"w":{"dtype":"U8","shape":[2.0],"data_offsets":[0,2]}})", 2));
  EXPECT_EQ(read_safetensors(dir / "wholefloat.safetensors").tensors.at("w").numel(), 2);
  // A zero dimension makes an empty tensor, however large the others.
  write_bytes(dir / "empty.safetensors",
              raw_file(R"({"w":{"dtype":"F32","shape":[4611686018427387936,0],"data_offsets":[0,0]}})", 0));
  EXPECT_EQ(read_safetensors(dir / "empty.safetensors").tensors.at("w").numel(), 0);
}

}  // namespace
}  // namespace fairdiff
