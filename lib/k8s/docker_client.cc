#include "lib/k8s/docker_client.h"

#include <sys/stat.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cerrno>
#include <charconv>
#include <deque>
#include <nlohmann/json.hpp>
#include <utility>

#include "lib/base/asio_op.h"
#include "lib/base/terminal_text.h"
#include "lib/k8s/json_access.h"

namespace driftwatch {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using Local = asio::local::stream_protocol;
using Stream = beast::basic_stream<Local>;
using Json = nlohmann::json;

struct DockerClient::Impl {
  std::string socket_path;
  std::chrono::milliseconds timeout{0};
  DockerVersion version;
  std::string api_version;  // negotiated; "" before Connect's /version
};

struct DockerEventStream::Impl {
  // Member order is destruction order reversed: the socket (and a read pending on it) goes
  // before the io_context that would run its handler.
  asio::io_context ioc;
  Local::socket sock{ioc};
  beast::flat_buffer buf{kDockerMaxHeaderBytes + sizeof(char[16384])};
  http::response_parser<http::buffer_body> parser;
  char chunk[16384];
  bool reading = false;
  beast::error_code result;
  JsonStreamSplitter splitter{kDockerMaxEventBytes};
  std::deque<DockerEvent> ready;
  std::string where;  // "Docker GET /v1.41/events on SOCK"
};

namespace {

// ---- JSON accessors that never throw on unexpected shapes (input from the engine) ----

using json_access::Member;
using json_access::Path;

std::string Str(const Json* j) {
  return j != nullptr && j->is_string() ? j->get<std::string>() : std::string();
}

bool Bool(const Json* j) { return j != nullptr && j->is_boolean() && j->get<bool>(); }

int64_t Int(const Json* j) {
  if (j == nullptr) return 0;
  if (j->is_number_integer()) return j->get<int64_t>();
  if (j->is_number_unsigned()) {
    uint64_t v = j->get<uint64_t>();
    return v > static_cast<uint64_t>(INT64_MAX) ? 0 : static_cast<int64_t>(v);
  }
  return 0;
}

// String values only; a label of another type is dropped (Docker's are strings).
DockerLabels Labels(const Json* j) {
  DockerLabels out;
  if (j == nullptr || !j->is_object()) return out;
  for (auto it = j->begin(); it != j->end(); ++it)
    if (it.value().is_string()) out[it.key()] = it.value().get<std::string>();
  return out;
}

std::vector<std::string> Strings(const Json* j) {
  std::vector<std::string> out;
  if (j == nullptr || !j->is_array()) return out;
  for (const Json& s : *j)
    if (s.is_string()) out.push_back(s.get<std::string>());
  return out;
}

Result<Json> ParseObject(std::string_view text, const char* what) {
  Json j = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded())
    return std::unexpected(Error::InvalidInput(std::string(what) + ": not valid JSON"));
  if (!j.is_object())
    return std::unexpected(Error::InvalidInput(std::string(what) + ": not a JSON object"));
  return j;
}

std::string StripSlash(std::string name) {
  if (name.starts_with('/')) name.erase(0, 1);
  return name;
}

std::vector<std::string> SplitColons(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size() && !s.empty()) {
    size_t end = s.find(':', start);
    if (end == std::string::npos) end = s.size();
    if (end > start) out.push_back(s.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

bool IsHex(std::string_view s) {
  return !s.empty() &&
         std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// Two digits (or N) at s[pos]; -1 if not digits.
int Digits(std::string_view s, size_t pos, size_t n) {
  if (pos + n > s.size()) return -1;
  int v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return -1;
    v = v * 10 + (s[i] - '0');
  }
  return v;
}

// A message from the engine, for an error text: its JSON "message" when it has one, cut
// short and made safe to print.
std::string EngineMessage(std::string_view body) {
  std::string m(body);
  Json j = Json::parse(body.begin(), body.end(), nullptr, false);
  if (!j.is_discarded()) {
    if (std::string s = Str(Member(j, "message")); !s.empty()) m = s;
  }
  while (!m.empty() && (m.back() == '\n' || m.back() == '\r')) m.pop_back();
  if (m.size() > 300) m = m.substr(0, 300) + "...";
  return TerminalEscape(m);
}

// ---- HTTP over the unix socket ----

// What an I/O failure means to the caller, with the deadline said when it ran out.
Error IoError(const std::string& where, const char* step, const beast::error_code& ec,
              std::chrono::milliseconds timeout) {
  std::string m = where + ": " + step + ": " + ec.message();
  if (ec == beast::error::timeout)
    m += " (no answer within " + std::to_string(timeout.count()) + " ms)";
  if (ec == http::error::body_limit || ec == http::error::header_limit ||
      ec == http::error::buffer_overflow)
    return Error::InvalidInput(m + " (response over its size cap)");
  return Error::Unavailable(std::move(m));
}

http::request<http::empty_body> Request(const std::string& target) {
  http::request<http::empty_body> req{http::verb::get, target, 11};
  // Go's HTTP server refuses HTTP/1.1 without a Host; the docker CLI sends this one.
  req.set(http::field::host, "docker");
  req.set(http::field::user_agent, "driftwatch");
  return req;
}

struct Reply {
  unsigned status = 0;
  std::string body;
};

// One GET on a connection of its own, within the client's deadline, body up to `cap`.
Result<Reply> Get(const DockerClient::Impl& impl, const std::string& target, size_t cap) {
  const std::string where = "Docker GET " + target + " on " + impl.socket_path;
  asio::io_context ioc;
  Stream stream(ioc);
  // One deadline for the whole call: connect, write and read.
  stream.expires_after(impl.timeout);
  if (auto ec = RunOp(ioc, [&](auto h) { stream.async_connect(Local::endpoint(impl.socket_path), h); })) {
    Error e = IoError(where, "connect", ec, impl.timeout);
    return std::unexpected(Error(ErrorCode::kUnavailable,
                                 e.message() + " (is the Docker engine running?)"));
  }
  auto req = Request(target);
  req.set(http::field::connection, "close");
  if (auto ec = RunOp(ioc, [&](auto h) { http::async_write(stream, req, h); }))
    return std::unexpected(IoError(where, "send", ec, impl.timeout));
  beast::flat_buffer buf;
  http::response_parser<http::string_body> parser;
  parser.header_limit(kDockerMaxHeaderBytes);
  parser.body_limit(cap);
  if (auto ec = RunOp(ioc, [&](auto h) { http::async_read_header(stream, buf, parser, h); }))
    return std::unexpected(IoError(where, "receive", ec, impl.timeout));
  // Boost 1.74's asynchronous read does not hold a Content-Length to the body limit (a
  // chunked body it does): refused here before any of the body is read.
  if (auto len = parser.content_length(); len && *len > cap) {
    return std::unexpected(Error::InvalidInput(where + ": a response of " + std::to_string(*len) +
                                               " bytes (over its size cap of " +
                                               std::to_string(cap) + ")"));
  }
  if (auto ec = RunOp(ioc, [&](auto h) { http::async_read(stream, buf, parser, h); }))
    return std::unexpected(IoError(where, "receive", ec, impl.timeout));
  beast::error_code ignored;
  stream.socket().shutdown(Local::socket::shutdown_both, ignored);
  Reply r{parser.get().result_int(), std::move(parser.get().body())};
  if (r.status >= 200 && r.status < 300) return r;
  std::string m = where + ": HTTP " + std::to_string(r.status);
  if (std::string em = EngineMessage(r.body); !em.empty()) m += ": " + em;
  if (r.status == 404) return std::unexpected(Error::NotFound(std::move(m)));
  if (r.status >= 500) return std::unexpected(Error::Unavailable(std::move(m)));
  return std::unexpected(Error::InvalidInput(std::move(m)));
}

std::string Versioned(const DockerClient::Impl& impl, std::string_view path) {
  return "/v" + impl.api_version + std::string(path);
}

// Ids and names go into a URL path: anything else than what Docker ids and names are made
// of is refused rather than escaped.
Result<void> CheckRef(std::string_view what, const std::string& ref) {
  bool ok = !ref.empty() && ref.size() <= 256 &&
            std::all_of(ref.begin(), ref.end(), [](char c) {
              return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                     c == '_' || c == '.' || c == '-' || c == ':';
            });
  if (ok) return {};
  return std::unexpected(Error::InvalidInput(std::string(what) + " '" + TerminalEscape(ref) +
                                             "': not a Docker id or name"));
}

Result<DockerEvent> EventFrom(const Json& j) {
  DockerEvent e;
  e.type = Str(Member(j, "Type"));
  e.action = Str(Member(j, "Action"));
  if (e.type.empty() || e.action.empty())
    return std::unexpected(Error::InvalidInput("Docker event without Type or Action"));
  e.id = Str(Path(j, {"Actor", "ID"}));
  if (e.id.empty()) e.id = Str(Member(j, "id"));
  e.name = Str(Path(j, {"Actor", "Attributes", "name"}));
  e.image = Str(Path(j, {"Actor", "Attributes", "image"}));
  e.time_ns = Int(Member(j, "timeNano"));
  if (e.time_ns == 0) e.time_ns = Int(Member(j, "time")) * 1'000'000'000;
  return e;
}

}  // namespace

// ---- Pure parts ----

Result<void> JsonStreamSplitter::Feed(std::string_view bytes, std::vector<std::string>& out) {
  if (failed_) return std::unexpected(*failed_);
  for (char c : bytes) {
    if (depth_ == 0) {
      if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
      if (c != '{' && c != '[') {
        failed_ = Error::InvalidInput("event stream: a value that is no JSON object (byte 0x" +
                                      std::string(1, "0123456789abcdef"[(c >> 4) & 0xf]) +
                                      std::string(1, "0123456789abcdef"[c & 0xf]) + ")");
        return std::unexpected(*failed_);
      }
    }
    if (cur_.size() >= max_bytes_) {
      failed_ = Error::InvalidInput("event stream: an object over " + std::to_string(max_bytes_) +
                                    " bytes");
      return std::unexpected(*failed_);
    }
    cur_.push_back(c);
    if (in_string_) {
      if (escape_) {
        escape_ = false;
      } else if (c == '\\') {
        escape_ = true;
      } else if (c == '"') {
        in_string_ = false;
      }
      continue;
    }
    if (c == '"') {
      in_string_ = true;
    } else if (c == '{' || c == '[') {
      ++depth_;
    } else if (c == '}' || c == ']') {
      if (--depth_ == 0) {
        out.push_back(std::move(cur_));
        cur_.clear();
      }
    }
  }
  return {};
}

int CompareApiVersions(std::string_view a, std::string_view b) {
  auto next = [](std::string_view& s) {
    long v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc()) v = 0;
    s.remove_prefix(static_cast<size_t>(p - s.data()));
    if (!s.empty() && s.front() == '.') s.remove_prefix(1);
    return v;
  };
  while (!a.empty() || !b.empty()) {
    long x = a.empty() ? 0 : next(a);
    long y = b.empty() ? 0 : next(b);
    if (x != y) return x < y ? -1 : 1;
  }
  return 0;
}

Result<std::string> NegotiateApiVersion(std::string_view engine) {
  bool well_formed = !engine.empty() && engine.size() <= 16 &&
                     std::all_of(engine.begin(), engine.end(),
                                 [](char c) { return (c >= '0' && c <= '9') || c == '.'; }) &&
                     engine.front() != '.' && engine.back() != '.';
  if (!well_formed) {
    return std::unexpected(Error::InvalidInput("the engine's API version '" +
                                               TerminalEscape(engine) + "' is not a version"));
  }
  if (CompareApiVersions(engine, kDockerMinApiVersion) < 0) {
    return std::unexpected(Error::InvalidInput(
        "the engine's API version " + std::string(engine) + " is older than " +
        std::string(kDockerMinApiVersion) + " (Docker 1.12), the oldest this client speaks"));
  }
  if (CompareApiVersions(engine, kDockerMaxApiVersion) > 0) return std::string(kDockerMaxApiVersion);
  return std::string(engine);
}

int64_t ParseDockerTime(std::string_view s) {
  // YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)
  if (s.size() < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') ||
      s[13] != ':' || s[16] != ':')
    return 0;
  int y = Digits(s, 0, 4), mo = Digits(s, 5, 2), d = Digits(s, 8, 2);
  int h = Digits(s, 11, 2), mi = Digits(s, 14, 2), sec = Digits(s, 17, 2);
  if (y <= 1 || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 || mi > 59 ||
      sec < 0 || sec > 60)
    return 0;  // year 1: Go's zero time, "never"
  size_t pos = 19;
  int64_t frac_ns = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    int64_t scale = 100'000'000;
    size_t digits = 0;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      if (digits < 9) frac_ns += (s[pos] - '0') * scale;
      scale /= 10;
      ++digits;
      ++pos;
    }
    if (digits == 0) return 0;
  }
  int64_t offset_s = 0;
  if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z') && pos + 1 == s.size()) {
  } else if (pos + 6 == s.size() && (s[pos] == '+' || s[pos] == '-') && s[pos + 3] == ':') {
    int oh = Digits(s, pos + 1, 2), om = Digits(s, pos + 4, 2);
    if (oh < 0 || oh > 23 || om < 0 || om > 59) return 0;
    offset_s = (oh * 3600 + om * 60) * (s[pos] == '+' ? 1 : -1);
  } else {
    return 0;
  }
  using namespace std::chrono;
  year_month_day ymd{year{y}, month{static_cast<unsigned>(mo)}, day{static_cast<unsigned>(d)}};
  if (!ymd.ok()) return 0;
  int64_t days = sys_days{ymd}.time_since_epoch().count();
  int64_t secs = days * 86400 + h * 3600 + mi * 60 + sec - offset_s;
  if (secs < 0) return 0;
  return secs * 1'000'000'000 + frac_ns;
}

