// libFuzzer harness: the model and scheduler config.json readers. The first byte picks the reader (UNet, VAE,
// CLIP text encoder, scheduler); the rest is the file, read as the loaders read it (read_json_file, then
// from_json). A config that is accepted must write back (to_json) into one that is accepted again and writes
// back the same.
#include "core/json.h"
#include "diffusion/autoencoder_kl.h"
#include "diffusion/schedulers/scheduler.h"
#include "diffusion/unet_2d_condition.h"
#include "fuzz_support.h"
#include "text/clip_text_model.h"

namespace {

template <typename Config, typename FromJson, typename ToJson>
void check(const char* what, const uint8_t* data, size_t size, FromJson from_json, ToJson to_json) {
  const auto path = fairdiff::fuzz::write_scratch_file("config.json", data, size);
  Config config;
  const bool ok = fairdiff::fuzz::expect_clear_errors(
      what, [&] { config = from_json(fairdiff::read_json_file(path), path.string()); });
  if (!ok) return;
  fairdiff::fuzz::expect_no_error(what, [&] {
    const fairdiff::Json written = to_json(config);
    const fairdiff::Json again = to_json(from_json(written, "written config"));
    if (again != written) {
      fairdiff::fuzz::report_finding(
          what, "to_json/from_json is not a round trip: " + written.dump() + " vs " + again.dump());
    }
  });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  using namespace fairdiff;
  const uint8_t kind = data[0] % 4;
  ++data;
  --size;
  if (kind == 0) {
    check<UNet2DConditionConfig>("UNet2DConditionConfig", data, size, UNet2DConditionConfig::from_json,
                                 [](const UNet2DConditionConfig& c) { return c.to_json(); });
  } else if (kind == 1) {
    check<AutoencoderKLConfig>("AutoencoderKLConfig", data, size, AutoencoderKLConfig::from_json,
                               [](const AutoencoderKLConfig& c) { return c.to_json(); });
  } else if (kind == 2) {
    check<ClipTextConfig>("ClipTextConfig", data, size, ClipTextConfig::from_json,
                          [](const ClipTextConfig& c) { return c.to_json(); });
  } else {
    check<SchedulerConfig>("SchedulerConfig", data, size, SchedulerConfig::from_json,
                           [](const SchedulerConfig& c) { return c.to_json("PNDMScheduler"); });
  }
  return 0;
}
