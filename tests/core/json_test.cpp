// JSON reading (core/json.h): whole numbers are range-checked, and every malformed file is an InputError naming it.
#include "core/json.h"

#include <gtest/gtest.h>

#include <fstream>
#include <functional>

#include "core/error.h"
#include "test_paths.h"

namespace fairdiff {
namespace {

std::string error_of(const std::function<void()>& body) {
  try {
    body();
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

// Found by fuzz/model_config_fuzzer.cpp: "1e400" is nlohmann's out_of_range (number overflow), which
// read_json_file let escape because it caught only parse_error.
TEST(Json, NumberOverflowIsAMalformedFile) {
  const auto path = test::scratch_dir("json_overflow") / "config.json";
  std::ofstream(path) << R"({"num_train_timesteps": 1e400})";
  const std::string message = error_of([&] { read_json_file(path); });
  EXPECT_NE(message.find("malformed JSON in " + path.string()), std::string::npos) << message;
  EXPECT_NE(message.find("number overflow"), std::string::npos) << message;
}

// Found by fuzz/model_config_fuzzer.cpp: json_get<int64_t> cast 1e300 to an integer (undefined behaviour, caught by
// UBSan); out-of-range integers wrapped and fractions were truncated without a word.
TEST(Json, WholeNumbersAreRangeChecked) {
  const Json j = Json::parse(R"({"big": 1e300, "half": 2.5, "whole": 64.0, "max": 18446744073709551615, "neg": -1,
                                 "flag": true, "text": "8", "list": [32, 64.0], "badlist": [32, 1e20], "one": 7})");
  EXPECT_EQ(json_get<int64_t>(j, "whole", 0, "c.json"), 64);
  EXPECT_EQ(json_get<int>(j, "one", 0, "c.json"), 7);
  EXPECT_EQ(json_get<uint64_t>(j, "max", 0, "c.json"), 18446744073709551615ull);
  EXPECT_EQ(json_get<std::vector<int64_t>>(j, "list", {}, "c.json"), (std::vector<int64_t>{32, 64}));
  EXPECT_EQ(json_get<int64_t>(j, "absent", 5, "c.json"), 5);
  EXPECT_EQ(error_of([&] { json_get<int64_t>(j, "big", 0, "c.json"); }),
            "c.json: key 'big' = 1e+300 is not a whole number from -9223372036854775808 to 9223372036854775807");
  EXPECT_EQ(error_of([&] { json_get<int>(j, "half", 0, "c.json"); }),
            "c.json: key 'half' = 2.5 is not a whole number from -2147483648 to 2147483647");
  EXPECT_NE(error_of([&] { json_get<int64_t>(j, "max", 0, "c.json"); }).find("key 'max' = 18446744073709551615"),
            std::string::npos);
  EXPECT_NE(error_of([&] { json_get<uint64_t>(j, "neg", 0, "c.json"); }).find("key 'neg' = -1 is not"),
            std::string::npos);
  EXPECT_NE(error_of([&] { json_get<int>(j, "big", 0, "c.json"); }).find("key 'big' = 1e+300"), std::string::npos);
  EXPECT_EQ(error_of([&] { json_get<int64_t>(j, "flag", 0, "c.json"); }),
            "c.json: key 'flag' has the wrong type: expected a whole number, found boolean true");
  EXPECT_NE(error_of([&] { json_require<int64_t>(j, "text", "c.json"); }).find("key 'text' has the wrong type"),
            std::string::npos);
  EXPECT_NE(error_of([&] { json_get<std::vector<int64_t>>(j, "badlist", {}, "c.json"); })
                .find("key 'badlist' = 1e+20 is not a whole number from -9223372036854775808 to "
                      "9223372036854775807 (entry 1)"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              json_get<std::vector<int64_t>>(j, "one", {}, "c.json");
            }).find("key 'one' has the wrong type: expected a list of whole numbers"),
            std::string::npos);
  // Other types keep nlohmann's conversion and its message.
  EXPECT_DOUBLE_EQ(json_get<double>(j, "half", 0.0, "c.json"), 2.5);
  EXPECT_NE(error_of([&] { json_get<std::string>(j, "one", "", "c.json"); }).find("key 'one' has the wrong type"),
            std::string::npos);
}

}  // namespace
}  // namespace fairdiff