Result<DockerVersion> ParseDockerVersion(std::string_view json) {
  auto j = ParseObject(json, "Docker /version");
  if (!j) return std::unexpected(j.error());
  DockerVersion v;
  v.version = Str(Member(*j, "Version"));
  v.api_version = Str(Member(*j, "ApiVersion"));
  v.min_api_version = Str(Member(*j, "MinAPIVersion"));
  v.engine = "docker";
  auto is_podman = [](const std::string& s) { return s.find("Podman") != std::string::npos; };
  if (const Json* comps = Member(*j, "Components"); comps != nullptr && comps->is_array()) {
    for (const Json& c : *comps)
      if (is_podman(Str(Member(c, "Name")))) v.engine = "podman";
  }
  if (is_podman(Str(Path(*j, {"Platform", "Name"})))) v.engine = "podman";
  if (v.api_version.empty())
    return std::unexpected(Error::InvalidInput("Docker /version: no ApiVersion"));
  return v;
}

Result<DockerContainer> ParseContainerInspect(std::string_view json) {
  auto parsed = ParseObject(json, "container inspect");
  if (!parsed) return std::unexpected(parsed.error());
  const Json& j = *parsed;
  DockerContainer c;
  c.id = Str(Member(j, "Id"));
  if (c.id.empty()) return std::unexpected(Error::InvalidInput("container inspect: no Id"));
  c.name = StripSlash(Str(Member(j, "Name")));
  c.image = Str(Path(j, {"Config", "Image"}));
  c.image_id = Str(Member(j, "Image"));
  c.state = Str(Path(j, {"State", "Status"}));
  c.labels = Labels(Path(j, {"Config", "Labels"}));
  c.privileged = Bool(Path(j, {"HostConfig", "Privileged"}));
  c.read_only_rootfs = Bool(Path(j, {"HostConfig", "ReadonlyRootfs"}));
  int64_t pid = Int(Path(j, {"State", "Pid"}));
  c.pid = pid > 0 && pid <= INT32_MAX ? static_cast<int32_t>(pid) : 0;
  c.created_at_ns = ParseDockerTime(Str(Member(j, "Created")));
  c.started_at_ns = ParseDockerTime(Str(Path(j, {"State", "StartedAt"})));
  c.cgroup_parent = Str(Path(j, {"HostConfig", "CgroupParent"}));
  c.graph_driver = Str(Path(j, {"GraphDriver", "Name"}));
  c.upper_dir = Str(Path(j, {"GraphDriver", "Data", "UpperDir"}));
  c.merged_dir = Str(Path(j, {"GraphDriver", "Data", "MergedDir"}));
  c.lower_dirs = SplitColons(Str(Path(j, {"GraphDriver", "Data", "LowerDir"})));
  if (const Json* mounts = Member(j, "Mounts"); mounts != nullptr && mounts->is_array()) {
    for (const Json& m : *mounts) {
      if (!m.is_object()) continue;
      DockerMount& dm = c.mounts.emplace_back();
      dm.type = Str(Member(m, "Type"));
      dm.source = Str(Member(m, "Source"));
      dm.destination = Str(Member(m, "Destination"));
      const Json* rw = Member(m, "RW");
      dm.read_write = rw == nullptr || Bool(rw);
      dm.propagation = Str(Member(m, "Propagation"));
    }
  }
  return c;
}

