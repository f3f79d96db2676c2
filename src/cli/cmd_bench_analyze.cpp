// fairdiff bench analyze: images/s of a face-analysis profile on photos resized to a generated image's size
// (512x512 by default, what Stable Diffusion 2.1-base makes): decoding, detection and every classifier, as
// `fairdiff analyze` runs them, timed after a warm-up.
#include <chrono>
#include <cstdio>

#include "cli/args.h"
#include "cli/cmd_face_profile.h"
#include "cli/options.h"
#include "cli/subcommand.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/image.h"
#include "core/json.h"
#include "faces/face_crop.h"
#include "faces/folder_analysis.h"

namespace fairdiff::cli {
namespace {

// The whole image resized to size x size with the faces module's resampling (RGB).
Image resized(const Image& image, int size) {
  const FaceImage face_image = FaceImage::from(image);
  torch::Tensor x = crop_resize(face_image.pixels, 0, 0, face_image.width(), face_image.height(), size, size);
  x = x.round().clamp(0, 255).to(torch::kByte).contiguous();  // [1, size, size, 3]
  return Image{size, size, 3, std::vector<uint8_t>(x.data_ptr<uint8_t>(), x.data_ptr<uint8_t>() + x.numel())};
}

// bench analyze's settings; the initialisers are the defaults --help prints.
struct BenchAnalyzeSettings {
  std::filesystem::path images;
  int64_t size = 512;
  int64_t count = 200;
  std::filesystem::path json;
};

int run_bench_analyze(const std::vector<std::string>& argv) {
  BenchAnalyzeSettings b;
  OptionTable table;
  table.value("images", "DIR", "folder of photos (each is resized to --size before the timing)", b.images)
      .value("size", "PX", "square size the photos are resized to", b.size, 32, 4096)
      .value("count", "N", "photos to time", b.count, 1, 1000000)
      .value("json", "FILE", "also write the result as JSON", b.json)
      .unbound(face_profile_options());
  Args args("bench analyze", "images/s of a face-analysis profile on generated-size images", table.specs(), argv);
  if (args.help_requested()) {
    std::printf("%s", args.usage().c_str());
    return 0;
  }
  table.read(args);
  const std::filesystem::path dir = b.images;
  if (dir.empty()) throw UsageError("bench analyze: --images is required");
  require_directory(dir, "--images");
  const int size = static_cast<int>(b.size);
  const auto count = static_cast<size_t>(b.count);
  const std::string profile = args.get("profile", "default");
  ProfileOptions options = read_face_profile_options(args, profile);

  std::vector<Image> images;
  for (const auto& entry : list_images(dir, false)) {
    if (images.size() >= count) break;
    try {
      images.push_back(resized(read_image(entry.file), size));
    } catch (const InputError& e) {
      std::fprintf(stderr, "skipping %s: %s\n", entry.file.string().c_str(), e.what());
    }
  }
  if (images.empty()) throw InputError("--images " + dir.string() + " holds no readable photos");
  auto analyzer = make_analyzer(profile, options);
  for (size_t i = 0; i < std::min<size_t>(3, images.size()); ++i) analyzer->analyze(images[i]);  // warm-up
  long long faces = 0, with_face = 0;
  const auto start = std::chrono::steady_clock::now();
  for (const auto& image : images) {
    ImageAnalysis a = analyzer->analyze(image);
    faces += static_cast<long long>(a.faces.size());
    with_face += a.principal >= 0;
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double rate = static_cast<double>(images.size()) / seconds;
  std::printf(
      "bench analyze: profile %s, %zu images of %dx%d, %lld with a face (%lld faces), %d CPU threads: "
      "%.1f images/s (%.1f ms/image)\n",
      profile.c_str(), images.size(), size, size, with_face, faces, at::get_num_threads(), rate,
      1000.0 * seconds / static_cast<double>(images.size()));
  if (!b.json.empty()) {
    write_json_file(b.json, Json{{"profile", profile},
                                 {"images", images.size()},
                                 {"size", size},
                                 {"with_face", with_face},
                                 {"faces", faces},
                                 {"threads", at::get_num_threads()},
                                 {"seconds", seconds},
                                 {"images_per_s", rate}});
  }
  return 0;
}

}  // namespace

FAIRDIFF_BENCH("analyze", "images/s of a face-analysis profile on images of a generated size", run_bench_analyze);

}  // namespace fairdiff::cli
