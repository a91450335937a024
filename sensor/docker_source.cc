#include "sensor/docker_source.h"

#include <pthread.h>

#include <cstdlib>
#include <optional>
#include <vector>

#include "lib/base/log.h"
#include "lib/k8s/cri_client.h"
#include "sensor/container_registry.h"

namespace driftwatch::sensor {
namespace {

// How long Lookup leaves an engine that failed to answer alone (the event thread keeps
// trying): a hung engine costs the registry's thread one deadline in this long at most.
constexpr auto kDownBackoff = std::chrono::seconds(5);
// Between two attempts to connect to an engine that is not there (yet).
constexpr auto kConnectBackoff = std::chrono::seconds(1);
// How long the event thread waits for an event before it looks at stop_ and the resync clock.
constexpr auto kEventPoll = std::chrono::milliseconds(200);
// A wanted id's first retry, and the most its backoff grows to (kWantedAttempts in all: about
// four minutes before it is given up on).
constexpr auto kWantedFirst = std::chrono::seconds(1);
constexpr auto kWantedMaxBackoff = std::chrono::seconds(30);

// The engine's propagation names ("rprivate", "rslave", ...) as Falco names CRI's.
std::string Propagation(const std::string& p) {
  if (p == "rshared" || p == "shared") return "rshared";
  if (p == "rslave" || p == "slave") return "rslave";
  return "private";
}

}  // namespace

std::unique_ptr<DockerSource> DockerSource::Open(Options options) {
  std::unique_ptr<DockerSource> s(new DockerSource(std::move(options)));
  (void)s->Client();
  return s;
}

DockerSource::~DockerSource() { Stop(); }

std::shared_ptr<const DockerClient> DockerSource::Client() {
  {
    MutexLock lock(mu_);
    if (client_) return client_;
    const auto now = std::chrono::steady_clock::now();
    // One connect at a time, at most once a second; the others go on without the engine.
    if (connecting_ || now < next_connect_) return nullptr;
    connecting_ = true;
    next_connect_ = now + kConnectBackoff;
  }
  auto c = DockerClient::Connect(options_.endpoint, options_.timeout);
  MutexLock lock(mu_);
  connecting_ = false;
  if (!c) {
    if (c.error().message() != connect_error_) {
      LogWarn("%s (asked again every second)\n", c.error().c_str());
      connect_error_ = c.error().message();
    }
    return nullptr;
  }
  client_ = std::move(*c);
  const DockerVersion& v = client_->version();
  LogInfo("Docker engine on %s: %s %s, API %s\n", options_.endpoint.c_str(), v.engine.c_str(),
          v.version.c_str(), client_->api_version().c_str());
  return client_;
}

std::string DockerSource::Describe() {
  MutexLock lock(mu_);
  if (!client_) return "not connected";
  const DockerVersion& v = client_->version();
  return v.engine + " " + v.version + " (API " + client_->api_version() + ")";
}

void DockerSource::Start() {
  stop_ = false;
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "dw-docker");
    Run();
  });
}

void DockerSource::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void DockerSource::SetListener(Listener listener) {
  MutexLock lock(listener_mu_);
  listener_ = std::move(listener);
}

void DockerSource::Notify(const std::string& id) {
  MutexLock lock(listener_mu_);
  if (listener_) listener_(id);
}

size_t DockerSource::wanted() const {
  MutexLock lock(mu_);
  return wanted_.size();
}

void DockerSource::Want(const std::string& id) {
  if (wanted_.contains(id) || wanted_.size() >= kWantedMax) return;
  const auto now = std::chrono::steady_clock::now();
  wanted_[id] = Wanted{now, now + kWantedFirst, 0};
}

Result<DockerSource::Facts> DockerSource::Fetch(const std::string& id, bool notify) {
  std::shared_ptr<const DockerClient> client = Client();
  if (!client)
    return std::unexpected(Error::Unavailable("Docker engine on " + options_.endpoint + ": not connected"));
  auto c = client->InspectContainer(id);
  if (!c) return std::unexpected(c.error());
  Facts f;
  f.engine = client->version().engine;
  std::optional<DockerImage> image;
  if (!c->image_id.empty()) {
    {
      MutexLock lock(mu_);
      if (auto it = images_.find(c->image_id); it != images_.end()) image = it->second;
    }
    if (!image) {
      // Without the image the name is still known (Config.Image); only a repo digest, or
      // the name of a container run by image id, waits for the next inspect.
      if (auto img = client->InspectImage(c->image_id); img) {
        image = *img;
        MutexLock lock(mu_);
        images_[c->image_id] = *img;
      }
    }
  }
  f.image = DockerImageName(*c, image ? &*image : nullptr);
  f.container = std::move(*c);
  {
    MutexLock lock(mu_);
    cache_[f.container.id] = f;
    unknown_.erase(f.container.id);
    wanted_.erase(f.container.id);
  }
  if (notify) Notify(f.container.id);
  return f;
}