Result<std::vector<DockerContainer>> ParseContainerList(std::string_view json) {
  Json j = Json::parse(json.begin(), json.end(), nullptr, false);
  if (j.is_discarded() || !j.is_array())
    return std::unexpected(Error::InvalidInput("container list: not a JSON array"));
  std::vector<DockerContainer> out;
  for (const Json& item : j) {
    DockerContainer c;
    c.id = Str(Member(item, "Id"));
    if (c.id.empty()) continue;
    std::vector<std::string> names = Strings(Member(item, "Names"));
    if (!names.empty()) c.name = StripSlash(names.front());
    c.image = Str(Member(item, "Image"));
    c.image_id = Str(Member(item, "ImageID"));
    c.state = Str(Member(item, "State"));
    c.labels = Labels(Member(item, "Labels"));
    int64_t created = Int(Member(item, "Created"));
    if (created > 0 && created < INT64_MAX / 1'000'000'000) c.created_at_ns = created * 1'000'000'000;
    out.push_back(std::move(c));
  }
  return out;
}

Result<DockerImage> ParseImageInspect(std::string_view json) {
  auto parsed = ParseObject(json, "image inspect");
  if (!parsed) return std::unexpected(parsed.error());
  DockerImage img;
  img.id = Str(Member(*parsed, "Id"));
  img.repo_tags = Strings(Member(*parsed, "RepoTags"));
  img.repo_digests = Strings(Member(*parsed, "RepoDigests"));
  return img;
}

Result<DockerEvent> ParseDockerEvent(std::string_view json) {
  auto parsed = ParseObject(json, "Docker event");
  if (!parsed) return std::unexpected(parsed.error());
  return EventFrom(*parsed);
}

ImageName DockerImageName(const DockerContainer& c, const DockerImage* image) {
  std::string ref = c.image;
  std::string_view id_hex = c.image_id.starts_with("sha256:")
                                ? std::string_view(c.image_id).substr(7)
                                : std::string_view(c.image_id);
  std::string_view ref_hex = ref.starts_with("sha256:") ? std::string_view(ref).substr(7) : ref;
  // Run by id ("sha256:..." or a short hex prefix of it): the image's own name, if it has one.
  bool by_id = ref.empty() || ref.starts_with("sha256:") ||
               (IsHex(ref_hex) && !id_hex.empty() && id_hex.starts_with(ref_hex));
  if (by_id) {
    if (image == nullptr || image->repo_tags.empty()) return {};
    ref = image->repo_tags.front();
  }
  ImageName n = ParseImageName(ref);
  if (n.digest.empty() && image != nullptr) {
    for (const std::string& rd : image->repo_digests) {
      size_t at = rd.find('@');
      if (at != std::string::npos && rd.compare(0, at, n.repository) == 0 &&
          at == n.repository.size()) {
        n.digest = rd.substr(at + 1);
        break;
      }
    }
  }
  return n;
}

// ---- DockerClient ----

DockerClient::DockerClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DockerClient::~DockerClient() = default;

const std::string& DockerClient::endpoint() const { return impl_->socket_path; }
const DockerVersion& DockerClient::version() const { return impl_->version; }
const std::string& DockerClient::api_version() const { return impl_->api_version; }

Result<std::unique_ptr<DockerClient>> DockerClient::Connect(const std::string& endpoint,
                                                            std::chrono::milliseconds timeout) {
  std::string path = endpoint;
  if (path.starts_with("unix://")) path.erase(0, 7);
  if (path.empty() || path[0] != '/') {
    return std::unexpected(Error::InvalidInput(
        "Docker endpoint '" + endpoint + "': want an absolute unix socket path or unix:///path"));
  }
  // sun_path holds 107 bytes and a NUL; asio would throw on a longer one.
  if (path.size() > 107) {
    return std::unexpected(
        Error::InvalidInput("Docker socket " + path + ": longer than a unix socket path can be"));
  }
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    const Error e = Error::FromErrno(errno, "Docker socket " + path);
    return std::unexpected(Error(e.code(), e.message() + " (is the Docker engine running?)"));
  }
  if (!S_ISSOCK(st.st_mode))
    return std::unexpected(Error::InvalidInput("Docker socket " + path + ": not a socket"));
  auto impl = std::make_unique<Impl>();
  impl->socket_path = path;
  impl->timeout = timeout;
  auto reply = Get(*impl, "/version", kDockerMaxObjectBytes);
  if (!reply) return std::unexpected(reply.error());
  auto v = ParseDockerVersion(reply->body);
  if (!v) return std::unexpected(std::move(v.error()).Prefix("Docker GET /version on " + path));
  auto api = NegotiateApiVersion(v->api_version);
  if (!api) return std::unexpected(std::move(api.error()).Prefix("Docker " + path));
  impl->version = std::move(*v);
  impl->api_version = std::move(*api);
  return std::unique_ptr<DockerClient>(new DockerClient(std::move(impl)));
}

