#include "train/stop_signal.h"

#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstring>

#include "dist/flight_recorder.h"

namespace horo::training {
namespace {

volatile std::sig_atomic_t g_received = 0;
std::atomic<bool> g_installed{false};
char g_message[256] = {};  // prepared at install time: the handler may only call async-signal-safe functions
size_t g_message_length = 0;

void on_stop_signal(int signal) {
  if (g_received != 0) {
    // The second request: the default action (terminate) at once.
    std::signal(signal, SIG_DFL);
    std::raise(signal);
    return;
  }
  g_received = signal;
  dist::FlightRecorder::instance().request_dump(signal == SIGTERM ? "stopped by SIGTERM" : "stopped by SIGINT");
  ssize_t ignored = ::write(STDERR_FILENO, g_message, g_message_length);
  (void)ignored;
}

void on_dump_signal(int) { dist::FlightRecorder::instance().request_dump("SIGUSR1 (dump requested)"); }

}  // namespace

void install_stop_signals(const char* program) {
  if (g_installed.exchange(true)) return;
  const char* text = ": stop requested; finishing the current step, then writing the checkpoint and logs "
                     "(signal again to stop at once)\n";
  std::strncpy(g_message, program, 64);
  std::strncat(g_message, text, sizeof g_message - std::strlen(g_message) - 1);
  g_message_length = std::strlen(g_message);
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;  // reads and waits in progress carry on; the loop polls the flag
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
  // SIGUSR1: write the flight recorder's records now and go on (the dump thread writes them).
  dist::FlightRecorder::instance().start_dump_thread();
  struct sigaction dump_action {};
  dump_action.sa_handler = on_dump_signal;
  sigemptyset(&dump_action.sa_mask);
  dump_action.sa_flags = SA_RESTART;
  sigaction(SIGUSR1, &dump_action, nullptr);
}

int stop_signal_received() { return g_received; }

const char* signal_name(int signal) {
  switch (signal) {
    case SIGTERM: return "SIGTERM";
    case SIGINT: return "SIGINT";
    case SIGUSR1: return "SIGUSR1";
    default: return "a signal";
  }
}

}  // namespace horo::training
