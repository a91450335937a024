#pragma once

#include <string>

namespace driftwatch::cli {

struct StatusOptions {
  std::string sensor = "127.0.0.1:9464";  // the sensor's --metrics-address
  bool json = false;                       // the sensor's document as is
};

// `driftwatch status`: the node's sensor, as its /status endpoint reports it.
int RunStatus(const StatusOptions& opt);

}  // namespace driftwatch::cli