Result<DockerVersion> DockerClient::Version() const {
  auto reply = Get(*impl_, "/version", kDockerMaxObjectBytes);
  if (!reply) return std::unexpected(reply.error());
  auto v = ParseDockerVersion(reply->body);
  if (!v) return std::unexpected(std::move(v.error()).Prefix("Docker GET /version on " + impl_->socket_path));
  return v;
}

Result<std::vector<DockerContainer>> DockerClient::ListContainers(bool all) const {
  const std::string target = Versioned(*impl_, all ? "/containers/json?all=1" : "/containers/json");
  auto reply = Get(*impl_, target, kDockerMaxListBytes);
  if (!reply) return std::unexpected(reply.error());
  auto list = ParseContainerList(reply->body);
  if (!list) return std::unexpected(std::move(list.error()).Prefix("Docker GET " + target + " on " + impl_->socket_path));
  return list;
}

Result<DockerContainer> DockerClient::InspectContainer(const std::string& id) const {
  if (auto ok = CheckRef("container", id); !ok) return std::unexpected(ok.error());
  const std::string target = Versioned(*impl_, "/containers/" + id + "/json");
  auto reply = Get(*impl_, target, kDockerMaxObjectBytes);
  if (!reply) return std::unexpected(reply.error());
  auto c = ParseContainerInspect(reply->body);
  if (!c) return std::unexpected(std::move(c.error()).Prefix("Docker GET " + target + " on " + impl_->socket_path));
  return c;
}

