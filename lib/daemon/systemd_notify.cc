#include "lib/daemon/systemd_notify.h"

#include <systemd/sd-daemon.h>

#include <cstdlib>

namespace driftwatch {

SystemdNotifier::SystemdNotifier() {
  active_ = std::getenv("NOTIFY_SOCKET") != nullptr;
  uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0)
    watchdog_interval_ = std::chrono::milliseconds(usec / 2000);
}

void SystemdNotifier::Ready(const std::string& status) {
  if (active_) sd_notifyf(0, "READY=1\nSTATUS=%s", status.c_str());
}

void SystemdNotifier::Status(const std::string& status) {
  if (active_) sd_notifyf(0, "STATUS=%s", status.c_str());
}

void SystemdNotifier::Watchdog() {
  if (active_ && watchdog_interval_.count() > 0) sd_notify(0, "WATCHDOG=1");
}

void SystemdNotifier::Reloading() {
  if (active_) sd_notify(0, "RELOADING=1");
}

void SystemdNotifier::Stopping() {
  if (active_) sd_notify(0, "STOPPING=1");
}

}  // namespace driftwatch
