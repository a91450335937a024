// dw-cri: a small kubelet stand-in over the CRI socket, for tests and the demo. Runs pods
// and containers with the labels a kubelet sets and prints what the runtime reports.
// Every subcommand prints one JSON document on stdout; errors go to stderr with exit 1.
//
//   dw-cri [--endpoint SOCK] [--timeout-ms MS] version
//   dw-cri runp --name N --namespace NS --uid U [--cgroup-parent P] [--label K=V]...
//               [--annotation K=V]... [--privileged]
//   dw-cri create POD_ID [--pod-name N --pod-namespace NS --pod-uid U --pod-cgroup-parent P]
//                 --name C --image IMG [--privileged] [--read-only] [--label K=V]...
//                 [--mount HOST:CTR[:ro]]...
//                 [-- CMD ARGS...]          (pod fields not given are read from the pod)
//   dw-cri start ID | stop ID [--timeout S] | rm ID | stopp ID | rmp ID
//   dw-cri ps [--pod POD_ID] [--running] [-q] | pods [-q] | inspect [--raw] ID | inspectp [--raw] ID
//
// inspect/inspectp of an unknown id print {"id": ..., "not_found": true} and exit 1.
// Names, labels and images are the runtime's bytes; bytes that are not UTF-8 print as U+FFFD
// (this is a test tool: the sensor keeps them exact).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "lib/k8s/cri_client.h"