Result<DockerImage> DockerClient::InspectImage(const std::string& id) const {
  if (auto ok = CheckRef("image", id); !ok) return std::unexpected(ok.error());
  const std::string target = Versioned(*impl_, "/images/" + id + "/json");
  auto reply = Get(*impl_, target, kDockerMaxObjectBytes);
  if (!reply) return std::unexpected(reply.error());
  auto img = ParseImageInspect(reply->body);
  if (!img) return std::unexpected(std::move(img.error()).Prefix("Docker GET " + target + " on " + impl_->socket_path));
  return img;
}

Result<std::unique_ptr<DockerEventStream>> DockerClient::Events() const {
  // filters={"type":["container"]}, URL-encoded.
  const std::string target =
      Versioned(*impl_, "/events?filters=%7B%22type%22%3A%5B%22container%22%5D%7D");
  auto s = std::make_unique<DockerEventStream::Impl>();
  s->where = "Docker GET " + Versioned(*impl_, "/events") + " on " + impl_->socket_path;
  {
    // Connect, send and the response header within the deadline; the socket then leaves the
    // timed stream, since the body has no end to wait for.
    Stream stream(s->ioc);
    stream.expires_after(impl_->timeout);
    if (auto ec = RunOp(s->ioc, [&](auto h) {
          stream.async_connect(Local::endpoint(impl_->socket_path), h);
        }))
      return std::unexpected(IoError(s->where, "connect", ec, impl_->timeout));
    auto req = Request(target);
    if (auto ec = RunOp(s->ioc, [&](auto h) { http::async_write(stream, req, h); }))
      return std::unexpected(IoError(s->where, "send", ec, impl_->timeout));
    s->parser.header_limit(kDockerMaxHeaderBytes);
    // The body never ends while the stream is open: no total limit, each event is capped.
    s->parser.body_limit(boost::none);
    if (auto ec = RunOp(s->ioc, [&](auto h) { http::async_read_header(stream, s->buf, s->parser, h); }))
      return std::unexpected(IoError(s->where, "receive", ec, impl_->timeout));
    s->sock = stream.release_socket();
  }
  unsigned status = s->parser.get().result_int();
  if (status != 200) {
    std::string m = s->where + ": HTTP " + std::to_string(status);
    return std::unexpected(status == 404 ? Error::NotFound(std::move(m))
                           : status >= 500 ? Error::Unavailable(std::move(m))
                                           : Error::InvalidInput(std::move(m)));
  }
  return std::make_unique<DockerEventStream>(std::move(s));
}

