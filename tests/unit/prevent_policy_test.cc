// PreventPolicy (lib/node/prevent_policy.h): the drift --prevent drift lets run. Entries AND
// their selectors, the policy ORs its entries; bad files name file, line and column.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "lib/event/file_digest.h"
#include "lib/node/prevent_policy.h"

namespace driftwatch {
namespace {

v1::ContainerInfo Pod(const std::string& ns, const std::string& pod,
                      std::vector<std::pair<std::string, std::string>> labels = {}) {
  v1::ContainerInfo c;
  c.set_pod_namespace(ns);
  c.set_pod_name(pod);
  for (auto& [k, v] : labels) {
    v1::Label* l = c.add_labels();
    l->set_key(k);
    l->set_value(v);
  }
  return c;
}

PreventPolicy Parse(std::string_view text) {
  auto p = PreventPolicy::Parse(text, "policy.yaml");
  EXPECT_TRUE(p.has_value()) << (p ? "" : p.error().message());
  return p ? std::move(*p) : PreventPolicy();
}

TEST(PreventPolicy, EntriesAndSelectors) {
  const PreventPolicy p = Parse(R"(
allow:
  - name: ci
    namespaces: [ci, "build-*"]
    pods: ["runner-*"]
    paths: ["/workspace/*"]
  - name: tools
    labels: {app: tools, tier: ops}
  - name: hashed
    sha256: [9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08]
)");
  EXPECT_EQ(p.size(), 3u);
  EXPECT_TRUE(p.wants_container());
  const v1::ContainerInfo runner = Pod("build-7", "runner-x");
  EXPECT_EQ(p.Allows({"/workspace/go", &runner, {}}), "ci");
  EXPECT_EQ(p.Allows({"/workspace/sub/go", &runner, {}}), std::nullopt);  // * stays in a dir
  const v1::ContainerInfo other = Pod("prod", "runner-x");
  EXPECT_EQ(p.Allows({"/workspace/go", &other, {}}), std::nullopt);
  EXPECT_EQ(p.Allows({"/workspace/go", nullptr, {}}), std::nullopt);  // pod unknown
  const v1::ContainerInfo tools = Pod("x", "y", {{"app", "tools"}, {"tier", "ops"}});
  EXPECT_EQ(p.Allows({"/anything", &tools, {}}), "tools");
  const v1::ContainerInfo half = Pod("x", "y", {{"app", "tools"}});
  EXPECT_EQ(p.Allows({"/anything", &half, {}}), std::nullopt);
  // sha256 of "test"; the hash is computed only when an entry asks, once.
  int calls = 0;
  auto hash = [&]() -> std::optional<std::string> {
    ++calls;
    std::string raw;
    const std::string hex = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    for (size_t i = 0; i < hex.size(); i += 2) raw.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
    return raw;
  };
  EXPECT_EQ(p.Allows({"/bin/x", &half, hash}), "hashed");
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(p.Allows({"/bin/x", &half, [] { return std::optional<std::string>(); }}), std::nullopt);
}

TEST(PreventPolicy, AllowPathsFlag) {
  PreventPolicy p;
  EXPECT_TRUE(p.empty());
  p.AddPaths({"/opt/tools/*"});
  EXPECT_FALSE(p.wants_container());
  EXPECT_EQ(p.Allows({"/opt/tools/a", nullptr, {}}), "--prevent-allow");
  EXPECT_EQ(p.Allows({"/opt/other", nullptr, {}}), std::nullopt);
}

TEST(PreventPolicy, EmptyFileAllowsNothing) {
  EXPECT_TRUE(Parse("").empty());
  EXPECT_TRUE(Parse("allow:\n").empty());
}

TEST(PreventPolicy, BadFilesNameTheirPlace) {
  struct Case {
    const char* text;
    const char* error;
  } cases[] = {
      {"allow: [", "policy.yaml:1:"},
      {"deny: []\n", "policy.yaml:1:1: unknown key deny"},
      {"allow: x\n", "allow: a list of entries"},
      {"allow:\n  - name: open\n", "policy.yaml:2:5: an entry needs at least one of"},
      {"allow:\n  - paths: [tmp/x]\n", "a path inside the container starts with /"},
      {"allow:\n  - sha256: [abc]\n", "sha256: abc: 64 hex digits"},
      {"allow:\n  - pods: runner\n", "pods: a list of strings"},
      {"allow:\n  - labels: [a]\n", "labels: a map of key to value"},
      {"allow:\n  - image: x\n", "unknown key image"},
  };
  for (const Case& c : cases) {
    auto p = PreventPolicy::Parse(c.text, "policy.yaml");
    ASSERT_FALSE(p.has_value()) << c.text;
    EXPECT_EQ(p.error().code(), ErrorCode::kInvalidInput);
    EXPECT_NE(p.error().message().find(c.error), std::string::npos)
        << c.text << " -> " << p.error().message();
  }
  // What yaml-cpp 0.7 chokes on (a stuck parser, deep nesting) ends in an error or an empty
  // policy, never a hang or a crash: a pushed policy is parsed on the sensor's io thread.
  for (const std::string& text : {std::string(","), std::string(100000, '[')}) {
    auto p = PreventPolicy::Parse(text, "policy.yaml");
    EXPECT_TRUE(!p.has_value() || p->empty()) << text.substr(0, 10);
  }
  auto missing = PreventPolicy::Load("/nonexistent/policy.yaml");
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code(), ErrorCode::kNotFound);
}

// The sensor's own entries first, then the fleet's (pushed by the collector), whose
// unnamed entries say where they came from.
TEST(PreventPolicy, AddKeepsOrderAndNamesTheFleet) {
  PreventPolicy local = Parse("allow:\n  - name: mine\n    paths: [/opt/a/*]\n");
  const PreventPolicy fleet =
      Parse("allow:\n  - paths: [/opt/b/*]\n  - name: ci\n    namespaces: [ci]\n");
  EXPECT_FALSE(local.wants_container());
  local.Add(fleet, "fleet policy");
  EXPECT_EQ(local.size(), 3u);
  EXPECT_TRUE(local.wants_container());
  EXPECT_EQ(local.Allows({"/opt/a/x", nullptr, {}}), "mine");
  EXPECT_EQ(local.Allows({"/opt/b/x", nullptr, {}}), "fleet policy");
  const v1::ContainerInfo ci = Pod("ci", "runner");
  EXPECT_EQ(local.Allows({"/anything", &ci, {}}), "ci");
  EXPECT_EQ(local.Allows({"/opt/c/x", nullptr, {}}), std::nullopt);
}

TEST(PreventPolicy, ReadCheckedBoundsAndChecksTheFile) {
  const std::string dir = ::testing::TempDir();
  const std::string good = dir + "/prevent_policy_good.yaml";
  const std::string text = "allow:\n  - paths: [/opt/*]\n";
  { std::ofstream(good, std::ios::binary) << text; }
  auto r = PreventPolicy::ReadChecked(good);
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(*r, text);

  const std::string bad = dir + "/prevent_policy_bad.yaml";
  { std::ofstream(bad, std::ios::binary) << "allow:\n  - bogus: 1\n"; }
  r = PreventPolicy::ReadChecked(bad);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message().find(bad + ":2:5: unknown key bogus"), std::string::npos)
      << r.error().message();

