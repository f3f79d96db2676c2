#include "cli/bench_profile.h"

#include <torch/csrc/autograd/profiler_kineto.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <vector>

namespace fairdiff::cli {
namespace {

namespace prof = torch::autograd::profiler;
namespace impl = torch::profiler::impl;

// KinetoEvent reports durations in nanoseconds in newer LibTorch and microseconds in older ones.
template <typename Event>
auto duration_us(const Event& e, int) -> decltype(e.durationNs(), double()) {
  return static_cast<double>(e.durationNs()) / 1000.0;
}
template <typename Event>
double duration_us(const Event& e, long) {
  return static_cast<double>(e.durationUs());
}

// A kernel's kind, from its name, to see how much of a step runs in vendor libraries that fairdiff and the
// reference share (cuBLAS GEMMs, cuDNN convolutions, fused attention) and how much in the rest.
std::string kernel_category(const std::string& name) {
  auto has = [&](const char* part) { return name.find(part) != std::string::npos; };
  if (has("fairdiff::cuda_kernels")) return "fairdiff's fused kernels";
  if (has("flash") || has("fmha") || has("attention") || has("sdpa")) return "attention (SDPA)";
  if (has("nchwToNhwc") || has("nhwcToNchw") || has("transpose") || has("Transpose")) return "layout conversions";
  if (has("conv") || has("Conv") || has("fprop") || has("dgrad") || has("wgrad") || has("cudnn")) {
    return "convolutions (cuDNN)";
  }
  if (has("gemm") || has("Gemm") || has("nvjet") || has("cutlass") || has("xmma") || has("Kernel2") || has("splitK")) {
    return "matrix multiplies (cuBLAS)";
  }
  if (has("copy") || has("Copy") || has("cat") || has("Cat")) return "copies";
  if (has("norm") || has("Norm") || has("welford") || has("Welford")) return "normalisations (LibTorch)";
  if (has("reduce") || has("Reduce")) return "reductions";
  if (has("elementwise") || has("vectorized")) return "element-wise (LibTorch)";
  return "other";
}

// "aten::copy_ [64,4096,320] [64,4096,320]": an operator and the shapes of its tensor inputs.
std::string op_with_shapes(const prof::KinetoEvent& e) {
  std::string out = e.name();
  if (!e.hasShapes()) return out;
  for (const auto& shape : e.shapes()) {
    if (shape.empty()) continue;
    out += " [";
    for (size_t i = 0; i < shape.size(); ++i) out += (i ? "," : "") + std::to_string(shape[i]);
    out += "]";
  }
  return out;
}

}  // namespace

std::string profile_top_kernels(const std::function<void()>& work, bool cuda, int top) {
  // Input shapes, so that a kernel can be traced to the operator (and tensor sizes) that launched it.
  impl::ProfilerConfig config(impl::ProfilerState::KINETO, /*report_input_shapes=*/cuda);
  std::set<impl::ActivityType> activities{impl::ActivityType::CPU};
  if (cuda) activities.insert(impl::ActivityType::CUDA);
  prof::prepareProfiler(config, activities);
  prof::enableProfiler(config, activities);
  work();
  auto result = prof::disableProfiler();
  std::map<std::string, std::pair<double, int>> totals;
  std::map<std::string, double> categories;
  // A CUDA kernel's linked correlation id is that of the innermost operator that launched it (none inside a
  // replayed CUDA graph): per kernel name, the launching operators with their input shapes, by time.
  std::map<uint64_t, std::string> operators;
  std::map<std::string, std::map<std::string, std::pair<double, int>>> launched_by;
  if (cuda) {
    for (const auto& e : result->events()) {
      if (e.deviceType() == c10::DeviceType::CPU && e.correlationId() != 0) {
        operators[e.correlationId()] = op_with_shapes(e);
      }
    }
  }
  double all = 0;
  for (const auto& e : result->events()) {
    const bool on_device = e.deviceType() != c10::DeviceType::CPU;
    if (on_device != cuda) continue;
    double us = duration_us(e, 0);
    auto& slot = totals[e.name().substr(0, 200)];  // long enough to show an element-wise kernel's functor
    slot.first += us;
    slot.second += 1;
    if (cuda) {
      categories[kernel_category(e.name())] += us;
      auto op = operators.find(e.linkedCorrelationId());
      if (op != operators.end()) {
        auto& by = launched_by[e.name().substr(0, 200)][op->second];
        by.first += us;
        by.second += 1;
      }
    }
    all += us;
  }
  std::vector<std::pair<std::string, std::pair<double, int>>> sorted(totals.begin(), totals.end());
  std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.second.first > b.second.first; });
  std::string out;
  char line[320];
  std::snprintf(line, sizeof(line), "total %s time %.1f ms\n", cuda ? "kernel" : "operator", all / 1000.0);
  out += line;
  for (int i = 0; i < top && i < static_cast<int>(sorted.size()); ++i) {
    std::snprintf(line, sizeof(line), "%6.1f%% %9.2f ms %6d  %s\n", 100.0 * sorted[i].second.first / all,
                  sorted[i].second.first / 1000.0, sorted[i].second.second, sorted[i].first.c_str());
    out += line;
    auto ops = launched_by.find(sorted[i].first);
    if (ops == launched_by.end()) continue;
    std::vector<std::pair<std::string, std::pair<double, int>>> by(ops->second.begin(), ops->second.end());
    std::sort(by.begin(), by.end(), [](const auto& a, const auto& b) { return a.second.first > b.second.first; });
    for (size_t j = 0; j < by.size() && j < 3; ++j) {
      std::snprintf(line, sizeof(line), "%16s %9.2f ms %6d  <- %s\n", "", by[j].second.first / 1000.0,
                    by[j].second.second, by[j].first.substr(0, 240).c_str());
      out += line;
    }
  }
  if (!categories.empty()) {
    std::vector<std::pair<std::string, double>> kinds(categories.begin(), categories.end());
    std::sort(kinds.begin(), kinds.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
    out += "by kind:\n";
    for (const auto& [kind, us] : kinds) {
      std::snprintf(line, sizeof(line), "%6.1f%% %9.2f ms  %s\n", 100.0 * us / all, us / 1000.0, kind.c_str());
      out += line;
    }
  }
  return out;
}

}  // namespace fairdiff::cli
