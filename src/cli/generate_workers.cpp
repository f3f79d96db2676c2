#include "cli/generate_workers.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <thread>

#include "cli/worker_processes.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/interrupt.h"
#include "core/progress.h"
#include "diffusion/generation_job.h"

namespace fairdiff::cli {

namespace fs = std::filesystem;

std::vector<std::string> worker_base_arguments(const std::vector<std::string>& argv) {
  return without_options(argv, {"--gpus", "--workers", "--shard", "--device", "--out"});
}

namespace {

struct Worker {
  std::string device;
  std::string shard;  // "k/N"
  fs::path dir, log;
  pid_t pid = -1;
  int status = 0;
  bool running = false;
};

// Finished images of a shard: its manifest's rows (the header and a torn last line not counted).
int64_t finished_images(const fs::path& dir) {
  std::ifstream in(dir / "manifest.csv", std::ios::binary);
  if (!in) return 0;
  int64_t lines = 0;
  std::string line;
  while (std::getline(in, line)) lines += !in.eof();
  return lines > 0 ? lines - 1 : 0;
}

}  // namespace

int64_t run_generation_workers(const std::vector<std::string>& base_arguments, const std::vector<std::string>& devices,
                               const fs::path& out, int64_t total_images) {
  if (!is_new_or_empty_directory(out)) {
    throw FieldInputError("out", out.string() + " exists and is not empty: with --gpus/--workers the shards go to " +
                                     out.string() + ".shards/ and are merged into a new --out folder");
  }
  const fs::path shards_root = out.string() + ".shards";
  ensure_directory(shards_root, "the workers' shard folder");
  const int64_t n = static_cast<int64_t>(devices.size());
  std::vector<Worker> workers(devices.size());
  int64_t already_done = 0;
  for (int64_t k = 0; k < n; ++k) {
    Worker& w = workers[static_cast<size_t>(k)];
    w.device = devices[static_cast<size_t>(k)];
    w.shard = std::to_string(k) + "/" + std::to_string(n);
    const std::string name = std::to_string(k) + "-of-" + std::to_string(n);
    w.dir = shards_root / name;
    w.log = shards_root / (name + ".log");
    already_done += finished_images(w.dir);
  }
  for (Worker& w : workers) {
    std::vector<std::string> arguments = {"fairdiff", "generate"};
    arguments.insert(arguments.end(), base_arguments.begin(), base_arguments.end());
    for (const std::string& a :
         {std::string("--shard"), w.shard, std::string("--device"), w.device, std::string("--out"), w.dir.string()})
      arguments.push_back(a);
    w.pid = start_worker("generate", arguments, w.log);
    w.running = true;
  }
  std::fprintf(stderr, "generate: %lld workers (%s ... %s), logs in %s\n", static_cast<long long>(n),
               workers.front().device.c_str(), workers.back().device.c_str(), shards_root.string().c_str());
  Progress progress("generate", total_images, already_done, "img");
  int64_t shown = already_done;
  bool forwarded = false;
  for (size_t running = workers.size(); running > 0;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    if (interrupt_requested() && !forwarded) {
      // Workers started from a terminal got Ctrl-C themselves; a SIGTERM to the launcher alone is passed on.
      for (Worker& w : workers)
        if (w.running) kill(w.pid, SIGTERM);
      forwarded = true;
    }
    running = 0;
    for (Worker& w : workers) {
      if (!w.running) continue;
      if (waitpid(w.pid, &w.status, WNOHANG) == w.pid) {
        w.running = false;
      } else {
        ++running;
      }
    }
    int64_t done = 0;
    for (const Worker& w : workers) done += finished_images(w.dir);
    if (done > shown) {
      progress.advance(done - shown);
      shown = done;
    }
  }
  std::string failed;
  for (const Worker& w : workers) {
    if (WIFEXITED(w.status) && WEXITSTATUS(w.status) == 0) continue;
    const std::string how = describe_exit(w.status);
    failed += "  worker " + w.shard + " on " + w.device + " (" + how + "), log " + w.log.string() + ":\n" +
              last_lines(w.log, 5);
  }
  if (!failed.empty()) {
    check_interrupt();
    throw InputError("generate: workers failed; their finished images are kept in " + shards_root.string() +
                     " and the same command resumes them:\n" + failed);
  }
  progress.finish();
  std::vector<fs::path> dirs;
  for (const Worker& w : workers) dirs.push_back(w.dir);
  const int64_t merged = merge_generation_shards(dirs, out);
  std::error_code ec;
  fs::remove_all(shards_root, ec);  // the merged folder holds (hard links to) every image
  return merged;
}

}  // namespace fairdiff::cli