  // A comment past the bound: the text is refused whole, not cut and parsed.
  const std::string big = dir + "/prevent_policy_big.yaml";
  {
    std::ofstream f(big, std::ios::binary);
    f << text << "# " << std::string(PreventPolicy::kMaxTextBytes, 'x') << "\n";
  }
  r = PreventPolicy::ReadChecked(big);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message().find("longer than 1048576 bytes"), std::string::npos)
      << r.error().message();
  EXPECT_FALSE(PreventPolicy::Load(big).has_value());
  std::remove(good.c_str());
  std::remove(bad.c_str());
  std::remove(big.c_str());
}

void AddLabel(google::protobuf::RepeatedPtrField<v1::Label>* to, const std::string& k,
              const std::string& v) {
  v1::Label* l = to->Add();
  l->set_key(k);
  l->set_value(v);
}

// Issue 19: the selectors the collector's drift exceptions need (pod labels, annotations,
// images, a pod's own list of allowed paths) and the rules an entry covers.
TEST(PreventPolicy, PodLabelsAnnotationsImagesAndRules) {
  const PreventPolicy p = Parse(R"(
allow:
  - {name: builders, labels: {app.kubernetes.io/name: builder}}
  - {name: team, annotations: {driftwatch.io/team: ci}}
  - {name: golang, images: ["docker.io/library/golang:*"]}
  - {name: by-id, images: ["sha256:abc*"]}
  - {name: declared, path_annotation: driftwatch.io/allow-drift}
  - {name: pkg, namespaces: [infra], rules: [Package Manager Execution in Container]}
)");
  v1::ContainerInfo c = Pod("prod", "web-1");
  EXPECT_EQ(p.Allows({"/x", &c, {}}), std::nullopt);
  AddLabel(c.mutable_pod_labels(), "app.kubernetes.io/name", "builder");
  EXPECT_EQ(p.Allows({"/x", &c, {}}), "builders");  // a pod label

  v1::ContainerInfo t = Pod("prod", "web-1");
  AddLabel(t.mutable_pod_annotations(), "driftwatch.io/team", "ci");
  EXPECT_EQ(p.Allows({"/x", &t, {}}), "team");

  v1::ContainerInfo g = Pod("prod", "web-1");
  g.set_image("docker.io/library/golang:1.22");
  EXPECT_EQ(p.Allows({"/x", &g, {}}), "golang");
  v1::ContainerInfo r = Pod("prod", "web-1");
  r.set_image_repository("docker.io/library/golang");
  r.set_image_tag("1.21");
  EXPECT_EQ(p.Allows({"/x", &r, {}}), "golang");  // repository:tag
  v1::ContainerInfo id = Pod("prod", "web-1");
  id.set_image("localhost/app:1");
  id.set_image_ref("sha256:abcdef");
  EXPECT_EQ(p.Allows({"/x", &id, {}}), "by-id");  // the image id

  // The pod lists its own allowed paths; others stay drift.
  v1::ContainerInfo d = Pod("prod", "job-1");
  AddLabel(d.mutable_pod_annotations(), "driftwatch.io/allow-drift", "/workspace/bin/*, /tmp/helper");
  EXPECT_EQ(p.Allows({"/workspace/bin/app", &d, {}}), "declared");
  EXPECT_EQ(p.Allows({"/tmp/helper", &d, {}}), "declared");
  EXPECT_EQ(p.Allows({"/tmp/other", &d, {}}), std::nullopt);
  EXPECT_EQ(p.Allows({"/workspace/bin/sub/app", &d, {}}), std::nullopt);
  // A pod's glob with more wildcards than fnmatch can try in bounded time allows nothing
  // (and returns at once against a long name that would take it ages to refuse).
  v1::ContainerInfo w = Pod("prod", "job-2");
  AddLabel(w.mutable_pod_annotations(), "driftwatch.io/allow-drift", "/*a*a*a*a*a*a*a*a*a*a*b");
  std::string long_name(251, 'a');
  long_name[0] = '/';
  EXPECT_EQ(p.Allows({long_name, &w, {}}), std::nullopt);
  v1::ContainerInfo w4 = Pod("prod", "job-3");
  AddLabel(w4.mutable_pod_annotations(), "driftwatch.io/allow-drift", "/x,/t*/*el*er");
  EXPECT_EQ(p.Allows({"/tmp/helper", &w4, {}}), "declared");  // 3 wildcards: fine

  // The collector says which rule matched: an entry covers the rules tagged drift unless it
  // names rules (or tags); the sensor (no rule) ignores `rules`.
  const std::vector<std::string> drift = {"container", "drift"};
  const std::vector<std::string> posture = {"container", "posture"};
  const PreventPolicy::Exec x{"/x", &c, {}};
  PreventPolicy::RuleMatch m{"Drop and execute new binary in container", &drift, {}};
  EXPECT_EQ(p.Allows(x, &m), "builders");
  m.tags = &posture;
  EXPECT_EQ(p.Allows(x, &m), std::nullopt);
  const std::vector<std::string> prevented = {"container", "drift", "prevention"};
  m = {"Drift Prevented", &prevented, {}};
  EXPECT_EQ(p.Allows(x, &m), std::nullopt);  // a denial is said, whatever the policy is now
  v1::ContainerInfo infra = Pod("infra", "setup");
  const PreventPolicy::Exec pm{"/usr/bin/apt", &infra, {}};
  EXPECT_EQ(p.Allows(pm), "pkg");
  m = {"Package Manager Execution in Container", &drift, {}};
  EXPECT_EQ(p.Allows(pm, &m), "pkg");
  m.rule = "Container Shell Spawned";
  EXPECT_EQ(p.Allows(pm, &m), std::nullopt);

  // A known sha256 is used as it is: no hashing.
  const PreventPolicy h = Parse("allow: [{sha256: [" + std::string(64, 'a') + "]}]\n");
  PreventPolicy::Exec hx{"/x", nullptr, []() -> std::optional<std::string> {
                           ADD_FAILURE() << "hashed";
                           return std::nullopt;
                         }};
  const std::string known(64, 'a');
  const PreventPolicy::RuleMatch hm{"Drop and execute new binary in container", &drift, known};
  EXPECT_EQ(h.Allows(hx, &hm), "");
}

TEST(PreventPolicy, BadSelectorsSayWhere) {
  auto err = [](std::string_view text) {
    auto p = PreventPolicy::Parse(text, "p.yaml");
    return p ? std::string("parsed") : p.error().message();
  };
  EXPECT_NE(err("allow: [{annotations: {team: ci}}]").find(
                "p.yaml:1:24: annotations: team: only keys under driftwatch.io/"),
            std::string::npos)
      << err("allow: [{annotations: {team: ci}}]");
  EXPECT_NE(err("allow: [{path_annotation: other/x}]").find("path_annotation: an annotation key"),
            std::string::npos);
  EXPECT_NE(err("allow: [{rules: [drift]}]").find("needs at least one of"), std::string::npos);
  EXPECT_NE(err("allow: [{labels: [a]}]").find("labels: a map of key to value"), std::string::npos);
}

}  // namespace
}  // namespace driftwatch
