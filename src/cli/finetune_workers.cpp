#include "cli/finetune_workers.h"

#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <thread>

#include "cli/worker_processes.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/interrupt.h"

namespace fairdiff::cli {

namespace fs = std::filesystem;

void run_finetune_workers(const std::vector<std::string>& base_arguments, const std::vector<std::string>& devices,
                          const fs::path& work_dir) {
  const int n = static_cast<int>(devices.size());
  const fs::path logs = work_dir / "logs";
  ensure_directory(logs, "the ranks' log folder");
  const std::string port = std::to_string(free_local_port());
  // CPU ranks share the cores (unless OMP_NUM_THREADS says otherwise).
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  const std::string threads = std::to_string(std::max(1u, cores / static_cast<unsigned>(n)));

  struct Rank {
    pid_t pid = -1;
    int status = 0;
    bool running = false;
    fs::path log;  // empty for rank 0, which writes to this terminal
  };
  std::vector<Rank> ranks(devices.size());
  for (int k = 0; k < n; ++k) {
    Rank& r = ranks[static_cast<size_t>(k)];
    std::vector<std::string> arguments = {"fairdiff", "finetune"};
    arguments.insert(arguments.end(), base_arguments.begin(), base_arguments.end());
    arguments.push_back("--device");
    arguments.push_back(devices[static_cast<size_t>(k)]);
    std::map<std::string, std::string> environment = {{"RANK", std::to_string(k)},
                                                      {"LOCAL_RANK", std::to_string(k)},
                                                      {"WORLD_SIZE", std::to_string(n)},
                                                      {"MASTER_ADDR", "127.0.0.1"},
                                                      {"MASTER_PORT", port}};
    if (!std::getenv("OMP_NUM_THREADS") && devices[static_cast<size_t>(k)] == "cpu")
      environment["OMP_NUM_THREADS"] = threads;
    if (k > 0) r.log = logs / ("rank-" + std::to_string(k) + ".log");
    r.pid = start_worker("finetune", arguments, r.log, environment);
    r.running = true;
  }
  std::fprintf(stderr, "finetune: %d ranks (%s ... %s), logs of ranks 1.. in %s\n", n, devices.front().c_str(),
               devices.back().c_str(), logs.string().c_str());

  bool forwarded = false;
  std::chrono::steady_clock::time_point kill_at = std::chrono::steady_clock::time_point::max();
  for (size_t running = ranks.size(); running > 0;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    const auto stop_all = [&] {
      for (Rank& r : ranks)
        if (r.running) kill(r.pid, SIGTERM);
      forwarded = true;
    };
    if (std::chrono::steady_clock::now() > kill_at) {
      for (Rank& r : ranks)
        if (r.running) kill(r.pid, SIGKILL);
    }
    // Ranks started from a terminal got Ctrl-C themselves; a SIGTERM to the launcher alone is passed on.
    if (interrupt_requested() && !forwarded) stop_all();
    running = 0;
    bool failed = false;
    for (Rank& r : ranks) {
      if (r.running && waitpid(r.pid, &r.status, WNOHANG) == r.pid) r.running = false;
      running += r.running;
      const bool ok_or_stopping =
          WIFEXITED(r.status) &&
          (WEXITSTATUS(r.status) == 0 || WEXITSTATUS(r.status) == static_cast<int>(ExitCode::interrupted));
      if (!r.running && !ok_or_stopping) failed = true;
    }
    // The others would wait for the failed rank at their next collective until the timeout.
    // SIGTERM lets them stop at a step boundary; one still stuck after 20 s is killed.
    if (failed && running > 0 && kill_at == std::chrono::steady_clock::time_point::max()) {
      if (!forwarded) stop_all();
      kill_at = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    }
  }

  std::string failures;
  bool interrupted = false;
  for (int k = 0; k < n; ++k) {
    const Rank& r = ranks[static_cast<size_t>(k)];
    if (WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0) continue;
    if (WIFEXITED(r.status) && WEXITSTATUS(r.status) == static_cast<int>(ExitCode::interrupted)) {
      interrupted = true;
      continue;
    }
    failures += "  rank " + std::to_string(k) + " on " + devices[static_cast<size_t>(k)] + " (" +
                describe_exit(r.status) + ")" +
                (r.log.empty() ? std::string(": its messages are above\n")
                               : ", log " + r.log.string() + ":\n" + last_lines(r.log, 5));
  }
  if (!failures.empty()) {
    check_interrupt();
    throw InputError("finetune: ranks failed (checkpoints already saved are kept in " + work_dir.string() +
                     "; --resume continues from the latest):\n" + failures);
  }
  if (interrupted) throw InterruptedError();
}

}  // namespace fairdiff::cli
