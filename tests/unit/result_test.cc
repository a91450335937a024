#include "lib/base/result.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <sstream>
#include <vector>

namespace driftwatch {
namespace {

Result<int> Half(int n) {
  if (n % 2 != 0) return std::unexpected(Error::InvalidInput(std::to_string(n) + " is odd"));
  return n / 2;
}

TEST(ResultTest, CallersBranchOnTheCodeAndReadTheMessage) {
  auto ok = Half(4);
  ASSERT_TRUE(ok.has_value());
  EXPECT_EQ(*ok, 2);
  auto bad = Half(3);
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code(), ErrorCode::kInvalidInput);
  EXPECT_EQ(bad.error().message(), "3 is odd");
  std::ostringstream os;
  os << bad.error();
  EXPECT_EQ(os.str(), "3 is odd");
}

TEST(ResultTest, PrefixKeepsTheCode) {
  Error e = Error::NotFound("no such container");
  Error p = e.Prefix("inventory of abc");
  EXPECT_EQ(p.code(), ErrorCode::kNotFound);
  EXPECT_EQ(p.message(), "inventory of abc: no such container");
  EXPECT_EQ(e.message(), "no such container");  // the lvalue is left as it was
  EXPECT_EQ(std::move(e).Prefix("x").message(), "x: no such container");
}

TEST(ResultTest, ErrnoGivesItsCode) {
  struct Row {
    int err;
    ErrorCode code;
  };
  for (const Row& r : std::vector<Row>{{ENOENT, ErrorCode::kNotFound},
                                       {ESRCH, ErrorCode::kNotFound},
                                       {EAGAIN, ErrorCode::kUnavailable},
                                       {ECONNREFUSED, ErrorCode::kUnavailable},
                                       {EINVAL, ErrorCode::kInvalidInput},
                                       {ENOSPC, ErrorCode::kIo},
                                       {EIO, ErrorCode::kIo}}) {
    Error e = Error::FromErrno(r.err, "open /x");
    EXPECT_EQ(e.code(), r.code) << r.err;
    EXPECT_EQ(e.message(), std::string("open /x: ") + std::strerror(r.err));
  }
  EXPECT_EQ(ErrorCodeName(ErrorCode::kCorruption), "corruption");
}

TEST(ResultTest, VoidResults) {
  auto f = [](bool fail) -> Result<void> {
    if (fail) return std::unexpected(Error::Unavailable("collector down"));
    return {};
  };
  EXPECT_TRUE(f(false).has_value());
  EXPECT_EQ(f(true).error().code(), ErrorCode::kUnavailable);
}

}  // namespace
}  // namespace driftwatch
