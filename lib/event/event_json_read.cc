#include "lib/event/event_json_read.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <fstream>
#include <unordered_map>

#include "lib/base/json.h"
#include "lib/base/utf8.h"
#include "lib/event/event_fields.h"
#include "lib/event/event_json.h"
#include "lib/event/event_view.h"

namespace driftwatch {
namespace {

constexpr uint32_t kUnset = 4294967295u;  // audit's "unset" uid and session

// evt.type as the writer prints it -> the kind. openat is refined by the fields given.
struct TypeKind {
  std::string_view type;
  Kind kind;
};
constexpr TypeKind kTypes[] = {
    {"execve", Kind::kExec},          {"execveat", Kind::kExec},
    {"chmod", Kind::kChmod},          {"fchmod", Kind::kChmod},
    {"fchmodat", Kind::kChmod},       {"openat", Kind::kWrite},
    {"renameat2", Kind::kWrite},      {"unlinkat", Kind::kWrite},
    {"attrib", Kind::kWrite},         {"container", Kind::kContainer},
    {"sensor_status", Kind::kStatus}, {"exec_prevented", Kind::kPrevented},
    {"connect", Kind::kNetwork},      {"accept", Kind::kNetwork},
    {"accept4", Kind::kNetwork},      {"bind", Kind::kNetwork},
    {"listen", Kind::kNetwork},
};

// One value as the line gave it, decoded; its JSON type is its field's (checked on parse).
struct Given {
  const EventField* field = nullptr;
  size_t index = 0;  // in EventFields(): setters run in the table's order
  std::string str;
  std::vector<std::string> list;
  int64_t num = 0;
  bool boolean = false;

  FieldValue View() const {
    FieldValue v;
    v.str = str;
    v.num = num;
    v.boolean = boolean;
    for (const std::string& s : list) v.list.push_back(s);
    return v;
  }
  bool IsZero() const { return str.empty() && list.empty() && num == 0 && !boolean; }
};

const std::unordered_map<std::string_view, size_t>& FieldIndex() {
  static const auto* index = [] {
    auto* m = new std::unordered_map<std::string_view, size_t>;
    std::span<const EventField> fields = EventFields();
    for (size_t i = 0; i < fields.size(); ++i) m->emplace(fields[i].name, i);
    return m;
  }();
  return *index;
}

std::string_view JsonTypeOf(FieldType t) {
  switch (t) {
    case FieldType::kString:
    case FieldType::kIpNet:
      return "a string";
    case FieldType::kNumber:
      return "an integer";
    case FieldType::kBool:
      return "true or false";
    case FieldType::kList:
      return "a list of strings";
  }
  return "?";
}

// A value for an error message: as JSON, cut short.
std::string Shown(const EventField& f, const FieldValue& v) {
  std::string s;
  AppendFieldValueJson(f, v, &s);
  if (s.size() > 80) s = s.substr(0, 77) + "...";
  return s;
}

// The flat objects event JSON is made of: no nesting below a list of strings, so the parser
// is a loop, not a recursion. Errors are values: the first one stops the line.
class LineParser {
 public:
  explicit LineParser(std::string_view s) : s_(s) {}

  Result<std::vector<Given>> Object() {
    std::vector<Given> out;
    Ws();
    if (!Eat('{')) return Fail("expected a JSON object ('{')");
    Ws();
    if (!Eat('}')) {
      while (true) {
        Ws();
        if (Peek() != '"') return Fail("expected a field name (a string)");
        std::string key;
        if (auto r = String(&key); !r) return std::unexpected(r.error());
        auto it = FieldIndex().find(key);
        if (it == FieldIndex().end())
          return Fail("unknown field " + JsonQuote(key) +
                      " (`driftwatch rules fields` lists the fields; event JSON prints a part)");
        Given g;
        g.index = it->second;
        g.field = &EventFields()[g.index];
        Ws();
        if (!Eat(':')) return Fail("expected ':' after " + JsonQuote(key));
        Ws();
        if (auto r = Value(&g); !r) return std::unexpected(r.error().Prefix(FieldName(g)));
        out.push_back(std::move(g));
        Ws();
        if (Eat('}')) break;
        if (!Eat(',')) return Fail("expected ',' or '}'");
      }
    }
    Ws();
    if (i_ != s_.size()) return Fail("text after the object");
    return out;
  }

