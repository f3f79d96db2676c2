// Progress with rate and ETA on stderr: a live line on a terminal, a line every few seconds otherwise.
#pragma once

#include <chrono>
#include <string>

namespace fairdiff {

class Progress {
 public:
  // `total` units of work, of which `already_done` were finished by an earlier run (resume): they count
  // towards the bar but not towards the rate.
  Progress(std::string label, long long total, long long already_done = 0, std::string unit = "it");
  void advance(long long units = 1, const std::string& detail = "");
  void finish();
  double elapsed_seconds() const;

 private:
  void print(bool final_line);

  std::string label_;
  std::string unit_;
  long long total_;
  long long done_;
  long long done_this_run_ = 0;
  std::string detail_;
  bool terminal_;
  bool finished_ = false;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_print_;
};

}  // namespace fairdiff
