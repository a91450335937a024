// docker_client: a small client of the Docker Engine API (HTTP/1.1 over the engine's unix
// socket, JSON bodies) for the facts CRI gives on Kubernetes nodes: a container's name,
// image, labels, flags, start time and overlay layers, and the engine's container events.
// Plain Docker hosts have no CRI socket; Podman's Docker-compatible socket answers the same
// calls.
//
// Thread-safety: a DockerClient is immutable after Connect() and every method is const; each
// call opens its own connection, so one client may be used from several threads at once. A
// DockerEventStream belongs to one thread.
//
// Costs and bounds: each call is one connection and one request; connect, write and read
// share the deadline given to Connect(). Responses are read up to a size cap (16 MiB for
// lists, 4 MiB for one object, 64 KiB of headers): a broken or hostile engine cannot make
// the caller allocate without bound. JSON is parsed without exceptions; fields of the wrong
// type are left empty, never trusted.
//
// API version: Connect() asks GET /version and talks the lower of the engine's ApiVersion
// and kMaxApiVersion (1.41, Docker 20.10), refusing engines older than kMinApiVersion (1.24,
// Docker 1.12), as the docker CLI negotiates.
//
// Errors are Results (lib/base/result.h) whose message names the call, the endpoint and what
// failed, e.g. "Docker GET /v1.41/containers/abc/json on /run/docker.sock: HTTP 404: No such
// container: abc"; codes: kNotFound (HTTP 404), kUnavailable (no socket, refused, timeout,
// HTTP 5xx), kInvalidInput (other HTTP errors, a response over its cap or not JSON).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "lib/base/result.h"
#include "lib/event/image_ref.h"

namespace driftwatch {

inline constexpr std::string_view kDockerMinApiVersion = "1.24";
inline constexpr std::string_view kDockerMaxApiVersion = "1.41";

using DockerLabels = std::map<std::string, std::string>;

struct DockerVersion {
  std::string version;          // "20.10.24+dfsg1"
  std::string api_version;      // the engine's newest: "1.41"
  std::string min_api_version;  // the engine's oldest: "1.12"
  std::string engine;           // "docker", or "podman" (its compat API names itself so)
};

// A mount as inspect reports it (Mounts[]).
struct DockerMount {
  std::string type;         // "bind", "volume", "tmpfs"
  std::string source;       // host path ("" for tmpfs)
  std::string destination;  // path in the container
  bool read_write = true;   // RW
  std::string propagation;  // "rprivate", "rslave", ... ("" for volumes)
};

struct DockerContainer {
  std::string id;        // 64 hex digits
  std::string name;      // without Docker's leading '/'
  std::string image;     // Config.Image: as the user named it ("localhost/webapp:3", or an id)
  std::string image_id;  // Image: "sha256:<config digest>"
  std::string state;     // State.Status: "created", "running", "exited", ...
  DockerLabels labels;   // Config.Labels
  bool privileged = false;        // HostConfig.Privileged
  bool read_only_rootfs = false;  // HostConfig.ReadonlyRootfs
  int32_t pid = 0;                // State.Pid: the init's host PID, 0 when not running
  int64_t created_at_ns = 0;      // Created
  int64_t started_at_ns = 0;      // State.StartedAt; 0 before the first start
  std::string cgroup_parent;      // HostConfig.CgroupParent ("" = the engine's default)
  std::string graph_driver;       // GraphDriver.Name: "overlay2"
  std::string upper_dir;          // GraphDriver.Data.UpperDir (overlay2)
  std::string merged_dir;         // GraphDriver.Data.MergedDir: the root's mount point
  std::vector<std::string> lower_dirs;  // GraphDriver.Data.LowerDir, top first
  std::vector<DockerMount> mounts;
};

struct DockerImage {
  std::string id;                         // "sha256:..."
  std::vector<std::string> repo_tags;     // "localhost/webapp:3"
  std::vector<std::string> repo_digests;  // "docker.io/library/x@sha256:..."; none when loaded
};

// One object of the /events stream (type container only is asked for).
struct DockerEvent {
  std::string type;    // "container"
  std::string action;  // "create", "start", "die", "destroy", "rename", "exec_start: sh", ...
  std::string id;      // Actor.ID
  std::string name;    // Actor.Attributes.name
  std::string image;   // Actor.Attributes.image
  int64_t time_ns = 0;  // timeNano
};

// Caps, exposed for tests.
inline constexpr size_t kDockerMaxListBytes = 16u << 20;
inline constexpr size_t kDockerMaxObjectBytes = 4u << 20;
inline constexpr size_t kDockerMaxHeaderBytes = 64u << 10;
inline constexpr size_t kDockerMaxEventBytes = 1u << 20;

class DockerEventStream;

class DockerClient {
 public:
  // `endpoint`: a unix socket path or "unix:///path". Asks GET /version within `timeout`
  // and negotiates the API version; `timeout` is then the deadline of every later call.
  static Result<std::unique_ptr<DockerClient>> Connect(const std::string& endpoint,
                                                       std::chrono::milliseconds timeout);
  // Where the engine listens by default.
  static constexpr const char* kDefaultEndpoint = "/var/run/docker.sock";