 private:
  static std::string FieldName(const Given& g) {
    return "field '" + std::string(g.field->name) + "'";
  }

  char Peek() const { return i_ < s_.size() ? s_[i_] : '\0'; }
  bool Eat(char c) {
    if (Peek() != c || i_ >= s_.size()) return false;
    ++i_;
    return true;
  }
  void Ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\r' || s_[i_] == '\n'))
      ++i_;
  }
  std::unexpected<Error> Fail(const std::string& why) const {
    return std::unexpected(Error::InvalidInput("column " + std::to_string(i_ + 1) + ": " + why));
  }

  Result<> Value(Given* g) {
    const FieldType t = g->field->type;
    auto wrong = [&](std::string_view got) {
      return Fail("expected " + std::string(JsonTypeOf(t)) + ", not " + std::string(got));
    };
    const char c = Peek();
    if (c == '"') {
      if (t != FieldType::kString && t != FieldType::kIpNet) return wrong("a string");
      return String(&g->str);
    }
    if (c == '[') {
      if (t != FieldType::kList) return wrong("a list");
      ++i_;
      Ws();
      if (Eat(']')) return {};
      while (true) {
        Ws();
        if (Peek() != '"') return Fail("expected a list of strings: an element is not a string");
        g->list.emplace_back();
        if (auto r = String(&g->list.back()); !r) return r;
        Ws();
        if (Eat(']')) return {};
        if (!Eat(',')) return Fail("expected ',' or ']'");
      }
    }
    if (c == 't' || c == 'f') {
      const std::string_view word = c == 't' ? "true" : "false";
      if (s_.substr(i_, word.size()) != word) return Fail("not a JSON value");
      if (t != FieldType::kBool) return wrong("true or false");
      i_ += word.size();
      g->boolean = c == 't';
      return {};
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
      if (t != FieldType::kNumber) return wrong("a number");
      return Integer(&g->num);
    }
    if (c == '{') return wrong("an object");
    if (s_.substr(i_, 4) == "null") return wrong("null (leave the field out for unset)");
    return Fail("not a JSON value");
  }

  Result<> Integer(int64_t* out) {
    const size_t start = i_;
    if (Peek() == '-') ++i_;
    const size_t digits = i_;
    while (Peek() >= '0' && Peek() <= '9') ++i_;
    if (i_ == digits) return Fail("not a number");
    if (s_[digits] == '0' && i_ - digits > 1) return Fail("not a JSON number (leading zero)");
    if (Peek() == '.' || Peek() == 'e' || Peek() == 'E') return Fail("not an integer");
    auto r = std::from_chars(s_.data() + start, s_.data() + i_, *out);
    if (r.ec != std::errc()) return Fail("out of range for a 64-bit integer");
    return {};
  }

  // A string literal at i_, decoded to bytes: \udc80..\udcff is the byte 0x80..0xff.
  Result<> String(std::string* out) {
    ++i_;  // '"'
    while (true) {
      if (i_ >= s_.size()) return Fail("unterminated string");
      const unsigned char c = static_cast<unsigned char>(s_[i_]);
      if (c == '"') {
        ++i_;
        return {};
      }
      if (c < 0x20) return Fail("control character in a string (JSON escapes them)");
      if (c != '\\') {
        const size_t n = Utf8SequenceLength(s_, i_);
        if (n == 0)
          return Fail("bytes that are not UTF-8 in a string (the writer escapes them as \\udcXX)");
        out->append(s_.substr(i_, n));
        i_ += n;
        continue;
      }
      ++i_;
      const char e = Peek();
      ++i_;
      switch (e) {
        case '"':
          out->push_back('"');
          break;
        case '\\':
          out->push_back('\\');
          break;
        case '/':
          out->push_back('/');
          break;
        case 'b':
          out->push_back('\b');
          break;
        case 'f':
          out->push_back('\f');
          break;
        case 'n':
          out->push_back('\n');
          break;
        case 'r':
          out->push_back('\r');
          break;
        case 't':
          out->push_back('\t');
          break;
        case 'u': {
          uint32_t cp = 0;
          if (!Hex4(&cp)) return Fail("bad \\u escape");
          if (cp >= 0xd800 && cp < 0xdc00) {  // a pair's first half
            uint32_t low = 0;
            if (!(Eat('\\') && Eat('u') && Hex4(&low)) || low < 0xdc00 || low > 0xdfff)
              return Fail("unpaired surrogate escape");
            AppendUtf8(0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00), out);
          } else if (cp >= 0xdc80 && cp <= 0xdcff) {
            out->push_back(static_cast<char>(cp - 0xdc00));  // a byte that is not UTF-8
          } else if (cp >= 0xdc00 && cp <= 0xdfff) {
            return Fail("unpaired surrogate escape (\\udc80..\\udcff are bytes; others are not)");
          } else {
            AppendUtf8(cp, out);
          }
          break;
        }
        default:
          return Fail("bad escape in a string");
      }
    }
  }

