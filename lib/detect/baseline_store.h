// baseline_store: the learned baselines (lib/detect/baseline.h) in the collector's database,
// and what `driftwatch baseline` does with them: list, show, export as Falco lists, import,
// reset, enforce.
//
// Tables (created if missing, beside the alerts):
//   baselines(image, container, generation, first_ns, learn_until_ns, dropped, updated_ns)
//   baseline_items(image, container, kind, item, source, detail, node, event_key, first_ns)
//   baseline_edits(id, image, container, what, edited_ns): every edit by the CLI, which a
//          running collector polls (BaselineStore::EditsAfter) to load the edited baselines.
//
// Detection writes its changes (WriteBaselineChanges) in the transaction of the alerts and
// cursors of the rows that made them, under the generation it decided with: an edit since
// then (a reset, an import) wins, and the stale change is dropped by the database.
//
// Exported files are Falco rules files of four lists per baseline
// (dw_baseline_<container>_processes, _connections, _listeners, _reads) under a header that
// names the image and container; `import` reads them back (the header, or --image and
// --container) and makes the baseline enforcing with exactly those items.
//
// Thread-safety: a BaselineStore is used by one thread at a time.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "lib/base/result.h"
#include "lib/detect/baseline.h"

struct sqlite3;

namespace driftwatch {

// Creates the tables if missing (on the caller's connection).
Result<> CreateBaselineTables(sqlite3* db);
// Inside the caller's transaction.
Result<> WriteBaselineChanges(sqlite3* db, const BaselineChanges& c, int64_t now_ns);

struct BaselineSummary {
  BaselineHeader header;
  uint64_t processes = 0, connections = 0, listeners = 0, reads = 0, unexpected = 0;
};

class BaselineStore {
 public:
  // `writable`: creates the tables (the collector, the CLI's edits); read-only otherwise, a
  // database without the tables reading as empty.
  static Result<std::unique_ptr<BaselineStore>> Open(
      const std::string& path, bool writable,
      std::chrono::milliseconds busy_timeout = std::chrono::seconds(5));
  ~BaselineStore();

  // Every baseline (all = true) or those of `ids`.
  Result<> Load(bool all, const std::vector<BaselineId>& ids, std::vector<BaselineHeader>* headers,
                std::vector<BaselineItem>* items);
  // Edits with an id above `after`, oldest first: (id, baseline).
  Result<std::vector<std::pair<int64_t, BaselineId>>> EditsAfter(int64_t after);
  Result<int64_t> LastEdit();

  Result<std::vector<BaselineSummary>> List();
  // The baselines whose image is `image` or starts with it (a digest prefix, as the CLI
  // takes "sha256:ab12"), or whose image name contains it, of container `container` (all
  // when empty).
  Result<std::vector<BaselineId>> Find(const std::string& image, const std::string& container);

  // Edits (each a transaction with its baseline_edits row; generation + 1).
  Result<> Reset(const BaselineId& id);           // forgotten: learning starts again
  Result<> Enforce(const BaselineId& id, int64_t now_ns);  // learning ends now
  Result<> Import(const BaselineId& id, const std::vector<std::pair<BaselineKind, std::string>>& items,
                  int64_t now_ns);

 private:
  BaselineStore() = default;
  Result<int64_t> BeginEdit(const BaselineId& id, const char* what);
  sqlite3* db_ = nullptr;
  bool has_tables_ = false;
};

// The export: a Falco rules file of lists (see above).
std::string BaselineYaml(const BaselineSummary& s, const std::vector<BaselineItem>& items);
// Reads an exported file back: its header's image and container (empty when missing) and
// items. Errors name the file and line.
struct ImportedBaseline {
  BaselineId id;
  std::vector<std::pair<BaselineKind, std::string>> items;
};
Result<ImportedBaseline> ParseBaselineYaml(const std::string& text, const std::string& name);

}  // namespace driftwatch
