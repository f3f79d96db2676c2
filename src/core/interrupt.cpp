#include "core/interrupt.h"

#include <unistd.h>

#include <csignal>
#include <cstdlib>

#include "core/error.h"

namespace fairdiff {
namespace {

volatile std::sig_atomic_t g_interrupt_requested = 0;

void on_signal(int signal_number) {
  if (g_interrupt_requested) {
    _exit(128 + signal_number);
  }
  g_interrupt_requested = 1;
  static const char message[] = "\nfairdiff: stopping after the current step (press Ctrl-C again to abort)\n";
  ssize_t ignored = write(STDERR_FILENO, message, sizeof(message) - 1);
  (void)ignored;
}

}  // namespace

void install_interrupt_handler() {
  struct sigaction action {};
  action.sa_handler = on_signal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

bool interrupt_requested() {
  return g_interrupt_requested != 0;
}

void check_interrupt() {
  if (interrupt_requested()) throw InterruptedError();
}

void set_interrupt_requested(bool requested) {
  g_interrupt_requested = requested ? 1 : 0;
}

}  // namespace fairdiff