std::optional<DockerSource::Facts> DockerSource::Lookup(const std::string& id) {
  {
    MutexLock lock(mu_);
    if (auto it = cache_.find(id); it != cache_.end()) return it->second;
    if (unknown_.contains(id)) return std::nullopt;
    if (std::chrono::steady_clock::now() < down_until_) {
      Want(id);
      return std::nullopt;
    }
  }
  auto f = Fetch(id, /*notify=*/false);
  if (f) return std::move(*f);
  MutexLock lock(mu_);
  if (f.error().code() == ErrorCode::kNotFound) {
    unknown_.insert(id);
  } else {
    down_until_ = std::chrono::steady_clock::now() + kDownBackoff;
    Want(id);
  }
  return std::nullopt;
}

void DockerSource::RetryWanted() {
  const auto now = std::chrono::steady_clock::now();
  std::vector<std::string> due;
  {
    MutexLock lock(mu_);
    for (const auto& [id, w] : wanted_)
      if (w.next <= now) due.push_back(id);
  }
  for (const std::string& id : due) {
    if (stop_) return;
    auto f = Fetch(id, /*notify=*/true);  // success: out of wanted_, the listener told
    if (f) continue;
    MutexLock lock(mu_);
    auto it = wanted_.find(id);
    if (it == wanted_.end()) continue;
    if (f.error().code() == ErrorCode::kNotFound) {  // not the engine's (or gone)
      unknown_.insert(id);
      wanted_.erase(it);
      continue;
    }
    // Down still: this id backs off; the others wait for their turn (each would cost a
    // deadline now).
    Wanted& w = it->second;
    if (++w.attempts >= kWantedAttempts) {
      LogWarn("Docker engine on %s: container %.12s not described after %d attempts: %s\n",
              options_.endpoint.c_str(), id.c_str(), w.attempts, f.error().c_str());
      wanted_.erase(it);
      return;
    }
    w.next = std::chrono::steady_clock::now() +
             std::min<std::chrono::steady_clock::duration>(kWantedFirst * (1 << w.attempts),
                                                           kWantedMaxBackoff);
    return;
  }
}

void DockerSource::Relist() {
  std::shared_ptr<const DockerClient> client = Client();
  if (!client) return;
  const auto asked = std::chrono::steady_clock::now();  // before: what the listing can know
  auto list = client->ListContainers(/*all=*/true);
  if (!list) {
    LogInfo("%s\n", list.error().c_str());
    return;
  }
  std::set<std::string> listed;
  std::vector<std::string> missing;
  {
    MutexLock lock(mu_);
    for (const DockerContainer& c : *list) {
      listed.insert(c.id);
      if (!cache_.contains(c.id)) missing.push_back(c.id);
    }
    std::erase_if(cache_, [&listed](const auto& kv) { return !listed.contains(kv.first); });
    // Wanted before this listing and not in it: no container of this engine.
    std::erase_if(wanted_, [&listed, asked](const auto& kv) {
      return kv.second.since < asked && !listed.contains(kv.first);
    });
    // Ids not listed may be new ones of another runtime next time; images may be re-tagged.
    unknown_.clear();
    images_.clear();
  }
  for (const std::string& id : missing) {
    if (stop_) return;
    (void)Fetch(id, /*notify=*/true);  // gone meanwhile: the next listing settles it
  }
}

void DockerSource::Run() {
  std::unique_ptr<DockerEventStream> stream;
  auto next_resync = std::chrono::steady_clock::now();
  bool down_logged = false;
  while (!stop_) {
    if (!stream) {
      std::shared_ptr<const DockerClient> client = Client();
      auto s = client ? client->Events()
                      : Result<std::unique_ptr<DockerEventStream>>(std::unexpected(
                            Error::Unavailable("Docker engine on " + options_.endpoint + ": not connected")));
      if (!s) {
        if (!down_logged && client) LogWarn("%s (retried every second)\n", s.error().c_str());
        down_logged = true;
        for (int i = 0; i < 5 && !stop_; ++i) std::this_thread::sleep_for(kEventPoll);
        continue;
      }
      if (down_logged) LogInfo("Docker events on %s: stream open\n", endpoint().c_str());
      down_logged = false;
      stream = std::move(*s);
      // What happened while no stream was open.
      next_resync = std::chrono::steady_clock::now();
    }
    if (std::chrono::steady_clock::now() >= next_resync) {
      Relist();
      next_resync = std::chrono::steady_clock::now() + options_.resync;
    }
    RetryWanted();
    auto e = stream->Next(kEventPoll);
    if (!e) {
      LogWarn("%s\n", e.error().c_str());
      stream.reset();
      continue;
    }
    if (!*e) continue;
    const DockerEvent& ev = **e;
    if (ev.type != "container" || ev.id.empty()) continue;
    if (ev.action == "destroy" || ev.action == "remove") {  // Docker's, Podman's
      MutexLock lock(mu_);
      cache_.erase(ev.id);
    } else if (ev.action == "create" || ev.action == "start" || ev.action == "rename" ||
               ev.action == "update") {
      if (auto f = Fetch(ev.id, /*notify=*/true); !f && f.error().code() != ErrorCode::kNotFound)
        LogInfo("%s\n", f.error().c_str());
    }
  }
}

