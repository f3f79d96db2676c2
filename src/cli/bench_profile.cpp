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

}  // namespace

std::string profile_top_kernels(const std::function<void()>& work, bool cuda, int top) {
  impl::ProfilerConfig config(impl::ProfilerState::KINETO);
  std::set<impl::ActivityType> activities{impl::ActivityType::CPU};
  if (cuda) activities.insert(impl::ActivityType::CUDA);
  prof::prepareProfiler(config, activities);
  prof::enableProfiler(config, activities);
  work();
  auto result = prof::disableProfiler();
  std::map<std::string, std::pair<double, int>> totals;
  double all = 0;
  for (const auto& e : result->events()) {
    const bool on_device = e.deviceType() != c10::DeviceType::CPU;
    if (on_device != cuda) continue;
    double us = duration_us(e, 0);
    auto& slot = totals[e.name().substr(0, 90)];
    slot.first += us;
    slot.second += 1;
    all += us;
  }
  std::vector<std::pair<std::string, std::pair<double, int>>> sorted(totals.begin(), totals.end());
  std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.second.first > b.second.first; });
  std::string out;
  char line[256];
  std::snprintf(line, sizeof(line), "total %s time %.1f ms\n", cuda ? "kernel" : "operator", all / 1000.0);
  out += line;
  for (int i = 0; i < top && i < static_cast<int>(sorted.size()); ++i) {
    std::snprintf(line, sizeof(line), "%6.1f%% %9.2f ms %6d  %s\n", 100.0 * sorted[i].second.first / all,
                  sorted[i].second.first / 1000.0, sorted[i].second.second, sorted[i].first.c_str());
    out += line;
  }
  return out;
}

}  // namespace fairdiff::cli