  ~DockerClient();
  DockerClient(const DockerClient&) = delete;
  DockerClient& operator=(const DockerClient&) = delete;

  const std::string& endpoint() const;  // the socket path
  const DockerVersion& version() const;  // from Connect (no round trip)
  const std::string& api_version() const;  // the negotiated one: "1.41"

  Result<DockerVersion> Version() const;
  // GET /containers/json: what the list gives (id, name, image, image_id, state, labels,
  // created_at_ns); `all`: stopped and created containers too.
  Result<std::vector<DockerContainer>> ListContainers(bool all) const;
  // GET /containers/{id}/json: everything in DockerContainer. Unknown: kNotFound.
  Result<DockerContainer> InspectContainer(const std::string& id) const;
  // GET /images/{id}/json. Unknown: kNotFound.
  Result<DockerImage> InspectImage(const std::string& id) const;
  // GET /events?filters={"type":["container"]} on a connection of its own, open until the
  // stream is destroyed. Only the connection and the response header are bounded by the
  // deadline; events then come when they come (DockerEventStream::Next).
  Result<std::unique_ptr<DockerEventStream>> Events() const;

  struct Impl;

 private:
  explicit DockerClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<const Impl> impl_;
};

// The /events response body, read as it arrives (chunked), split into events.
class DockerEventStream {
 public:
  ~DockerEventStream();
  // The next event, waiting up to `wait`: nullopt when none came in time (call again). An
  // error ends the stream (the engine closed it, sent an object over kDockerMaxEventBytes or
  // not JSON): open a new one.
  Result<std::optional<DockerEvent>> Next(std::chrono::milliseconds wait);

  struct Impl;
  explicit DockerEventStream(std::unique_ptr<Impl> impl);

 private:
  std::unique_ptr<Impl> impl_;
};

// ---- Pure parts (unit-tested) ----

// Splits a byte stream of JSON values written one after another (whitespace between them or
// not) into whole values: braces and brackets counted outside strings, escapes respected.
// A value longer than `max_bytes` is an error, and so is a byte that starts no object or
// array; after an error the splitter stays failed.
class JsonStreamSplitter {
 public:
  explicit JsonStreamSplitter(size_t max_bytes = kDockerMaxEventBytes) : max_bytes_(max_bytes) {}
  // Takes the next bytes; appends the values they complete to `out`.
  Result<void> Feed(std::string_view bytes, std::vector<std::string>& out);
  size_t buffered() const { return cur_.size(); }

 private:
  size_t max_bytes_;
  std::string cur_;  // the value being read
  int depth_ = 0;
  bool in_string_ = false;
  bool escape_ = false;
  std::optional<Error> failed_;
};

// "1.41" < "1.9"? No: numeric per component. Negative, zero, positive as a <=> b.
int CompareApiVersions(std::string_view a, std::string_view b);
// The version to talk: min(engine's, kDockerMaxApiVersion); an error naming both when the
// engine's is below kDockerMinApiVersion or is not a version.
Result<std::string> NegotiateApiVersion(std::string_view engine_api_version);

// RFC 3339 with up to nanoseconds ("2026-12-05T18:35:18.123456789Z", "+01:00" offsets) to
// Unix ns; Go's zero time ("0001-01-01T00:00:00Z") and anything unreadable give 0.
int64_t ParseDockerTime(std::string_view text);

Result<DockerVersion> ParseDockerVersion(std::string_view json);
Result<DockerContainer> ParseContainerInspect(std::string_view json);
Result<std::vector<DockerContainer>> ParseContainerList(std::string_view json);
Result<DockerImage> ParseImageInspect(std::string_view json);
// One object of the events stream; an object that is no event (no Type/Action) is an error.
Result<DockerEvent> ParseDockerEvent(std::string_view json);

// The image a container runs, in Falco's parts: Config.Image split (lib/event/image_ref.h);
// when the container was run by image id, the image's first RepoTag instead; the digest from
// the reference, else the RepoDigest of the same repository. `image` may be null (not
// inspected: no digest, and an id stays an id).
ImageName DockerImageName(const DockerContainer& c, const DockerImage* image);

}  // namespace driftwatch