void ApplyDockerFacts(const DockerSource::Facts& facts, v1::ContainerInfo* i) {
  const DockerContainer& c = facts.container;
  i->set_source(facts.engine);
  i->set_runtime(facts.engine);
  i->set_name(c.name);
  i->set_image(c.image);
  i->set_image_ref(c.image_id);
  i->set_image_repository(facts.image.repository);
  i->set_image_tag(facts.image.tag);
  i->set_image_digest(facts.image.digest);
  i->set_privileged(c.privileged);
  i->set_read_only_rootfs(c.read_only_rootfs);
  if (c.started_at_ns > 0) i->set_start_time_ns(c.started_at_ns);
  if (c.pid > 0 && i->init_pid() == 0) i->set_init_pid(static_cast<uint32_t>(c.pid));
  i->clear_labels();
  for (const auto& [k, v] : c.labels) {  // a std::map: sorted by key
    v1::Label* l = i->add_labels();
    l->set_key(k);
    l->set_value(v);
  }
  i->clear_mounts();
  for (const DockerMount& m : c.mounts) {
    if (m.source.empty() || m.source[0] != '/') continue;  // tmpfs: nothing on the host
    v1::Mount* vm = i->add_mounts();
    // As the kernel names it (fanotify's paths): no symlink in it, no trailing slash.
    char* real = realpath(m.source.c_str(), nullptr);
    vm->set_source(real != nullptr ? real : m.source);
    free(real);
    vm->set_destination(m.destination);
    vm->set_read_only(!m.read_write);
    vm->set_propagation(Propagation(m.propagation));
  }
  // overlay2's layers, until the container's own root mount is read (it then replaces them).
  if (i->upperdir().empty() && !c.upper_dir.empty()) {
    i->set_upperdir(c.upper_dir);
    i->clear_lowerdirs();
    for (const std::string& l : c.lower_dirs) i->add_lowerdirs(l);
  }
}

// The registry's Docker hooks (declared in container_registry.h), kept here beside the source.
bool ContainerRegistry::ApplyDocker(Entry* e) {
  if (options_.docker == nullptr) return false;
  auto facts = options_.docker->Lookup(e->info.id());
  if (!facts) return false;
  // A Kubernetes pod's container run through dockerd (cri-dockerd): CRI also knows its pod.
  if (cri_ && facts->container.labels.contains(kCriLabelPodName)) return false;
  ApplyDockerFacts(*facts, &e->info);
  // The root's mount point in the host's namespace: the registry reads the overlay from it
  // before the container's init runs (as from containerd's bundle rootfs).
  if (e->root_path.empty()) e->root_path = facts->container.merged_dir;
  e->cri_done = true;
  return true;
}

void ContainerRegistry::DockerUpdated(const std::string& id) {
  {
    MutexLock lock(docker_mu_);
    docker_updates_.insert(id);
  }
  Wake();
}

void ContainerRegistry::ApplyDockerUpdates() {
  std::set<std::string> ids;
  {
    MutexLock lock(docker_mu_);
    ids.swap(docker_updates_);
  }
  for (const std::string& id : ids) {
    Entry e;
    bool pending;
    {
      ReaderMutexLock lock(mu_);
      auto it = entries_.find(id);
      if (it == entries_.end()) continue;  // no cgroup (yet): its discovery asks the cache
      e = it->second;
      pending = pending_.contains(id);
    }
    if (e.cri_found || !ApplyDocker(&e)) continue;  // CRI's container; or gone meanwhile
    // A container still being completed is reported by Complete once it is; one reported
    // already (without the engine's facts, or under its old name) is reported again now.
    const bool done = e.cri_done && e.overlay_known && e.root_read;
    if (pending && !done) {
      (void)Store(id, &e, false);
      continue;
    }
    const bool report = MarkReported(&e);
    if (!Store(id, &e, true)) continue;
    if (report || pending) Emit(e.info, report);
  }
}

}  // namespace driftwatch::sensor
