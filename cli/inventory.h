#pragma once

#include <cstdint>
#include <string>

#include "lib/store/default_db.h"

namespace driftwatch::cli {

struct InventoryOptions {
  std::string db = kDefaultCollectorDb;
  std::string node;       // exact node name
  std::string container;  // id or id prefix, NAME, POD/NAME or NAMESPACE/POD/NAME; "" = list
  std::string pod;        // pod name or namespace/name
  bool all = false;       // every stored inventory of the container, not only the newest
  bool json = false;      // one JSON object per inventory, entries included
};

// Prints the drift inventories the collector asked sensors for after drift alerts (opens
// the database read-only). Without a container: one line per stored inventory. With one:
// its newest inventory (or all, --all) as `driftwatch diff` prints it. Returns the exit
// status: 0; 1 when the database cannot be read or nothing matches a given container.
int RunInventory(const InventoryOptions& opt);

}  // namespace driftwatch::cli
