// dw-docker: the sensor's Docker Engine client (lib/k8s/docker_client) driven from the shell,
// for tests: prints what the client reads, one JSON document on stdout; errors go to stderr
// with exit 1.
//
//   dw-docker [--endpoint SOCK] [--timeout-ms MS] version
//   dw-docker ps [--all] [-q]
//   dw-docker inspect ID|NAME      the container, with its image's names resolved as the
//                                  sensor resolves them (image_repository, _tag, _digest)
//   dw-docker image ID|NAME
//   dw-docker events [--count N] [--wait-ms MS] [--ready-file FILE]
//                                  one JSON object per line per container event, with the
//                                  time it was read (received_ns); FILE is created once the
//                                  stream is open; ends after N events or MS without one
//
// inspect/image of an unknown id print {"id": ..., "not_found": true} and exit 1.
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "lib/k8s/docker_client.h"

namespace {

using driftwatch::DockerClient;
using driftwatch::DockerContainer;
using driftwatch::DockerImage;
using Json = nlohmann::json;

int Print(const Json& j, int indent = 2) {
  std::cout << j.dump(indent, ' ', false, Json::error_handler_t::replace) << std::endl;
  return 0;
}

int Fail(const std::string& msg) {
  std::cerr << "dw-docker: " << msg << "\n";
  return 1;
}

Json ToJson(const DockerContainer& c) {
  Json mounts = Json::array();
  for (const auto& m : c.mounts)
    mounts.push_back(Json{{"type", m.type},
                          {"source", m.source},
                          {"destination", m.destination},
                          {"read_write", m.read_write},
                          {"propagation", m.propagation}});
  return Json{{"id", c.id},
              {"name", c.name},
              {"image", c.image},
              {"image_id", c.image_id},
              {"state", c.state},
              {"labels", c.labels},
              {"privileged", c.privileged},
              {"read_only_rootfs", c.read_only_rootfs},
              {"pid", c.pid},
              {"created_at_ns", c.created_at_ns},
              {"started_at_ns", c.started_at_ns},
              {"cgroup_parent", c.cgroup_parent},
              {"graph_driver", c.graph_driver},
              {"upper_dir", c.upper_dir},
              {"merged_dir", c.merged_dir},
              {"lower_dirs", c.lower_dirs},
              {"mounts", mounts}};
}

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"dw-docker: what driftwatch's Docker Engine client reads (tests)"};
  app.require_subcommand(1);
  std::string endpoint = DockerClient::kDefaultEndpoint;
  int timeout_ms = 5000;
  app.add_option("--endpoint", endpoint, "the engine's socket (path or unix:///path)")
      ->capture_default_str();
  app.add_option("--timeout-ms", timeout_ms, "deadline of each call")->check(CLI::PositiveNumber);

  auto* version = app.add_subcommand("version", "engine, its version and the API version spoken");
  bool all = false, quiet = false;
  auto* ps = app.add_subcommand("ps", "list containers");
  ps->add_flag("--all", all, "stopped and created ones too");
  ps->add_flag("-q", quiet, "ids only");
  std::string id;
  auto* inspect = app.add_subcommand("inspect", "one container, its image's names resolved");
  inspect->add_option("id", id)->required();
  auto* image = app.add_subcommand("image", "one image");
  image->add_option("id", id)->required();
  int count = 0, wait_ms = 10000;
  std::string ready_file;
  auto* events = app.add_subcommand("events", "container events as they come, one per line");
  events->add_option("--count", count, "stop after this many events (0: no limit)");
  events->add_option("--wait-ms", wait_ms, "stop after this long without an event")
      ->check(CLI::PositiveNumber);
  events->add_option("--ready-file", ready_file, "created once the stream is open");

  CLI11_PARSE(app, argc, argv);

  auto c = DockerClient::Connect(endpoint, std::chrono::milliseconds(timeout_ms));
  if (!c) return Fail(c.error().message());
  const DockerClient& client = **c;

  if (*version) {
    const auto& v = client.version();
    return Print(Json{{"endpoint", client.endpoint()},
                      {"engine", v.engine},
                      {"version", v.version},
                      {"engine_api_version", v.api_version},
                      {"api_version", client.api_version()}});
  }
  if (*ps) {
    auto r = client.ListContainers(all);
    if (!r) return Fail(r.error().message());
    Json arr = Json::array();
    for (const auto& ct : *r) arr.push_back(quiet ? Json(ct.id) : ToJson(ct));
    return Print(arr);
  }
  if (*inspect) {
    auto r = client.InspectContainer(id);
    if (!r && r.error().code() == driftwatch::ErrorCode::kNotFound) {
      Print(Json{{"id", id}, {"not_found", true}});
      return Fail(r.error().message());
    }
    if (!r) return Fail(r.error().message());
    Json j = ToJson(*r);
    j["not_found"] = false;
    std::optional<DockerImage> img;
    if (!r->image_id.empty()) {
      auto ir = client.InspectImage(r->image_id);
      if (!ir) return Fail(ir.error().message());
      img = std::move(*ir);
      j["repo_digests"] = img->repo_digests;
      j["repo_tags"] = img->repo_tags;
    }
    driftwatch::ImageName n = driftwatch::DockerImageName(*r, img ? &*img : nullptr);
    j["image_repository"] = n.repository;
    j["image_tag"] = n.tag;
    j["image_digest"] = n.digest;
    return Print(j);
  }
  if (*image) {
    auto r = client.InspectImage(id);
    if (!r && r.error().code() == driftwatch::ErrorCode::kNotFound) {
      Print(Json{{"id", id}, {"not_found", true}});
      return Fail(r.error().message());
    }
    if (!r) return Fail(r.error().message());
    return Print(Json{{"id", r->id}, {"repo_tags", r->repo_tags}, {"repo_digests", r->repo_digests}});
  }
  if (*events) {
    auto s = client.Events();
    if (!s) return Fail(s.error().message());
    if (!ready_file.empty()) std::ofstream(ready_file) << "open\n";
    for (int n = 0; count == 0 || n < count; ++n) {
      auto e = (*s)->Next(std::chrono::milliseconds(wait_ms));
      if (!e) return Fail(e.error().message());
      if (!*e) return 0;  // quiet for wait_ms: done
      const auto& ev = **e;
      Print(Json{{"type", ev.type},
                 {"action", ev.action},
                 {"id", ev.id},
                 {"name", ev.name},
                 {"image", ev.image},
                 {"time_ns", ev.time_ns},
                 {"received_ns", NowNs()}},
            -1);
    }
    return 0;
  }
  return Fail("no subcommand");
}
