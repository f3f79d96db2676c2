// Where the face networks run (ProfileOptions::device, --face-device): bad names and profiles that cannot move are
// refused naming the field; on a CUDA machine the default and gear profiles give the CPU's answers.
#include <gtest/gtest.h>
#include <torch/cuda.h>

#include "core/error.h"
#include "core/image.h"
#include "faces/profiles.h"
#include "test_paths.h"

namespace fairdiff {
namespace {

std::string field_of(const std::string& profile, const std::string& device) {
  ProfileOptions options;
  options.device = device;
  try {
    validate_profile(profile, options);
  } catch (const FieldError& e) {
    return e.field();
  }
  return "";
}

TEST(FaceDevice, BadDevicesAreRefusedNamingTheField) {
  EXPECT_EQ(field_of("default", "tpu"), "device");
  EXPECT_EQ(field_of("gear", "cuda:x"), "device");
  EXPECT_EQ(field_of("default", "cpu"), "");
  if (!torch::cuda::is_available()) {
    EXPECT_EQ(field_of("default", "cuda"), "device");  // no CUDA here
  } else {
    EXPECT_EQ(field_of("default", "cuda"), "");
    EXPECT_EQ(field_of("seed", "cuda"), "device");  // OpenCV and Caffe: CPU only
    EXPECT_EQ(field_of("fairface", "cuda"), "device");
  }
}

// GPU only: the same photos analysed on the CPU and on CUDA give the same faces and, within float32 rounding
// through two networks, the same probabilities.
TEST(FaceDevice, CudaGivesTheCpuAnswers) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  for (const std::string profile : {"default", "gear"}) {
    ProfileOptions cpu_options, cuda_options;
    cuda_options.device = "cuda";
    auto cpu = make_analyzer(profile, cpu_options);
    auto cuda = make_analyzer(profile, cuda_options);
    for (int i = 1; i <= 6; ++i) {
      char name[64];
      std::snprintf(name, sizeof(name), "fairface_%04d.jpg", i);
      const Image image = read_image(test::shared_dir() / "faces/fairface_margin125" / name);
      const ImageAnalysis a = cpu->analyze(image), b = cuda->analyze(image);
      ASSERT_EQ(a.faces.size(), b.faces.size()) << profile << " " << name;
      ASSERT_EQ(a.principal, b.principal) << profile << " " << name;
      for (size_t f = 0; f < a.faces.size(); ++f) {
        EXPECT_NEAR(a.faces[f].box.x0, b.faces[f].box.x0, 0.05) << profile << " " << name;
        EXPECT_NEAR(a.faces[f].box.y1, b.faces[f].box.y1, 0.05) << profile << " " << name;
        const auto& pa = a.faces[f].attributes.predictions;
        const auto& pb = b.faces[f].attributes.predictions;
        ASSERT_EQ(pa.size(), pb.size());
        for (size_t p = 0; p < pa.size(); ++p) {
          for (size_t k = 0; k < pa[p].probabilities.size(); ++k) {
            EXPECT_NEAR(pa[p].probabilities[k], pb[p].probabilities[k], 1e-3)
                << profile << " " << name << " " << pa[p].attribute << " " << pa[p].labels[k];
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace fairdiff
