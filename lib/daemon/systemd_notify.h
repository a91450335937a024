// systemd_notify: the daemons' side of Type=notify (sd_notify): READY=1 once serving,
// WATCHDOG=1 from the main loop (so a wedged loop gets the service restarted), STATUS=
// lines, RELOADING=1 / STOPPING=1. Every call is a no-op when not run by systemd.
//
// Thread-safety: safe from any thread (sd_notify is).
#pragma once

#include <chrono>
#include <string>

namespace driftwatch {

class SystemdNotifier {
 public:
  SystemdNotifier();
  bool active() const { return active_; }
  // Half the WatchdogSec= systemd asked for (0: no watchdog): how often to call Watchdog().
  std::chrono::milliseconds watchdog_interval() const { return watchdog_interval_; }

  void Ready(const std::string& status);
  void Status(const std::string& status);
  void Watchdog();
  void Reloading();
  void Stopping();

 private:
  bool active_ = false;
  std::chrono::milliseconds watchdog_interval_{0};
};

}  // namespace driftwatch
