// Worker processes of this binary, for the launchers of `generate --gpus/--workers` and `finetune
// --gpus/--workers`: started with /proc/self/exe, their output in a log file (or the launcher's), and the end of a
// log for error messages.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace fairdiff::cli {

// `argv` without the options `names` (each with its value: `--name value` or `--name=value`).
std::vector<std::string> without_options(const std::vector<std::string>& argv, const std::vector<std::string>& names);

// Starts `arguments` (argv[0] first) as a new process running this binary, with `environment` added to this
// process's; stdout and stderr go to `log` (appended) unless it is empty. InputError naming `command` if the
// process cannot be started.
pid_t start_worker(const std::string& command, const std::vector<std::string>& arguments,
                   const std::filesystem::path& log, const std::map<std::string, std::string>& environment = {});

// The last `count` lines of `file`, each indented by four spaces.
std::string last_lines(const std::filesystem::path& file, size_t count);

// "exit N" or "signal N" for a waitpid status.
std::string describe_exit(int status);

// --gpus all|N: cuda:0 ... cuda:N-1; UsageError naming `command` when the host has fewer CUDA devices.
std::vector<std::string> gpu_devices(const std::string& command, const std::string& flag);

// An unused TCP port on the loopback interface (the rendezvous port of local data-parallel workers).
int free_local_port();

}  // namespace fairdiff::cli
