#include "cli/worker_processes.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <torch/cuda.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "core/error.h"
#include "core/strings.h"

namespace fairdiff::cli {

namespace fs = std::filesystem;

std::vector<std::string> without_options(const std::vector<std::string>& argv, const std::vector<std::string>& names) {
  std::vector<std::string> out;
  for (size_t i = 0; i < argv.size(); ++i) {
    bool dropped = false;
    for (const std::string& name : names) {
      if (argv[i] == name) {
        ++i;  // and its value
        dropped = true;
        break;
      }
      if (argv[i].rfind(name + "=", 0) == 0) {
        dropped = true;
        break;
      }
    }
    if (!dropped) out.push_back(argv[i]);
  }
  return out;
}

pid_t start_worker(const std::string& command, const std::vector<std::string>& arguments, const fs::path& log,
                   const std::map<std::string, std::string>& environment) {
  std::vector<char*> args;
  for (const auto& a : arguments) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t pid = fork();
  if (pid < 0) throw InputError(command + ": could not start a worker process (fork failed)");
  if (pid == 0) {
    if (!log.empty()) {
      const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd >= 0) {
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        close(fd);
      }
    }
    for (const auto& [name, value] : environment) setenv(name.c_str(), value.c_str(), 1);
    execv("/proc/self/exe", args.data());
    std::fprintf(stderr, "%s: could not run /proc/self/exe\n", command.c_str());
    _exit(127);
  }
  return pid;
}

std::string last_lines(const fs::path& file, size_t count) {
  std::ifstream in(file, std::ios::binary);
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) {
    lines.push_back(line);
    if (lines.size() > count) lines.erase(lines.begin());
  }
  std::string text;
  for (const auto& l : lines) text += "    " + l + "\n";
  return text;
}

std::string describe_exit(int status) {
  return WIFEXITED(status) ? "exit " + std::to_string(WEXITSTATUS(status))
                           : "signal " + std::to_string(WTERMSIG(status));
}

std::vector<std::string> gpu_devices(const std::string& command, const std::string& flag) {
  const int64_t available = static_cast<int64_t>(torch::cuda::device_count());
  long long wanted = available;
  if (flag != "all" && (!parse_int64(flag, wanted) || wanted < 1))
    throw UsageError(command + ": --gpus '" + flag + "': expected all or N >= 1");
  if (available == 0) throw UsageError(command + ": --gpus: this host has no CUDA device");
  if (wanted > available)
    throw UsageError(command + ": --gpus " + flag + ": this host has " + std::to_string(available) + " CUDA devices");
  std::vector<std::string> devices;
  for (long long k = 0; k < wanted; ++k) devices.push_back("cuda:" + std::to_string(k));
  return devices;
}

int free_local_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw InputError("could not open a socket to find a free port for the workers' rendezvous");
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;  // the kernel picks one
  socklen_t size = sizeof(address);
  const bool ok = bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
                  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size) == 0;
  close(fd);
  if (!ok) throw InputError("could not find a free local port for the workers' rendezvous");
  return ntohs(address.sin_port);
}

}  // namespace fairdiff::cli
