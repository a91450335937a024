#include "lib/daemon/node_name.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace driftwatch {
namespace {

using namespace std::string_literals;

TEST(NodeNameTest, AcceptedAndRefusedNames) {
  struct Row {
    std::string name;
    std::string error;  // "" for accepted
  };
  const std::vector<Row> rows = {
      {"node-1", ""},
      {"ip-10-0-3-7.eu-west-1.compute.internal", ""},
      {"worker_7", ""},
      {"n\xc5\x93ud-1", ""},  // valid UTF-8
      {std::string(253, 'a'), ""},
      {"", "is empty"},
      {std::string(254, 'a'), "is longer than 253 bytes"},
      {"node 1", "contains a space"},
      {"node-1\n", "contains a control character"},
      {"node\t1", "contains a control character"},
      {"evil\x1b]0;pwned\x07", "contains a control character"},
      {"evil\x1b[2J", "contains a control character"},
      {"nul\0x"s, "contains a control character"},
      {"del\x7f", "contains a control character"},
      {"c1\xc2\x9b" "2J", "contains a control character"},  // CSI in UTF-8
      {"raw\x9b", "is not valid UTF-8"},                       // C1 as a raw byte
      {"bad\xff", "is not valid UTF-8"},
      {"overlong\xc0\xaf", "is not valid UTF-8"},
      {"back\\slash", "contains a backslash"},
  };
  for (const Row& r : rows) {
    auto got = CheckNodeName(r.name);
    EXPECT_EQ(got ? "" : got.error().message(), r.error) << "'" << r.name << "'";
    if (!got) {
      EXPECT_EQ(got.error().code(), ErrorCode::kInvalidInput);
    }
  }
}

TEST(NodeNameTest, FirstDnsSanElseCn) {
  struct Row {
    std::vector<std::string> dns, cn;
    std::string want;  // "" for refused
    std::string error_has;
  };
  const std::vector<Row> rows = {
      {{"node-a"}, {"cn-a"}, "node-a", ""},
      {{"node-a", "node-b"}, {"cn-a"}, "node-a", ""},  // the first, in certificate order
      {{}, {"cn-a"}, "cn-a", ""},                      // IP/URI/email SANs only: the CN
      {{}, {"cn-a", "cn-b"}, "cn-a", ""},
      {{}, {}, "", "no DNS SAN and no CN"},
      {{}, {""}, "", "no DNS SAN and no CN"},  // gRPC's CN of a certificate without one
      // A bad DNS SAN is refused, not skipped for the next one or the CN.
      {{"bad\x1b[2J", "node-b"}, {"cn-a"}, "", "first DNS SAN \"bad\x1b[2J\" contains a control"},
      {{""}, {"cn-a"}, "", "first DNS SAN \"\" is empty"},
      {{}, {"evil\xc2\x9b"}, "", "CN (no DNS SAN) \"evil\xc2\x9b\" contains a control"},
      {{}, {"two words"}, "", "contains a space"},
      {{}, {std::string(300, 'x')}, "", std::string(64, 'x') + "...\" is longer than 253 bytes"},
  };
  for (const Row& r : rows) {
    auto got = NodeNameFromCertificate(r.dns, r.cn);
    if (r.want.empty()) {
      ASSERT_FALSE(got.has_value()) << *got;
      EXPECT_NE(got.error().message().find(r.error_has), std::string::npos) << got.error();
    } else {
      ASSERT_TRUE(got.has_value()) << got.error();
      EXPECT_EQ(*got, r.want);
    }
  }
}

// Hello.node with --insecure, and the sensor's own name: the same check, a sentence saying
// where the name came from.
TEST(NodeNameTest, CheckNodeNameFromNamesTheSource) {
  EXPECT_TRUE(CheckNodeNameFrom("Hello.node", "node-1").has_value());
  auto bad = CheckNodeNameFrom("Hello.node", "a\x1b[2J");
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().message(),
            "Hello.node \"a\x1b[2J\" contains a control character: not a node name");
  auto empty = CheckNodeNameFrom("--node", "");
  ASSERT_FALSE(empty.has_value());
  EXPECT_EQ(empty.error().message(), "--node \"\" is empty: not a node name");
  auto longer = CheckNodeNameFrom("host name", std::string(300, 'y'));
  ASSERT_FALSE(longer.has_value());
  EXPECT_EQ(longer.error().message(), "host name \"" + std::string(64, 'y') +
                                          "...\" is longer than 253 bytes: not a node name");
}

}  // namespace
}  // namespace driftwatch
