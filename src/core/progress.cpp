#include "core/progress.h"

#include <unistd.h>

#include <cstdio>

#include "core/strings.h"

namespace fairdiff {

Progress::Progress(std::string label, long long total, long long already_done, std::string unit)
    : label_(std::move(label)),
      unit_(std::move(unit)),
      total_(total),
      done_(already_done),
      terminal_(isatty(STDERR_FILENO) != 0),
      start_(std::chrono::steady_clock::now()),
      last_print_(start_) {
  if (already_done > 0) {
    std::fprintf(stderr, "%s: resuming, %lld of %lld already done\n", label_.c_str(), already_done, total_);
  }
}

double Progress::elapsed_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void Progress::advance(long long units, const std::string& detail) {
  done_ += units;
  done_this_run_ += units;
  detail_ = detail;
  auto now = std::chrono::steady_clock::now();
  double since_print = std::chrono::duration<double>(now - last_print_).count();
  if ((terminal_ && since_print >= 0.1) || since_print >= 5.0 || done_ >= total_) {
    print(false);
    last_print_ = now;
  }
}

void Progress::finish() {
  if (finished_) return;
  finished_ = true;
  print(true);
}

void Progress::print(bool final_line) {
  double elapsed = elapsed_seconds();
  double rate = elapsed > 0 ? static_cast<double>(done_this_run_) / elapsed : 0.0;
  double remaining = rate > 0 ? static_cast<double>(total_ - done_) / rate : -1.0;
  int percent = total_ > 0 ? static_cast<int>(100.0 * static_cast<double>(done_) / static_cast<double>(total_)) : 100;
  char line[512];
  std::snprintf(line, sizeof(line), "%s %lld/%lld (%d%%) %.2f %s/s elapsed %s ETA %s%s%s", label_.c_str(), done_,
                total_, percent, rate, unit_.c_str(), format_duration(elapsed).c_str(),
                final_line ? "0s" : format_duration(remaining).c_str(), detail_.empty() ? "" : "  ", detail_.c_str());
  if (terminal_) {
    std::fprintf(stderr, "\r\033[K%s%s", line, final_line ? "\n" : "");
  } else {
    std::fprintf(stderr, "%s\n", line);
  }
  std::fflush(stderr);
}

}  // namespace fairdiff