namespace {

using driftwatch::CriClient;
using driftwatch::CriContainer;
using driftwatch::CriPod;
using Json = nlohmann::json;

Json ToJson(const CriContainer& c) {
  Json j = {{"id", c.id},
            {"pod_sandbox_id", c.pod_sandbox_id},
            {"name", c.name},
            {"attempt", c.attempt},
            {"image", c.image},
            {"image_ref", c.image_ref},
            {"state", c.state},
            {"created_at_ns", c.created_at_ns},
            {"labels", c.labels},
            {"annotations", c.annotations}};
  return j;
}

Json StatusJson(const CriContainer& c) {
  Json j = ToJson(c);
  j["not_found"] = false;
  j["started_at_ns"] = c.started_at_ns;
  j["finished_at_ns"] = c.finished_at_ns;
  j["exit_code"] = c.exit_code;
  j["pid"] = c.pid;
  j["snapshotter"] = c.snapshotter;
  j["snapshot_key"] = c.snapshot_key;
  j["read_only_rootfs"] = c.read_only_rootfs;
  j["privileged"] = c.privileged;
  j["cgroup_path"] = c.cgroup_path;
  Json mounts = Json::array();
  for (const auto& m : c.mounts)
    mounts.push_back(Json{{"host_path", m.host_path}, {"container_path", m.container_path},
                          {"readonly", m.readonly}, {"propagation", m.propagation}});
  j["mounts"] = mounts;
  return j;
}

Json ToJson(const CriPod& p) {
  return Json{{"id", p.id},
              {"name", p.name},
              {"namespace", p.namespace_},
              {"uid", p.uid},
              {"attempt", p.attempt},
              {"state", p.state},
              {"created_at_ns", p.created_at_ns},
              {"labels", p.labels},
              {"annotations", p.annotations}};
}

Json StatusJson(const CriPod& p) {
  Json j = ToJson(p);
  j["not_found"] = false;
  j["host_network"] = p.host_network;
  j["host_pid"] = p.host_pid;
  j["ip"] = p.ip;
  j["pid"] = p.pid;
  j["cgroup_parent"] = p.cgroup_parent;
  return j;
}

int Print(const Json& j) {
  std::cout << j.dump(2, ' ', false, Json::error_handler_t::replace) << "\n";
  return 0;
}

int Fail(const std::string& msg) {
  std::cerr << "dw-cri: " << msg << "\n";
  return 1;
}

// "K=V" list to a map; false (with a message) on a malformed entry.
bool ParseLabels(const std::vector<std::string>& in, driftwatch::CriLabels& out, std::string& err) {
  for (const auto& kv : in) {
    auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) {
      err = "label '" + kv + "': want KEY=VALUE";
      return false;
    }
    out[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"dw-cri: drive a CRI runtime as a kubelet would (tests, demo)"};
  app.require_subcommand(1);
  std::string endpoint;
  int timeout_ms = 10000;
  app.add_option("--endpoint", endpoint,
                 "CRI socket (path or unix:///path); default: the first of the usual sockets "
                 "that exists");
  app.add_option("--timeout-ms", timeout_ms, "deadline of each call")->check(CLI::PositiveNumber);

  auto* version = app.add_subcommand("version", "runtime name and version");

  driftwatch::CriPodSpec pod;
  std::vector<std::string> pod_labels, pod_annotations;
  auto* runp = app.add_subcommand("runp", "run a pod sandbox (host network); prints its id");
  runp->add_option("--name", pod.name)->required();
  runp->add_option("--namespace", pod.namespace_)->required();
  runp->add_option("--uid", pod.uid)->required();
  runp->add_option("--attempt", pod.attempt);
  runp->add_option("--cgroup-parent", pod.cgroup_parent);
  runp->add_option("--label", pod_labels, "pod label KEY=VALUE (repeatable)");
  runp->add_option("--annotation", pod_annotations, "pod annotation KEY=VALUE (repeatable)");
  runp->add_flag("--privileged", pod.privileged, "allow privileged containers in the pod");
  runp->add_flag("--host-pid", pod.host_pid, "the host's PID namespace (hostPID: true)");
  runp->add_option("--log-dir", pod.log_directory, "directory of the containers' log files");

  std::string pod_id;
  driftwatch::CriPodSpec cpod;
  driftwatch::CriContainerSpec cspec;
  std::vector<std::string> ctr_labels;
  std::vector<std::string> cmd;
  auto* create = app.add_subcommand("create", "create a container in a pod; prints its id");
  create->add_option("pod_id", pod_id)->required();
  // The runtime wants the pod's config again; what is not given is read back from the pod.
  auto* o_pod_name = create->add_option("--pod-name", cpod.name);
  auto* o_pod_ns = create->add_option("--pod-namespace", cpod.namespace_);
  auto* o_pod_uid = create->add_option("--pod-uid", cpod.uid);
  auto* o_pod_attempt = create->add_option("--pod-attempt", cpod.attempt);
  auto* o_pod_cgroup = create->add_option("--pod-cgroup-parent", cpod.cgroup_parent);
  create->add_option("--pod-log-dir", cpod.log_directory, "the pod's --log-dir (the runtime takes it from this call)");
  create->add_option("--name", cspec.name)->required();
  create->add_option("--image", cspec.image)->required();
  create->add_flag("--privileged", cspec.privileged);
  create->add_flag("--read-only", cspec.read_only_rootfs);
  create->add_option("--label", ctr_labels, "container label KEY=VALUE (repeatable)");
  std::vector<std::string> ctr_mounts;
  create->add_option("--mount", ctr_mounts,
                     "bind mount HOST:CTR[:ro][:rslave|:rshared] (repeatable)");
  create->add_option("--cap-add", cspec.add_capabilities, "capability to add, e.g. SYS_ADMIN (repeatable)");
  create->add_option("--cap-drop", cspec.drop_capabilities, "capability to drop, ALL for all (repeatable)");
  create->add_flag("--no-new-privs", cspec.no_new_privs, "allowPrivilegeEscalation: false");
  create->add_option("--run-as-user", cspec.run_as_user, "runAsUser");
  std::vector<std::string> ctr_envs;
  create->add_option("--env", ctr_envs, "environment variable KEY=VALUE (repeatable)");
  create->add_option("--log-path", cspec.log_path, "the container's log file, relative to --pod-log-dir (CRI log format)");
  create->add_option("cmd", cmd, "command and arguments (after --); default: the image's");

  std::string id;
  int64_t stop_timeout = 0;
  auto* start = app.add_subcommand("start", "start a created container");
  start->add_option("id", id)->required();
  auto* stop = app.add_subcommand("stop", "stop a container");
  stop->add_option("id", id)->required();
  stop->add_option("--timeout", stop_timeout, "seconds before SIGKILL (0: at once)");
  auto* rm = app.add_subcommand("rm", "remove a container");
  rm->add_option("id", id)->required();
  auto* stopp = app.add_subcommand("stopp", "stop a pod sandbox and its containers");
  stopp->add_option("id", id)->required();
  auto* rmp = app.add_subcommand("rmp", "remove a pod sandbox");
  rmp->add_option("id", id)->required();

  driftwatch::CriContainerFilter filter;
  auto* ps = app.add_subcommand("ps", "list containers");
  ps->add_option("--pod", filter.pod_sandbox_id);
  ps->add_flag("--running", filter.running_only);
  bool quiet = false;
  ps->add_flag("-q,--quiet", quiet, "only the ids (a JSON array of strings)");
  auto* pods = app.add_subcommand("pods", "list pod sandboxes");
  pods->add_flag("-q,--quiet", quiet, "only the ids (a JSON array of strings)");
  bool raw = false;
  auto* inspect = app.add_subcommand("inspect", "verbose status of a container");
  inspect->add_option("id", id)->required();
  inspect->add_flag("--raw", raw, "print the runtime's verbose info JSON as is");
  auto* inspectp = app.add_subcommand("inspectp", "verbose status of a pod sandbox");
  inspectp->add_option("id", id)->required();
  inspectp->add_flag("--raw", raw, "print the runtime's verbose info JSON as is");

  CLI11_PARSE(app, argc, argv);

  std::unique_ptr<CriClient> client;
  if (!endpoint.empty()) {
    auto c = CriClient::Connect(endpoint, std::chrono::milliseconds(timeout_ms));
    if (!c) return Fail(c.error().message());
    client = std::move(*c);
  } else {
    std::string errors;
    for (const std::string& e : CriClient::DefaultEndpoints()) {
      auto c = CriClient::Connect(e, std::chrono::milliseconds(timeout_ms));
      if (c) {
        client = std::move(*c);
        break;
      }
      errors += "\n  " + c.error().message();
    }
    if (!client) return Fail("no CRI runtime found (use --endpoint):" + errors);
  }

  if (*version) {
    const auto& v = client->version();
    return Print(Json{{"endpoint", client->endpoint()},
                      {"version", v.version},
                      {"runtime_name", v.runtime_name},
                      {"runtime_version", v.runtime_version},
                      {"runtime_api_version", v.runtime_api_version}});
  }
  if (*runp) {
    std::string err;
    if (!ParseLabels(pod_labels, pod.labels, err)) return Fail(err);
    if (!ParseLabels(pod_annotations, pod.annotations, err)) return Fail(err);
    auto r = client->RunPodSandbox(pod);
    if (!r) return Fail(r.error().message());
    return Print(Json{{"id", *r}});
  }
  if (*create) {
    std::string err;
    if (!ParseLabels(ctr_labels, cspec.labels, err)) return Fail(err);
    for (const std::string& m : ctr_mounts) {
      driftwatch::CriMount cm;
      std::string_view v = m;
      for (const char* p : {":rslave", ":rshared"}) {
        if (v.ends_with(p)) {
          cm.propagation = p + 1;
          v.remove_suffix(std::string_view(p).size());
        }
      }
      if (v.ends_with(":ro")) {
        cm.readonly = true;
        v.remove_suffix(3);
      }
      size_t colon = v.find(':');
      if (colon == std::string_view::npos || colon == 0 || colon + 1 == v.size())
        return Fail("--mount " + m + ": want HOST:CTR[:ro]");
      cm.host_path = std::string(v.substr(0, colon));
      cm.container_path = std::string(v.substr(colon + 1));
      cspec.mounts.push_back(std::move(cm));
    }
    for (const std::string& kv : ctr_envs) {
      auto eq = kv.find('=');
      if (eq == std::string::npos || eq == 0) return Fail("--env " + kv + ": want KEY=VALUE");
      cspec.envs.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
    }
    cspec.command = cmd;
    // containerd 1.6 puts the container's cgroup under the cgroup_parent of the config sent
    // here, not the pod's stored one: fill it in as a kubelet would.
    auto status = client->PodSandboxStatus(pod_id);
    if (!status && status.error().code() == driftwatch::ErrorCode::kNotFound)
      return Fail("pod sandbox " + pod_id + " not found");
    if (!status) return Fail(status.error().message());
    if (o_pod_name->count() == 0) cpod.name = status->name;
    if (o_pod_ns->count() == 0) cpod.namespace_ = status->namespace_;
    if (o_pod_uid->count() == 0) cpod.uid = status->uid;
    if (o_pod_attempt->count() == 0) cpod.attempt = status->attempt;
    if (o_pod_cgroup->count() == 0) cpod.cgroup_parent = status->cgroup_parent;
    cpod.host_network = status->host_network;
    cpod.host_pid = status->host_pid;
    // The sandbox config sent again must allow what the container asks for (a kubelet's
    // pod is privileged when any of its containers is).
    cpod.privileged = cspec.privileged;
    auto r = client->CreateContainer(pod_id, cpod, cspec);
    if (!r) return Fail(r.error().message());
    return Print(Json{{"id", *r}});
  }
  if (*start || *stop || *rm || *stopp || *rmp) {
    driftwatch::Result<void> r;
    if (*start) r = client->StartContainer(id);
    if (*stop) r = client->StopContainer(id, stop_timeout);
    if (*rm) r = client->RemoveContainer(id);
    if (*stopp) r = client->StopPodSandbox(id);
    if (*rmp) r = client->RemovePodSandbox(id);
    if (!r) return Fail(r.error().message());
    return Print(Json{{"id", id}, {"ok", true}});
  }
  if (*ps) {
    auto r = client->ListContainers(filter);
    if (!r) return Fail(r.error().message());
    Json arr = Json::array();
    for (const auto& c : *r) arr.push_back(quiet ? Json(c.id) : ToJson(c));
    return Print(arr);
  }
  if (*pods) {
    auto r = client->ListPodSandbox();
    if (!r) return Fail(r.error().message());
    Json arr = Json::array();
    for (const auto& p : *r) arr.push_back(quiet ? Json(p.id) : ToJson(p));
    return Print(arr);
  }
  if (*inspect) {
    std::string info;
    auto r = client->ContainerStatus(id, &info);
    if (!r && r.error().code() == driftwatch::ErrorCode::kNotFound) {
      Print(Json{{"id", id}, {"not_found", true}});
      return Fail("container " + id + " not found");
    }
    if (!r) return Fail(r.error().message());
    if (raw) {
      std::cout << info << "\n";
    } else {
      Print(StatusJson(*r));
    }
    return 0;
  }
  if (*inspectp) {
    std::string info;
    auto r = client->PodSandboxStatus(id, &info);
    if (!r && r.error().code() == driftwatch::ErrorCode::kNotFound) {
      Print(Json{{"id", id}, {"not_found", true}});
      return Fail("pod sandbox " + id + " not found");
    }
    if (!r) return Fail(r.error().message());
    if (raw) {
      std::cout << info << "\n";
    } else {
      Print(StatusJson(*r));
    }
    return 0;
  }
  return Fail("no subcommand");
}