  bool Hex4(uint32_t* out) {
    if (i_ + 4 > s_.size()) return false;
    uint32_t v = 0;
    for (size_t k = 0; k < 4; ++k) {
      const char h = s_[i_ + k];
      v <<= 4;
      if (h >= '0' && h <= '9')
        v |= static_cast<uint32_t>(h - '0');
      else if (h >= 'a' && h <= 'f')
        v |= static_cast<uint32_t>(h - 'a' + 10);
      else if (h >= 'A' && h <= 'F')
        v |= static_cast<uint32_t>(h - 'A' + 10);
      else
        return false;
    }
    i_ += 4;
    *out = v;
    return true;
  }

  std::string_view s_;
  size_t i_ = 0;
};

// openat is a sensitive read when a field only reads print is given, else a file write.
Kind KindOfType(std::string_view type, const std::vector<Given>& given) {
  for (const TypeKind& t : kTypes) {
    if (t.type != type) continue;
    if (t.kind != Kind::kWrite || type != "openat") return t.kind;
    for (const Given& g : given)
      if (g.field->kinds.Has(Kind::kRead) && !g.field->kinds.Has(Kind::kWrite)) return Kind::kRead;
    return t.kind;
  }
  return Kind::kNone;
}

// The fields that describe the container rather than tie the event to it.
bool DescribesContainer(std::string_view name) {
  if (name == "container.id" || name == "container.full_id" || name == "container.attribution")
    return false;
  return name.starts_with("container.") || name.starts_with("k8s.");
}

}  // namespace

