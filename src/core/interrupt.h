// Cooperative Ctrl-C: the first SIGINT/SIGTERM sets a flag that long loops poll between units of work,
// so the unit in progress is finished or discarded cleanly and nothing already written is lost.
// A second signal terminates at once.
#pragma once

namespace fairdiff {

void install_interrupt_handler();
bool interrupt_requested();
// Throws InterruptedError when an interrupt was requested.
void check_interrupt();
// For tests: request or clear an interrupt as if a signal had arrived.
void set_interrupt_requested(bool requested);

}  // namespace fairdiff
