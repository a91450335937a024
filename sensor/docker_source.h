// docker_source: what the Docker engine (or Podman's Docker-compatible API) says of its
// containers, for the container registry: name, image (name, tag, id, repo digest), labels,
// flags, start time, overlay layers and mounts. Plain Docker hosts have no CRI socket; this
// is their CRI.
//
// Kept current by a thread of its own: the engine's event stream (container create, start,
// rename, update and destroy (Podman: remove); each inspected as it comes) and a full listing every `resync`
// and after each reconnect. The registry asks Lookup() for a container its cgroup watch
// found: the cache answers, or (a miss: a container the event thread has not inspected yet)
// one inspect on the caller's thread, bounded by the client's deadline. Nothing here runs on
// the event path; the registry's thread is the only caller.
//
// An engine that is down or hung when the registry asks leaves the container without its
// facts. Such ids are asked again by the event thread (backoff 1 s doubling to 30 s, at most
// kWantedAttempts times, at most kWantedMax ids; a listing that does not name one settles it:
// not the engine's), and whatever the event thread learns (an event's inspect, a listing,
// a retry: a rename too) goes to the listener, so the registry updates what it reported.
//
// Thread-safety: Lookup(), endpoint(), Describe(), SetListener() from any thread; the event
// thread is the source's own (Start/Stop from one thread).
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>

#include "driftwatch/v1/event.pb.h"
#include "lib/base/mutex.h"
#include "lib/base/result.h"
#include "lib/k8s/docker_client.h"

namespace driftwatch::sensor {

class DockerSource {
 public:
  struct Options {
    std::string endpoint = DockerClient::kDefaultEndpoint;
    std::chrono::milliseconds timeout{2000};  // every call's deadline
    std::chrono::milliseconds resync{5000};   // full listing period
  };
  // Ids of containers the event thread has (new) facts of: the registry applies them.
  // Called on the event thread with listener_mu_ held: it must return at once (queue the id,
  // wake a thread) and not call into the source.
  using Listener = std::function<void(const std::string& id)>;
  // Ids waiting to be asked again at most, and how often each is asked.
  static constexpr size_t kWantedMax = 1024;
  static constexpr int kWantedAttempts = 12;

  // A container as the engine describes it, its image's names resolved.
  struct Facts {
    DockerContainer container;
    ImageName image;
    std::string engine;  // "docker" or "podman"
  };

  // Connects (GET /version and API negotiation). An engine that does not answer yet (the
  // sensor started before it) is not an error: the thread connects once it does, and the
  // error is logged. The thread starts with Start().
  static std::unique_ptr<DockerSource> Open(Options options);
  ~DockerSource();  // Stop()
  DockerSource(const DockerSource&) = delete;
  DockerSource& operator=(const DockerSource&) = delete;

  void Start();
  void Stop();  // returns within about a deadline (an inspect in flight)
  // Replaces the listener (null: none); returns once no call of the old one is running.
  void SetListener(Listener listener);

  const std::string& endpoint() const { return options_.endpoint; }
  // "docker 20.10.24+dfsg1 (API 1.41)", or "not connected".
  std::string Describe();

  // The engine's facts of a container (full id), or nullopt when the engine does not know
  // it or does not answer (then Lookup asks it again only after 5 s: a hung engine costs
  // the caller one deadline in 5 s at most; the event thread asks again for this id and
  // tells the listener once the engine answers).
  std::optional<Facts> Lookup(const std::string& id);
  // Ids waiting to be asked again (for /status and tests).
  size_t wanted() const;

 private:
  explicit DockerSource(Options options) : options_(std::move(options)) {}
  // The client, connecting first if need be (one caller at a time, at most once a second,
  // outside mu_); null while the engine does not answer.
  std::shared_ptr<const DockerClient> Client();
  void Run();
  void Relist();
  // Asks the engine again for the wanted ids that are due; stops at the first that the
  // engine does not answer (it is down: the others wait their next turn).
  void RetryWanted();
  // Queues an id the engine did not answer for (not when kWantedMax are queued).
  void Want(const std::string& id) DW_REQUIRES(mu_);
  // Inspects the container (and its image, cached by id) and caches the facts; `notify`:
  // tells the listener (the event thread's fetches; Lookup's caller has the facts).
  Result<Facts> Fetch(const std::string& id, bool notify);
  void Notify(const std::string& id);

  struct Wanted {
    std::chrono::steady_clock::time_point since;  // first asked
    std::chrono::steady_clock::time_point next;   // asked again then
    int attempts = 0;
  };

  Options options_;
  std::thread thread_;
  std::atomic<bool> stop_{false};

  mutable Mutex mu_;
  // Thread-safe once made (every call is its own connection); replaced never, made once.
  std::shared_ptr<const DockerClient> client_ DW_GUARDED_BY(mu_);
  std::chrono::steady_clock::time_point next_connect_ DW_GUARDED_BY(mu_);
  bool connecting_ DW_GUARDED_BY(mu_) = false;
  std::string connect_error_ DW_GUARDED_BY(mu_);  // the last one logged
  std::unordered_map<std::string, Facts> cache_ DW_GUARDED_BY(mu_);
  std::unordered_map<std::string, DockerImage> images_ DW_GUARDED_BY(mu_);  // by image id
  // Ids the engine said it does not know (CRI pods' containers, ctr's): not asked again
  // until the next listing.
  std::set<std::string> unknown_ DW_GUARDED_BY(mu_);
  std::chrono::steady_clock::time_point down_until_ DW_GUARDED_BY(mu_);
  std::unordered_map<std::string, Wanted> wanted_ DW_GUARDED_BY(mu_);

  // Never held with mu_: Notify calls the listener holding this lock only.
  Mutex listener_mu_;
  Listener listener_ DW_GUARDED_BY(listener_mu_);
};

// ContainerInfo from the engine's facts: runtime (the engine), name, image and its parts,
// image_ref (the image id: what an approved-image list of ids matches), labels, flags, start
// time, mounts; the overlay's upperdir and lowerdirs from GraphDriver when they are not
// known yet (the container's mountinfo, read once its init runs, stays the authority).
// Source "docker" (or "podman").
void ApplyDockerFacts(const DockerSource::Facts& facts, v1::ContainerInfo* info);

}  // namespace driftwatch::sensor