// ---- DockerEventStream ----

DockerEventStream::DockerEventStream(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DockerEventStream::~DockerEventStream() = default;

Result<std::optional<DockerEvent>> DockerEventStream::Next(std::chrono::milliseconds wait) {
  Impl& s = *impl_;
  const auto deadline = std::chrono::steady_clock::now() + wait;
  for (;;) {
    if (!s.ready.empty()) {
      DockerEvent e = std::move(s.ready.front());
      s.ready.pop_front();
      return std::optional<DockerEvent>(std::move(e));
    }
    if (!s.reading) {
      if (s.parser.is_done())
        return std::unexpected(Error::Unavailable(s.where + ": the engine ended the stream"));
      s.parser.get().body().data = s.chunk;
      s.parser.get().body().size = sizeof s.chunk;
      s.reading = true;
      http::async_read_some(s.sock, s.buf, s.parser, [&s](beast::error_code ec, size_t) {
        s.reading = false;
        s.result = ec;
      });
    }
    // A read still pending when the wait is over stays pending for the next call.
    s.ioc.restart();
    s.ioc.run_until(deadline);
    if (s.reading) return std::optional<DockerEvent>();
    beast::error_code ec = s.result;
    if (ec == http::error::need_buffer) ec = {};
    if (ec) {
      std::string m = s.where + ": " + ec.message();
      if (ec == http::error::end_of_stream || ec == asio::error::eof)
        m = s.where + ": the engine closed the stream";
      return std::unexpected(Error::Unavailable(std::move(m)));
    }
    const size_t n = sizeof s.chunk - s.parser.get().body().size;
    std::vector<std::string> objects;
    if (auto fed = s.splitter.Feed(std::string_view(s.chunk, n), objects); !fed)
      return std::unexpected(std::move(fed.error()).Prefix(s.where));
    for (const std::string& o : objects) {
      auto e = ParseDockerEvent(o);
      if (!e) return std::unexpected(std::move(e.error()).Prefix(s.where));
      s.ready.push_back(std::move(*e));
    }
    if (s.ready.empty() && std::chrono::steady_clock::now() >= deadline)
      return std::optional<DockerEvent>();
  }
}

}  // namespace driftwatch
