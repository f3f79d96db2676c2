// libFuzzer harness: loading a TF.js graph model (faces/tfjs/graph_model.h): model.json with its topology and
// weights manifest, and the weight shard it names. The input is model.json, a NUL byte, then the shard's bytes,
// written as shard.bin beside it (the seed models' manifests name "shard.bin").
#include <algorithm>

#include "faces/tfjs/graph_model.h"
#include "fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const uint8_t* end = data + size;
  const uint8_t* split = std::find(data, end, uint8_t{0});
  const auto model_json = fairdiff::fuzz::write_scratch_file("model.json", data, static_cast<size_t>(split - data));
  const uint8_t* shard = split == end ? end : split + 1;
  fairdiff::fuzz::write_scratch_file("shard.bin", shard, static_cast<size_t>(end - shard));
  fairdiff::fuzz::expect_clear_errors("GraphModel::load", [&] {
    const auto model = fairdiff::tfjs::GraphModel::load(model_json);
    for (const auto& [name, node] : model->outputs()) {
      if (name.empty() || node.empty()) fairdiff::fuzz::report_finding("GraphModel::load", "an unnamed output");
    }
  });
  return 0;
}
