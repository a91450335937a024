// dw-pg-schema: the shared store's PostgreSQL schema (lib/store/pg_schema) applied from the
// shell, for benchmarks and tests: migrations, then the daily event partitions of a range.
//
//   dw-pg-schema --db postgresql://... [--from-ns NS] [--days N]
//
// Prints the schema version and the partitions made; errors to stderr with exit 1.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>

#include "lib/base/clock.h"
#include "lib/store/pg_conn.h"
#include "lib/store/pg_schema.h"

int main(int argc, char** argv) {
  std::string db;
  int64_t from_ns = 0;
  int days = 1;
  CLI::App app{"dw-pg-schema: the shared store's schema and event partitions on PostgreSQL"};
  app.add_option("--db", db, "libpq URI (postgresql://...)")->required();
  app.add_option("--from-ns", from_ns, "first day's partition: the day holding this time (default: now)");
  app.add_option("--days", days, "partitions of this many days after the first too")
      ->check(CLI::Range(0, 3660))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (from_ns == 0) from_ns = driftwatch::NowNs();
  auto c = driftwatch::PgConn::Connect(db);
  if (!c) {
    std::fprintf(stderr, "dw-pg-schema: %s\n", c.error().c_str());
    return 1;
  }
  auto v = driftwatch::MigratePg(c->get(), driftwatch::PgStoreMigrations(), "dw-pg-schema");
  if (!v) {
    std::fprintf(stderr, "dw-pg-schema: %s\n", v.error().c_str());
    return 1;
  }
  if (auto ok = driftwatch::EnsureEventPartitions(c->get(), from_ns, days); !ok) {
    std::fprintf(stderr, "dw-pg-schema: %s\n", ok.error().c_str());
    return 1;
  }
  std::printf("schema version %d; partitions %s .. %s\n", *v,
              driftwatch::EventPartitionOf(from_ns).name.c_str(),
              driftwatch::EventPartitionOf(from_ns + int64_t{days} * 86'400'000'000'000).name.c_str());
  return 0;
}