Result<EventRead> ParseEventJson(std::string_view line) {
  auto parsed = LineParser(line).Object();
  if (!parsed) return std::unexpected(parsed.error());
  std::vector<Given>& given = *parsed;
  std::sort(given.begin(), given.end(),
            [](const Given& a, const Given& b) { return a.index < b.index; });
  for (size_t i = 1; i < given.size(); ++i) {
    if (given[i].index == given[i - 1].index)
      return std::unexpected(
          Error::InvalidInput("field '" + std::string(given[i].field->name) + "' given twice"));
  }
  auto type = std::find_if(given.begin(), given.end(),
                           [](const Given& g) { return g.field->name == "evt.type"; });
  if (type == given.end())
    return std::unexpected(Error::InvalidInput("no evt.type: it says which kind of event this is"));
  const Kind kind = KindOfType(type->str, given);
  if (kind == Kind::kNone)
    return std::unexpected(Error::InvalidInput(
        "field 'evt.type': " + JsonQuote(type->str) +
        " is not an event type event JSON prints (execve, execveat, chmod, fchmod, fchmodat, "
        "openat, renameat2, unlinkat, attrib, container, sensor_status, exec_prevented, "
        "connect, accept, accept4, bind, listen)"));

  EventRead read;
  v1::Event& ev = read.event;
  const google::protobuf::FieldDescriptor* body =
      ev.GetDescriptor()->FindFieldByNumber(KindFieldNumber(kind));
  ev.GetReflection()->MutableMessage(&ev, body);
  // Unset where JSON prints -1 or leaves the field out, as audit says "unset".
  if (kind == Kind::kExec) {
    ev.mutable_exec()->set_auid(kUnset);
    ev.mutable_exec()->set_session(kUnset);
  } else if (kind == Kind::kChmod) {
    ev.mutable_chmod()->set_auid(kUnset);
    ev.mutable_chmod()->set_session(kUnset);
  } else if (kind == Kind::kNetwork) {
    ev.mutable_network()->set_auid(kUnset);
    ev.mutable_network()->set_session(kUnset);
    ev.mutable_network()->set_fd(-1);
  }

  v1::ContainerInfo side;
  v1::ContainerInfo* info = kind == Kind::kContainer ? ev.mutable_container() : &side;
  bool described = false;
  auto field_error = [](const Given& g, const std::string& why) {
    return std::unexpected(
        Error::InvalidInput("field '" + std::string(g.field->name) + "': " + why));
  };
  for (const Given& g : given) {
    const EventField& f = *g.field;
    if (f.kinds.empty()) continue;  // not the event's own (collector.stored_ns)
    if (!f.kinds.Has(kind))
      return field_error(g, std::string("not printed for ") + KindName(kind) +
                                " events (evt.type " + JsonQuote(type->str) + ")");
    if (kind != Kind::kContainer && DescribesContainer(f.name)) described = true;
    if (f.set == nullptr) continue;  // computed from others: checked below
    const FieldValue v = g.View();
    if (const char* why = f.set(v, &ev, info)) return field_error(g, Shown(f, v) + ": " + why);
  }
  if (kind == Kind::kExec && ev.exec().argc() == 0)
    ev.mutable_exec()->set_argc(static_cast<uint32_t>(ev.exec().args_size()));
  if (described) read.container = std::move(side);

  // Written again, the event must print every field as given: values in the writer's form,
  // computed fields in agreement with the fields they come from.
  const v1::ContainerInfo* written_info = read.container ? &*read.container : nullptr;
  FieldValue out;
  for (const Given& g : given) {
    const EventField& f = *g.field;
    if (f.kinds.empty()) continue;
    out.Clear();
    const std::string hint = f.doc.empty() ? "" : " (" + std::string(f.doc) + ")";
    if (!f.get(ev, written_info, &out)) {
      if (g.IsZero()) continue;  // what the writer leaves out is what it would have printed
      return field_error(g,
                         "the event leaves it out as it is written (other fields say it is "
                         "unset)" +
                             hint);
    }
    const FieldValue want = g.View();
    std::string a, b;
    AppendFieldValueJson(f, out, &a);
    AppendFieldValueJson(f, want, &b);
    if (a != b)
      return field_error(g, "reads back as " + Shown(f, out) + ", not " + Shown(f, want) +
                                (f.set == nullptr ? ": it is computed from other fields" : "") +
                                hint);
  }
  return read;
}

Result<std::vector<EventRead>> ReadEventJsonFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::unexpected(Error::FromErrno(errno, path));
  std::vector<EventRead> events;
  std::streambuf* buf = in.rdbuf();
  std::string line;
  size_t number = 0;
  bool at_end = false;
  while (!at_end) {
    line.clear();
    bool too_long = false;
    int c;
    // A bounded getline: a hostile line costs kMaxEventJsonLine bytes at most.
    while ((c = buf->sbumpc()) != std::char_traits<char>::eof() && c != '\n') {
      if (line.size() < kMaxEventJsonLine)
        line.push_back(static_cast<char>(c));
      else
        too_long = true;
    }
    at_end = c == std::char_traits<char>::eof();
    if (at_end && line.empty()) break;
    ++number;
    const std::string place = path + ":" + std::to_string(number);
    if (too_long)
      return std::unexpected(Error::InvalidInput(place + ": line longer than " +
                                                 std::to_string(kMaxEventJsonLine >> 20) + " MiB"));
    const size_t first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos || line[first] == '#') continue;
    auto ev = ParseEventJson(line);
    if (!ev) return std::unexpected(std::move(ev).error().Prefix(place));
    events.push_back(std::move(*ev));
  }
  if (in.bad()) return std::unexpected(Error::Io(path + ": read error"));
  return events;
}

}  // namespace driftwatch
