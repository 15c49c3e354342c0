// SIGTERM and SIGINT as a request to stop cleanly: what Slurm, Kubernetes and spot instances send
// before killing a job, and what Ctrl-C sends. The first one is recorded (the training loop polls
// it after each step, finishes that step, writes its checkpoint and logs); a second one of either
// kills the process at once, so a run that will not stop can still be ended. Each of them, and
// SIGUSR1, also has the collective flight recorder write its records (dist/flight_recorder.h).
#pragma once

namespace horo::training {

// Installs the handlers for SIGTERM, SIGINT and SIGUSR1 (once; later calls do nothing). `program` prefixes
// the one line written to stderr when the first signal arrives.
void install_stop_signals(const char* program);
// The first stop signal received (SIGTERM or SIGINT), or 0.
int stop_signal_received();
// "SIGTERM", "SIGINT", "SIGUSR1", or "a signal".
const char* signal_name(int signal);

}  // namespace horo::training
