// The PostgreSQL the pg tests run against: tests/integration/pg_store_test.sh starts a private
// server (pg_env.sh) and sets DW_PG_URI; each test works in a database of its own.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "lib/store/pg_conn.h"

namespace driftwatch {

// DW_PG_URI, "" when not set.
inline std::string PgBaseUri() {
  const char* u = std::getenv("DW_PG_URI");
  return u ? u : "";
}

// A fresh database `name` on that server (dropped first, its sessions ended) and its URI;
// "" (with the test failed) when the server refuses.
inline std::string FreshPgDatabase(const std::string& name) {
  const std::string base = PgBaseUri();
  auto admin = PgConn::Connect(base);
  EXPECT_TRUE(admin.has_value()) << (admin ? "" : admin.error().message());
  if (!admin) return "";
  const bool dropped = (*admin)->Run("drop", "DROP DATABASE IF EXISTS " + name + " WITH (FORCE)").has_value();
  const bool created = (*admin)->Run("create", "CREATE DATABASE " + name).has_value();
  EXPECT_TRUE(dropped && created) << name;
  return dropped && created ? base.substr(0, base.rfind('/') + 1) + name : "";
}

}  // namespace driftwatch
