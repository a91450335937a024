#include "lib/detect/baseline_store.h"

#include <sqlite3.h>

#include <map>
#include <sstream>

#include "lib/base/clock.h"
#include "lib/base/json.h"
#include "lib/base/yaml_documents.h"
#include "lib/store/sqlite_util.h"

namespace driftwatch {
namespace {

using sql::BindText;
using sql::ColumnText;
using sql::Prepare;
using sql::SqliteError;
using sql::Stmt;

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS baselines(
  image TEXT NOT NULL,
  container TEXT NOT NULL,
  generation INTEGER NOT NULL,
  first_ns INTEGER NOT NULL,
  learn_until_ns INTEGER NOT NULL,
  dropped INTEGER NOT NULL,
  updated_ns INTEGER NOT NULL,
  PRIMARY KEY(image, container)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS baseline_items(
  image TEXT NOT NULL,
  container TEXT NOT NULL,
  kind TEXT NOT NULL,
  item TEXT NOT NULL,
  source TEXT NOT NULL,
  detail TEXT NOT NULL,
  node TEXT NOT NULL,
  event_key TEXT NOT NULL,
  first_ns INTEGER NOT NULL,
  PRIMARY KEY(image, container, kind, item)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS baseline_edits(
  id INTEGER PRIMARY KEY,
  image TEXT NOT NULL,
  container TEXT NOT NULL,
  what TEXT NOT NULL,
  edited_ns INTEGER NOT NULL);
)sql";

Result<> Exec(sqlite3* db, const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    Error e = SqliteError(db, sql);
    sqlite3_free(err);
    return std::unexpected(std::move(e));
  }
  return {};
}

Result<> StepDone(sqlite3* db, sqlite3_stmt* s, const char* what) {
  const int rc = sqlite3_step(s);
  sqlite3_reset(s);
  sqlite3_clear_bindings(s);
  if (rc != SQLITE_DONE) return std::unexpected(SqliteError(db, what));
  return {};
}

BaselineHeader ReadHeader(sqlite3_stmt* s) {
  BaselineHeader h;
  h.id = {ColumnText(s, 0), ColumnText(s, 1)};
  h.generation = sqlite3_column_int64(s, 2);
  h.first_ns = sqlite3_column_int64(s, 3);
  h.learn_until_ns = sqlite3_column_int64(s, 4);
  h.dropped = static_cast<uint64_t>(sqlite3_column_int64(s, 5));
  return h;
}

// Runs `body` in a write transaction; rolls back on error.
Result<> InTransaction(sqlite3* db, const std::function<Result<>()>& body) {
  if (auto ok = Exec(db, "BEGIN IMMEDIATE"); !ok) return ok;
  auto ok = body();
  if (ok) ok = Exec(db, "COMMIT");
  if (!ok) (void)Exec(db, "ROLLBACK");
  return ok;
}

// A list name's part from a container name: [a-z0-9_], others as '_'.
std::string ListPart(std::string_view name) {
  std::string out;
  for (char c : name) {
    const bool keep = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
    out += keep ? c : (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : '_';
  }
  return out.empty() ? "container" : out;
}

// The list name's suffix of a kind: "_processes", "_connections", "_listeners".
std::string_view ListSuffix(BaselineKind k) {
  switch (k) {
    case BaselineKind::kProcess: return "_processes";
    case BaselineKind::kConnection: return "_connections";
    case BaselineKind::kListener: return "_listeners";
    case BaselineKind::kRead: return "_reads";
  }
  return "_?";
}

}  // namespace

Result<> CreateBaselineTables(sqlite3* db) { return Exec(db, kSchema); }

Result<> WriteBaselineChanges(sqlite3* db, const BaselineChanges& c, int64_t now_ns) {
  if (c.empty()) return {};
  Stmt head, item;
  // A header is written only over the generation it was decided with (or created).
  if (auto ok = Prepare(db,
                        "INSERT INTO baselines(image, container, generation, first_ns, "
                        "learn_until_ns, dropped, updated_ns) VALUES(?,?,?,?,?,?,?) "
                        "ON CONFLICT(image, container) DO UPDATE SET first_ns = excluded.first_ns, "
                        "learn_until_ns = excluded.learn_until_ns, dropped = max(dropped, "
                        "excluded.dropped), updated_ns = excluded.updated_ns "
                        "WHERE generation = excluded.generation",
                        &head);
      !ok)
    return ok;
  if (auto ok = Prepare(db,
                        "INSERT OR IGNORE INTO baseline_items(image, container, kind, item, "
                        "source, detail, node, event_key, first_ns) SELECT ?1,?2,?3,?4,?5,?6,?7,"
                        "?8,?9 WHERE EXISTS(SELECT 1 FROM baselines WHERE image = ?1 AND "
                        "container = ?2 AND generation = ?10)",
                        &item);
      !ok)
    return ok;
  for (const BaselineHeader& h : c.headers) {
    BindText(head.s, 1, h.id.image);
    BindText(head.s, 2, h.id.container);
    sqlite3_bind_int64(head.s, 3, h.generation);
    sqlite3_bind_int64(head.s, 4, h.first_ns);
    sqlite3_bind_int64(head.s, 5, h.learn_until_ns);
    sqlite3_bind_int64(head.s, 6, static_cast<int64_t>(h.dropped));
    sqlite3_bind_int64(head.s, 7, now_ns);
    if (auto ok = StepDone(db, head.s, "write baseline"); !ok) return ok;
  }
  for (const BaselineItem& i : c.items) {
    const std::string_view kind = BaselineKindName(i.kind);
    BindText(item.s, 1, i.id.image);
    BindText(item.s, 2, i.id.container);
    BindText(item.s, 3, kind);
    BindText(item.s, 4, i.item);
    BindText(item.s, 5, i.source);
    BindText(item.s, 6, i.detail);
    BindText(item.s, 7, i.node);
    BindText(item.s, 8, i.event_key);
    sqlite3_bind_int64(item.s, 9, i.first_ns);
    sqlite3_bind_int64(item.s, 10, i.generation);
    if (auto ok = StepDone(db, item.s, "write baseline item"); !ok) return ok;
  }
  return {};
}

Result<std::unique_ptr<BaselineStore>> BaselineStore::Open(const std::string& path, bool writable,
                                                           std::chrono::milliseconds busy_timeout) {
  std::unique_ptr<BaselineStore> st(new BaselineStore());
  const int flags = writable ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX
                             : SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX;
  if (sqlite3_open_v2(path.c_str(), &st->db_, flags, nullptr) != SQLITE_OK)
    return std::unexpected(SqliteError(st->db_, path));
  sqlite3_busy_timeout(st->db_, static_cast<int>(busy_timeout.count()));
  if (writable) {
    if (auto ok = CreateBaselineTables(st->db_); !ok) return std::unexpected(ok.error().Prefix(path));
    st->has_tables_ = true;
    return st;
  }
  Stmt q;
  if (auto ok = Prepare(st->db_,
                        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN "
                        "('baselines', 'baseline_items', 'baseline_edits')",
                        &q);
      !ok)
    return std::unexpected(ok.error().Prefix(path));
  if (sqlite3_step(q.s) != SQLITE_ROW) return std::unexpected(SqliteError(st->db_, path));
  st->has_tables_ = sqlite3_column_int(q.s, 0) == 3;
  return st;
}

BaselineStore::~BaselineStore() { sqlite3_close(db_); }

Result<> BaselineStore::Load(bool all, const std::vector<BaselineId>& ids,
                             std::vector<BaselineHeader>* headers, std::vector<BaselineItem>* items) {
  if (!has_tables_) return {};
  Stmt h, i;
  const char* hsql =
      all ? "SELECT image, container, generation, first_ns, learn_until_ns, dropped FROM "
            "baselines"
          : "SELECT image, container, generation, first_ns, learn_until_ns, dropped FROM "
            "baselines WHERE image = ? AND container = ?";
  const char* isql = all ? "SELECT image, container, kind, item, source, detail, node, "
                           "event_key, first_ns FROM baseline_items"
                         : "SELECT image, container, kind, item, source, detail, node, "
                           "event_key, first_ns FROM baseline_items WHERE image = ? AND "
                           "container = ?";
  if (auto ok = Prepare(db_, hsql, &h); !ok) return ok;
  if (auto ok = Prepare(db_, isql, &i); !ok) return ok;
  auto run = [&](const BaselineId* id) -> Result<> {
    if (id) {
      for (sqlite3_stmt* s : {h.s, i.s}) {
        sqlite3_reset(s);
        BindText(s, 1, id->image);
        BindText(s, 2, id->container);
      }
    }
    int rc;
    std::map<BaselineId, int64_t> gen;
    while ((rc = sqlite3_step(h.s)) == SQLITE_ROW) {
      headers->push_back(ReadHeader(h.s));
      gen[headers->back().id] = headers->back().generation;
    }
    if (rc != SQLITE_DONE) return std::unexpected(SqliteError(db_, "read baselines"));
    while ((rc = sqlite3_step(i.s)) == SQLITE_ROW) {
      BaselineItem it;
      it.id = {ColumnText(i.s, 0), ColumnText(i.s, 1)};
      auto kind = ParseBaselineKind(ColumnText(i.s, 2));
      if (!kind) continue;  // a kind this version does not know
      it.kind = *kind;
      it.item = ColumnText(i.s, 3);
      it.source = ColumnText(i.s, 4);
      it.detail = ColumnText(i.s, 5);
      it.node = ColumnText(i.s, 6);
      it.event_key = ColumnText(i.s, 7);
      it.first_ns = sqlite3_column_int64(i.s, 8);
      auto g = gen.find(it.id);
      it.generation = g == gen.end() ? 0 : g->second;
      items->push_back(std::move(it));
    }
    if (rc != SQLITE_DONE) return std::unexpected(SqliteError(db_, "read baseline items"));
    return {};
  };
  // One read transaction: headers and items of the same moment.
  if (auto ok = Exec(db_, "BEGIN"); !ok) return ok;
  Result<> ok;
  if (all) {
    ok = run(nullptr);
  } else {
    for (const BaselineId& id : ids)
      if (ok) ok = run(&id);
  }
  (void)Exec(db_, "COMMIT");
  return ok;
}

Result<std::vector<std::pair<int64_t, BaselineId>>> BaselineStore::EditsAfter(int64_t after) {
  std::vector<std::pair<int64_t, BaselineId>> out;
  if (!has_tables_) return out;
  Stmt q;
  if (auto ok = Prepare(db_, "SELECT id, image, container FROM baseline_edits WHERE id > ? "
                             "ORDER BY id",
                        &q);
      !ok)
    return std::unexpected(ok.error());
  sqlite3_bind_int64(q.s, 1, after);
  int rc;
  while ((rc = sqlite3_step(q.s)) == SQLITE_ROW)
    out.emplace_back(sqlite3_column_int64(q.s, 0), BaselineId{ColumnText(q.s, 1), ColumnText(q.s, 2)});
  if (rc != SQLITE_DONE) return std::unexpected(SqliteError(db_, "read baseline edits"));
  return out;
}

Result<int64_t> BaselineStore::LastEdit() {
  if (!has_tables_) return 0;
  Stmt q;
  if (auto ok = Prepare(db_, "SELECT coalesce(max(id), 0) FROM baseline_edits", &q); !ok)
    return std::unexpected(ok.error());
  if (sqlite3_step(q.s) != SQLITE_ROW) return std::unexpected(SqliteError(db_, "read baseline edits"));
  return sqlite3_column_int64(q.s, 0);
}

Result<std::vector<BaselineSummary>> BaselineStore::List() {
  std::vector<BaselineSummary> out;
  if (!has_tables_) return out;
  Stmt q;
  if (auto ok = Prepare(db_,
                        "SELECT b.image, b.container, b.generation, b.first_ns, b.learn_until_ns, "
                        "b.dropped, sum(i.kind = 'process'), sum(i.kind = 'connection'), "
                        "sum(i.kind = 'listener'), sum(i.kind = 'read'), sum(i.source = 'unexpected') "
                        "FROM baselines b "
                        "LEFT JOIN baseline_items i ON i.image = b.image AND i.container = "
                        "b.container GROUP BY b.image, b.container ORDER BY b.image, b.container",
                        &q);
      !ok)
    return std::unexpected(ok.error());
  int rc;
  while ((rc = sqlite3_step(q.s)) == SQLITE_ROW) {
    BaselineSummary s;
    s.header = ReadHeader(q.s);
    s.processes = static_cast<uint64_t>(sqlite3_column_int64(q.s, 6));
    s.connections = static_cast<uint64_t>(sqlite3_column_int64(q.s, 7));
    s.listeners = static_cast<uint64_t>(sqlite3_column_int64(q.s, 8));
    s.reads = static_cast<uint64_t>(sqlite3_column_int64(q.s, 9));
    s.unexpected = static_cast<uint64_t>(sqlite3_column_int64(q.s, 10));
    out.push_back(std::move(s));
  }
  if (rc != SQLITE_DONE) return std::unexpected(SqliteError(db_, "list baselines"));
  return out;
}

Result<std::vector<BaselineId>> BaselineStore::Find(const std::string& image,
                                                    const std::string& container) {
  std::vector<BaselineId> out;
  if (!has_tables_) return out;
  Stmt q;
  // instr, not LIKE: an image name may hold '%' or '_'.
  if (auto ok = Prepare(db_,
                        "SELECT image, container FROM baselines WHERE (image = ?1 OR "
                        "substr(image, 1, length(?1)) = ?1 OR instr(image, ?1) > 0) AND "
                        "(?2 = '' OR container = ?2) ORDER BY image, container",
                        &q);
      !ok)
    return std::unexpected(ok.error());
  BindText(q.s, 1, image);
  BindText(q.s, 2, container);
  int rc;
  while ((rc = sqlite3_step(q.s)) == SQLITE_ROW)
    out.push_back({ColumnText(q.s, 0), ColumnText(q.s, 1)});
  if (rc != SQLITE_DONE) return std::unexpected(SqliteError(db_, "find baselines"));
  // An exact image match wins over prefixes and substrings.
  std::vector<BaselineId> exact;
  for (const BaselineId& id : out)
    if (id.image == image) exact.push_back(id);
  return exact.empty() ? out : exact;
}

Result<int64_t> BaselineStore::BeginEdit(const BaselineId& id, const char* what) {
  Stmt e;
  if (auto ok = Prepare(db_,
                        "INSERT INTO baseline_edits(image, container, what, edited_ns) "
                        "VALUES(?,?,?,?)",
                        &e);
      !ok)
    return std::unexpected(ok.error());
  BindText(e.s, 1, id.image);
  BindText(e.s, 2, id.container);
  sqlite3_bind_text(e.s, 3, what, -1, SQLITE_STATIC);
  sqlite3_bind_int64(e.s, 4, NowNs());
  if (auto ok = StepDone(db_, e.s, "record baseline edit"); !ok) return std::unexpected(ok.error());
  return sqlite3_last_insert_rowid(db_);
}

Result<> BaselineStore::Reset(const BaselineId& id) {
  return InTransaction(db_, [&]() -> Result<> {
    if (auto e = BeginEdit(id, "reset"); !e) return std::unexpected(e.error());
    Stmt del, up;
    if (auto ok = Prepare(db_, "DELETE FROM baseline_items WHERE image = ? AND container = ?",
                          &del);
        !ok)
      return ok;
    if (auto ok = Prepare(db_,
                          "UPDATE baselines SET generation = generation + 1, first_ns = 0, "
                          "learn_until_ns = 0, dropped = 0, updated_ns = ? WHERE image = ? AND "
                          "container = ?",
                          &up);
        !ok)
      return ok;
    BindText(del.s, 1, id.image);
    BindText(del.s, 2, id.container);
    if (auto ok = StepDone(db_, del.s, "reset baseline"); !ok) return ok;
    sqlite3_bind_int64(up.s, 1, NowNs());
    BindText(up.s, 2, id.image);
    BindText(up.s, 3, id.container);
    return StepDone(db_, up.s, "reset baseline");
  });
}

Result<> BaselineStore::Enforce(const BaselineId& id, int64_t now_ns) {
  return InTransaction(db_, [&]() -> Result<> {
    if (auto e = BeginEdit(id, "enforce"); !e) return std::unexpected(e.error());
    Stmt up;
    if (auto ok = Prepare(db_,
                          "UPDATE baselines SET generation = generation + 1, first_ns = "
                          "CASE first_ns WHEN 0 THEN ?1 ELSE first_ns END, learn_until_ns = "
                          "min(CASE learn_until_ns WHEN 0 THEN ?1 ELSE learn_until_ns END, ?1), "
                          "updated_ns = ?1 WHERE image = ?2 AND container = ?3",
                          &up);
        !ok)
      return ok;
    sqlite3_bind_int64(up.s, 1, now_ns);
    BindText(up.s, 2, id.image);
    BindText(up.s, 3, id.container);
    return StepDone(db_, up.s, "enforce baseline");
  });
}

Result<> BaselineStore::Import(const BaselineId& id,
                               const std::vector<std::pair<BaselineKind, std::string>>& items,
                               int64_t now_ns) {
  return InTransaction(db_, [&]() -> Result<> {
    if (auto e = BeginEdit(id, "import"); !e) return std::unexpected(e.error());
    Stmt del, up, ins;
    if (auto ok = Prepare(db_, "DELETE FROM baseline_items WHERE image = ? AND container = ?",
                          &del);
        !ok)
      return ok;
    if (auto ok = Prepare(db_,
                          "INSERT INTO baselines(image, container, generation, first_ns, "
                          "learn_until_ns, dropped, updated_ns) VALUES(?1, ?2, 1, ?3, ?3, 0, ?3) "
                          "ON CONFLICT(image, container) DO UPDATE SET generation = generation + "
                          "1, first_ns = ?3, learn_until_ns = ?3, dropped = 0, updated_ns = ?3",
                          &up);
        !ok)
      return ok;
    if (auto ok = Prepare(db_,
                          "INSERT OR IGNORE INTO baseline_items(image, container, kind, item, "
                          "source, detail, node, event_key, first_ns) VALUES(?,?,?,?,'imported',"
                          "'','','',?)",
                          &ins);
        !ok)
      return ok;
    BindText(del.s, 1, id.image);
    BindText(del.s, 2, id.container);
    if (auto ok = StepDone(db_, del.s, "import baseline"); !ok) return ok;
    BindText(up.s, 1, id.image);
    BindText(up.s, 2, id.container);
    sqlite3_bind_int64(up.s, 3, now_ns);
    if (auto ok = StepDone(db_, up.s, "import baseline"); !ok) return ok;
    for (const auto& [kind, item] : items) {
      const std::string_view k = BaselineKindName(kind);
      BindText(ins.s, 1, id.image);
      BindText(ins.s, 2, id.container);
      BindText(ins.s, 3, k);
      BindText(ins.s, 4, item);
      sqlite3_bind_int64(ins.s, 5, now_ns);
      if (auto ok = StepDone(db_, ins.s, "import baseline item"); !ok) return ok;
    }
    return {};
  });
}

std::string BaselineYaml(const BaselineSummary& s, const std::vector<BaselineItem>& items) {
  const BaselineHeader& h = s.header;
  std::string out = "# driftwatch baseline (driftwatch baseline export); a Falco rules file of "
                    "lists.\n# image: " + JsonQuote(h.id.image) +
                    "\n# container: " + JsonQuote(h.id.container) + "\n";
  if (h.first_ns != 0) {
    out += "# learned from " + FormatIsoTime(h.first_ns) + " until " +
           FormatIsoTime(h.learn_until_ns) + "\n";
  }
  if (h.dropped) out += "# " + std::to_string(h.dropped) + " items not recorded (baseline full)\n";
  const std::string base = "dw_baseline_" + ListPart(h.id.container);
  for (BaselineKind k : kBaselineKinds) {
    out.append("- list: ").append(base).append(ListSuffix(k)).append("\n  items: [");
    bool first = true;
    for (const BaselineItem& i : items) {
      if (i.kind != k) continue;
      out += first ? "" : ", ";
      first = false;
      if (k == BaselineKind::kListener) {
        out += i.item;  // a port: a number, as Falco's port lists have them
      } else {
        out += JsonQuote(i.item);
      }
    }
    out += "]\n";
  }
  return out;
}

Result<ImportedBaseline> ParseBaselineYaml(const std::string& text, const std::string& name) {
  ImportedBaseline out;
  // The header comments name the baseline: "# image: "..."" and "# container: "..."".
  std::istringstream lines(text);
  std::string line;
  int n = 0;
  while (std::getline(lines, line)) {
    ++n;
    if (!line.starts_with("#")) break;
    for (auto [key, field] : {std::pair{"# image: ", &out.id.image},
                              std::pair{"# container: ", &out.id.container}}) {
      if (!line.starts_with(key)) continue;
      try {
        *field = YAML::Load(line.substr(std::string_view(key).size())).as<std::string>();
      } catch (const YAML::Exception& e) {
        return std::unexpected(Error::InvalidInput(name + ":" + std::to_string(n) +
                                                   ": header value: " + e.what()));
      }
    }
  }
  std::vector<YAML::Node> docs;
  try {
    docs = LoadYamlDocuments(text);
  } catch (const YAML::Exception& e) {
    return std::unexpected(Error::InvalidInput(YamlPlace(name, e.mark) + ": " + e.msg));
  }
  for (const YAML::Node& doc : docs) {
    if (doc.IsNull()) continue;
    if (!doc.IsSequence())
      return std::unexpected(Error::InvalidInput(YamlPlace(name, doc.Mark()) +
                                                 ": expected a list of Falco `list` items"));
    for (const YAML::Node& it : doc) {
      if (!it.IsMap() || !it["list"] || !it["items"] || !it["items"].IsSequence())
        return std::unexpected(Error::InvalidInput(
            YamlPlace(name, it.Mark()) + ": expected `- list: NAME` with `items: [...]`"));
      const std::string list = it["list"].Scalar();
      std::optional<BaselineKind> kind;
      for (BaselineKind k : kBaselineKinds) {
        if (list.ends_with(ListSuffix(k))) kind = k;
      }
      if (!kind)
        return std::unexpected(Error::InvalidInput(
            YamlPlace(name, it.Mark()) + ": list " + list +
            " is not a baseline list (its name ends in _processes, _connections, _listeners "
            "or _reads)"));
      for (const YAML::Node& v : it["items"]) {
        if (!v.IsScalar() || v.Scalar().empty())
          return std::unexpected(Error::InvalidInput(YamlPlace(name, v.Mark()) +
                                                     ": an item is a non-empty string"));
        if (*kind == BaselineKind::kListener) {
          const std::string& p = v.Scalar();
          char* end = nullptr;
          const long port = std::strtol(p.c_str(), &end, 10);
          if (*end != '\0' || port < 1 || port > 65535)
            return std::unexpected(Error::InvalidInput(YamlPlace(name, v.Mark()) + ": port " +
                                                       p + " is not 1..65535"));
        }
        out.items.emplace_back(*kind, v.Scalar());
      }
    }
  }
  return out;
}

}  // namespace driftwatch
