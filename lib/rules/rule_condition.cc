#include "lib/rules/rule_condition.h"

#include <algorithm>
#include <charconv>
#include <span>
#include <unordered_set>

#include <re2/re2.h>

#include "lib/event/net_address.h"
#include "lib/rules/event_types.h"
#include "lib/rules/rule_fields.h"

namespace driftwatch::cond {

std::string_view OpName(Op op) {
  switch (op) {
    case Op::kEq: return "=";
    case Op::kNe: return "!=";
    case Op::kLt: return "<";
    case Op::kLe: return "<=";
    case Op::kGt: return ">";
    case Op::kGe: return ">=";
    case Op::kContains: return "contains";
    case Op::kIContains: return "icontains";
    case Op::kBContains: return "bcontains";
    case Op::kBStartsWith: return "bstartswith";
    case Op::kRegex: return "regex";
    case Op::kStartsWith: return "startswith";
    case Op::kEndsWith: return "endswith";
    case Op::kGlob: return "glob";
    case Op::kIGlob: return "iglob";
    case Op::kIn: return "in";
    case Op::kIntersects: return "intersects";
    case Op::kPmatch: return "pmatch";
    case Op::kExists: return "exists";
  }
  return "?";
}

std::string_view TransformName(Transform t) {
  switch (t) {
    case Transform::kToLower: return "tolower";
    case Transform::kToUpper: return "toupper";
    case Transform::kB64: return "b64";
    case Transform::kBasename: return "basename";
    case Transform::kLen: return "len";
  }
  return "?";
}

void LineColumn(std::string_view text, size_t offset, int* line, int* column) {
  *line = 1;
  *column = 1;
  for (size_t i = 0; i < offset && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++*line;
      *column = 1;
    } else if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80) {
      ++*column;  // count characters, not UTF-8 continuation bytes
    }
  }
}

std::expected<std::string, std::pair<size_t, std::string>> UnescapeQuoted(
    std::string_view body, char quote) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(body.size());
  for (size_t i = 0; i < body.size(); ++i) {
    char c = body[i];
    if (c != '\\' || i + 1 >= body.size()) {
      out.push_back(c);
      continue;
    }
    char n = body[i + 1];
    if (n == quote || n == '\\') {
      out.push_back(n);
      ++i;
    } else if (n == 'x') {
      int hi = i + 2 < body.size() ? hex(body[i + 2]) : -1;
      int lo = i + 3 < body.size() ? hex(body[i + 3]) : -1;
      if (hi < 0 || lo < 0) {
        return std::unexpected(std::pair<size_t, std::string>{
            i, "'\\x' takes two hex digits (\\xff is the byte 0xff)"});
      }
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 3;
    } else {
      out.push_back(c);  // any other backslash stays as it is
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Parser: recursive descent straight over the text.
namespace {

constexpr int kMaxDepth = 200;  // nesting beyond this is refused rather than overflow the stack

bool IsBlank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v'; }
bool IsIdentStart(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool IsIdentChar(char c) { return IsIdentStart(c) || (c >= '0' && c <= '9'); }
bool IsBareChar(char c) {
  return !IsBlank(c) && c != '(' && c != ')' && c != ',' && c != '=' && c != '"' && c != '\'';
}

class Parser {
 public:
  explicit Parser(std::string_view text) : s_(text) {}

  std::expected<NodePtr, Error> Run() {
    NodePtr n = ParseOr();
    if (!n) return std::unexpected(err_);
    SkipBlanks();
    if (pos_ < s_.size()) {
      if (s_[pos_] == ')') return Fail(pos_, "unbalanced ')'");
      return Fail(pos_, "expected 'and', 'or' or the end of the condition, found '" +
                            std::string(Peek(16)) + "'");
    }
    return n;
  }

 private:
  std::unexpected<Error> Fail(size_t at, std::string msg) {
    if (err_.message.empty()) err_ = Error{at, "", std::move(msg), Error::Kind::kOther, {}};
    return std::unexpected(err_);
  }
  NodePtr Null(size_t at, std::string msg) {
    Fail(at, std::move(msg));
    return nullptr;
  }

  std::string_view Peek(size_t n) const {
    std::string_view rest = s_.substr(pos_, n);
    size_t nl = rest.find('\n');
    return nl == std::string_view::npos ? rest : rest.substr(0, nl);
  }

  void SkipBlanks() {
    while (pos_ < s_.size() && IsBlank(s_[pos_])) ++pos_;
  }

  // A keyword or word operator at pos_, followed by a boundary (not an identifier char,
  // and for field-like words not a '.').
  bool AtWord(std::string_view w) const {
    if (s_.substr(pos_, w.size()) != w) return false;
    size_t e = pos_ + w.size();
    return e >= s_.size() || (!IsIdentChar(s_[e]) && s_[e] != '.');
  }

  bool EatWord(std::string_view w) {
    SkipBlanks();
    if (!AtWord(w)) return false;
    pos_ += w.size();
    return true;
  }

  NodePtr Combine(NodeKind k, size_t at, NodePtr first, std::vector<NodePtr> rest) {
    if (rest.empty()) return first;
    auto n = std::make_unique<Node>();
    n->kind = k;
    n->offset = at;
    n->children.push_back(std::move(first));
    for (auto& r : rest) n->children.push_back(std::move(r));
    return n;
  }

  NodePtr ParseOr() {
    if (++depth_ > kMaxDepth) return Null(pos_, "condition nested too deeply");
    SkipBlanks();
    size_t at = pos_;
    NodePtr first = ParseAnd();
    if (!first) return nullptr;
    std::vector<NodePtr> rest;
    while (EatWord("or")) {
      NodePtr n = ParseAnd();
      if (!n) return nullptr;
      rest.push_back(std::move(n));
    }
    --depth_;
    return Combine(NodeKind::kOr, at, std::move(first), std::move(rest));
  }

  NodePtr ParseAnd() {
    SkipBlanks();
    size_t at = pos_;
    NodePtr first = ParseNot();
    if (!first) return nullptr;
    std::vector<NodePtr> rest;
    while (EatWord("and")) {
      NodePtr n = ParseNot();
      if (!n) return nullptr;
      rest.push_back(std::move(n));
    }
    return Combine(NodeKind::kAnd, at, std::move(first), std::move(rest));
  }

  NodePtr ParseNot() {
    SkipBlanks();
    size_t at = pos_;
    if (EatWord("not")) {
      if (++depth_ > kMaxDepth) return Null(pos_, "condition nested too deeply");
      NodePtr inner = ParseNot();
      if (!inner) return nullptr;
      --depth_;
      auto n = std::make_unique<Node>();
      n->kind = NodeKind::kNot;
      n->offset = at;
      n->children.push_back(std::move(inner));
      return n;
    }
    return ParsePrimary();
  }

  NodePtr ParsePrimary() {
    SkipBlanks();
    size_t at = pos_;
    if (pos_ >= s_.size()) return Null(pos_, "unexpected end of condition: expected a check, a macro or '('");
    if (s_[pos_] == '(') {
      ++pos_;
      NodePtr inner = ParseOr();
      if (!inner) return nullptr;
      SkipBlanks();
      if (pos_ >= s_.size() || s_[pos_] != ')') return Null(pos_, "expected ')' (opened at offset " + std::to_string(at) + ")");
      ++pos_;
      return inner;
    }
    if (AtWord("and") || AtWord("or")) return Null(pos_, "expected a check, a macro or '(' before '" + std::string(Peek(3)) + "'");
    if (!IsIdentStart(s_[pos_])) {
      return Null(pos_, "expected a field, a macro or '(', found '" + std::string(Peek(16)) + "'");
    }
    if (TransformAt()) {
      FieldOperand lhs;
      if (!ParseOperand(&lhs)) return nullptr;
      auto n = std::make_unique<Node>();
      n->kind = NodeKind::kCheck;
      n->offset = at;
      n->field = std::move(lhs.field);
      n->field_arg = std::move(lhs.field_arg);
      n->has_field_arg = lhs.has_field_arg;
      n->transforms = std::move(lhs.transforms);
      if (!ParseOperator(n.get())) return nullptr;
      return n;
    }
    if (CallAt("val")) return Null(pos_, "val() compares with another field: it belongs on the right of an operator");
    for (std::string_view t : {"join", "concat", "getopt"}) {
      if (CallAt(t)) {
        return Null(pos_, "transformer '" + std::string(t) +
                              "' is not supported (Falco engine 0.59 and later; driftwatch implements 0.57)");
      }
    }
    // Identifier, possibly dotted (a field).
    size_t start = pos_;
    while (pos_ < s_.size() && IsIdentChar(s_[pos_])) ++pos_;
    bool dotted = false;
    while (pos_ + 1 < s_.size() && s_[pos_] == '.' && IsIdentChar(s_[pos_ + 1])) {
      dotted = true;
      ++pos_;
      while (pos_ < s_.size() && IsIdentChar(s_[pos_])) ++pos_;
    }
    std::string name(s_.substr(start, pos_ - start));
    if (!dotted) {
      // A macro, unless an operator follows: then it is a field without a class (refused
      // at compile time as an unknown field, which says more than a syntax error).
      size_t save = pos_;
      SkipBlanks();
      bool op_follows = pos_ < s_.size() && (s_[pos_] == '=' || s_[pos_] == '!' || s_[pos_] == '<' || s_[pos_] == '>' ||
                                             (s_[pos_] == '[' && save == pos_));
      if (!op_follows) {
        for (std::string_view w : {"exists", "contains", "icontains", "bcontains", "startswith", "bstartswith",
                                   "endswith", "glob", "iglob", "regex", "in", "intersects", "pmatch"}) {
          if (AtWord(w)) op_follows = true;
        }
      }
      pos_ = save;
      if (!op_follows) {
        auto n = std::make_unique<Node>();
        n->kind = NodeKind::kMacro;
        n->offset = start;
        n->field = std::move(name);
        return n;
      }
    }
    auto n = std::make_unique<Node>();
    n->kind = NodeKind::kCheck;
    n->offset = start;
    n->field = std::move(name);
    if (pos_ < s_.size() && s_[pos_] == '[') {
      size_t close = s_.find(']', pos_);
      if (close == std::string_view::npos) return Null(pos_, "unterminated '[' after field " + n->field);
      n->has_field_arg = true;
      n->field_arg = std::string(s_.substr(pos_ + 1, close - pos_ - 1));
      pos_ = close + 1;
    }
    if (!ParseOperator(n.get())) return nullptr;
    return n;
  }

  bool ParseOperator(Node* n) {
    SkipBlanks();
    size_t at = pos_;
    auto sym = [&](std::string_view t) {
      if (s_.substr(pos_, t.size()) != t) return false;
      pos_ += t.size();
      return true;
    };
    if (sym("==") || sym("=")) {
      n->op = Op::kEq;
    } else if (sym("!=")) {
      n->op = Op::kNe;
    } else if (sym("<=")) {
      n->op = Op::kLe;
    } else if (sym("<")) {
      n->op = Op::kLt;
    } else if (sym(">=")) {
      n->op = Op::kGe;
    } else if (sym(">")) {
      n->op = Op::kGt;
    } else {
      static constexpr struct {
        std::string_view word;
        Op op;
      } kWords[] = {{"exists", Op::kExists},         {"contains", Op::kContains},
                    {"icontains", Op::kIContains},   {"bcontains", Op::kBContains},
                    {"startswith", Op::kStartsWith}, {"bstartswith", Op::kBStartsWith},
                    {"endswith", Op::kEndsWith},     {"glob", Op::kGlob},
                    {"iglob", Op::kIGlob},           {"regex", Op::kRegex},
                    {"intersects", Op::kIntersects}, {"in", Op::kIn},
                    {"pmatch", Op::kPmatch}};
      bool found = false;
      for (const auto& w : kWords) {
        if (AtWord(w.word)) {
          pos_ += w.word.size();
          n->op = w.op;
          found = true;
          break;
        }
      }
      if (!found) {
        if (pos_ >= s_.size()) {
          Fail(at, "unexpected end of condition: expected an operator after " + n->field);
        } else {
          Fail(at, "expected an operator after " + n->field + ", found '" + std::string(Peek(16)) + "'");
        }
        return false;
      }
    }
    if (n->op != Op::kExists) {
      SkipBlanks();
      if (CallAt("val") || TransformAt()) {
        FieldOperand rhs;
        if (CallAt("val")) {
          rhs.offset = pos_;
          pos_ += 4;  // "val("
          SkipBlanks();
          if (!ParseField(&rhs)) return false;
          SkipBlanks();
          if (pos_ >= s_.size() || s_[pos_] != ')') {
            Fail(pos_, "expected ')' to close val(");
            return false;
          }
          ++pos_;
        } else if (!ParseOperand(&rhs)) {
          return false;
        }
        n->rhs = std::move(rhs);
        return true;
      }
    }
    switch (n->op) {
      case Op::kExists:
        return true;
      case Op::kIn:
      case Op::kIntersects:
      case Op::kPmatch:
        return ParseListValue(n);
      default: {
        Value v;
        if (!ParseValue(&v)) {
          if (err_.message.empty()) Fail(pos_, "expected a value after '" + std::string(OpName(n->op)) + "'");
          return false;
        }
        n->values.push_back(std::move(v));
        return true;
      }
    }
  }

  // `name(` at pos_, nothing between the name and '('.
  bool CallAt(std::string_view name) const {
    return s_.substr(pos_, name.size()) == name && pos_ + name.size() < s_.size() &&
           s_[pos_ + name.size()] == '(';
  }

  std::optional<Transform> TransformAt() const {
    for (Transform t : {Transform::kToLower, Transform::kToUpper, Transform::kB64, Transform::kBasename,
                        Transform::kLen}) {
      if (CallAt(TransformName(t))) return t;
    }
    return std::nullopt;
  }

  // Field ::= FieldName ( '[' FieldArg ']' )?
  bool ParseField(FieldOperand* out) {
    size_t start = pos_;
    if (pos_ >= s_.size() || !IsIdentStart(s_[pos_])) {
      Fail(pos_, "expected a field name");
      return false;
    }
    while (pos_ < s_.size() && (IsIdentChar(s_[pos_]) || (s_[pos_] == '.' && pos_ + 1 < s_.size() &&
                                                           IsIdentChar(s_[pos_ + 1])))) {
      ++pos_;
    }
    out->field = std::string(s_.substr(start, pos_ - start));
    if (out->offset == 0) out->offset = start;
    if (pos_ < s_.size() && s_[pos_] == '[') {
      size_t close = s_.find(']', pos_);
      if (close == std::string_view::npos) {
        Fail(pos_, "unterminated '[' after field " + out->field);
        return false;
      }
      out->has_field_arg = true;
      out->field_arg = std::string(s_.substr(pos_ + 1, close - pos_ - 1));
      pos_ = close + 1;
    }
    return true;
  }

  // Operand ::= Field | TransformName '(' Operand ')'
  bool ParseOperand(FieldOperand* out) {
    if (++depth_ > kMaxDepth) {
      Fail(pos_, "condition nested too deeply");
      return false;
    }
    SkipBlanks();
    if (out->offset == 0) out->offset = pos_;
    if (std::optional<Transform> t = TransformAt()) {
      size_t open = pos_ + TransformName(*t).size();
      pos_ = open + 1;
      if (!ParseOperand(out)) return false;
      SkipBlanks();
      if (pos_ >= s_.size() || s_[pos_] != ')') {
        Fail(pos_, "expected ')' to close " + std::string(TransformName(*t)) + "(");
        return false;
      }
      ++pos_;
      out->transforms.push_back(*t);
    } else if (!ParseField(out)) {
      return false;
    }
    --depth_;
    return true;
  }

  bool ParseListValue(Node* n) {
    SkipBlanks();
    if (pos_ < s_.size() && s_[pos_] == '(') {
      size_t open = pos_;
      ++pos_;
      SkipBlanks();
      if (pos_ < s_.size() && s_[pos_] == ')') {
        ++pos_;
        return true;  // empty list
      }
      while (true) {
        Value v;
        if (!ParseValue(&v)) {
          if (err_.message.empty()) Fail(pos_, "expected a list item");
          return false;
        }
        n->values.push_back(std::move(v));
        SkipBlanks();
        if (pos_ < s_.size() && s_[pos_] == ',') {
          ++pos_;
          continue;
        }
        if (pos_ < s_.size() && s_[pos_] == ')') {
          ++pos_;
          return true;
        }
        Fail(pos_, pos_ < s_.size() ? "expected ',' or ')' in list"
                                    : "unterminated list opened at offset " + std::to_string(open) + ": missing ')'");
        return false;
      }
    }
    // `in NAME`: a list by name.
    size_t start = pos_;
    while (pos_ < s_.size() && IsIdentChar(s_[pos_])) ++pos_;
    if (pos_ == start || !IsIdentStart(s_[start])) {
      Fail(start, "expected '(' or a list name after '" + std::string(OpName(n->op)) + "'");
      return false;
    }
    n->list_by_name = true;
    n->values.push_back(Value{std::string(s_.substr(start, pos_ - start)), false, start});
    return true;
  }

  bool ParseValue(Value* v) {
    SkipBlanks();
    v->offset = pos_;
    if (pos_ >= s_.size()) return false;
    char q = s_[pos_];
    if (q == '"' || q == '\'') {
      size_t open = pos_++;
      size_t body = pos_;
      while (pos_ < s_.size() && s_[pos_] != q) pos_ += s_[pos_] == '\\' && pos_ + 1 < s_.size() ? 2 : 1;
      if (pos_ >= s_.size()) {
        Fail(open, "unterminated quoted string");
        return false;
      }
      auto text = UnescapeQuoted(s_.substr(body, pos_ - body), q);
      if (!text) {
        Fail(body + text.error().first, text.error().second);
        return false;
      }
      ++pos_;
      v->text = std::move(*text);
      v->quoted = true;
      return true;
    }
    size_t start = pos_;
    while (pos_ < s_.size() && IsBareChar(s_[pos_])) ++pos_;
    if (pos_ == start) return false;
    v->text = std::string(s_.substr(start, pos_ - start));
    return true;
  }

  std::string_view s_;
  size_t pos_ = 0;
  int depth_ = 0;
  Error err_;
};

}  // namespace

std::expected<NodePtr, Error> Parse(std::string_view text) { return Parser(text).Run(); }

// ---------------------------------------------------------------------------------------
// Matching helpers.

namespace {

char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool IContains(std::string_view hay, std::string_view lower_needle) {
  if (lower_needle.empty()) return true;
  if (hay.size() < lower_needle.size()) return false;
  for (size_t i = 0; i + lower_needle.size() <= hay.size(); ++i) {
    size_t k = 0;
    while (k < lower_needle.size() && Lower(hay[i + k]) == lower_needle[k]) ++k;
    if (k == lower_needle.size()) return true;
  }
  return false;
}

// One bracket expression at p[i] ('[' already seen at p[i-1]); sets *end past ']'.
bool ClassMatch(std::string_view p, size_t i, char c, bool fold, size_t* end) {
  bool negate = false;
  if (i < p.size() && (p[i] == '!' || p[i] == '^')) {
    negate = true;
    ++i;
  }
  bool matched = false;
  bool first = true;
  while (i < p.size() && (p[i] != ']' || first)) {
    first = false;
    char lo = p[i];
    char hi = lo;
    if (i + 2 < p.size() && p[i + 1] == '-' && p[i + 2] != ']') {
      hi = p[i + 2];
      i += 3;
    } else {
      ++i;
    }
    char cc = fold ? Lower(c) : c;
    if (fold) {
      lo = Lower(lo);
      hi = Lower(hi);
    }
    if (cc >= lo && cc <= hi) matched = true;
  }
  if (i >= p.size()) return false;  // no closing ']': the caller treats '[' literally
  *end = i + 1;
  return matched != negate;
}

}  // namespace

// fnmatch(3) without FNM_PATHNAME, as Falco's glob: '*' also crosses '/'.
bool GlobMatch(std::string_view p, std::string_view s, bool fold) {
  size_t pi = 0, si = 0;
  size_t star_p = std::string_view::npos, star_s = 0;
  while (si < s.size()) {
    if (pi < p.size()) {
      char pc = p[pi];
      if (pc == '*') {
        star_p = pi++;
        star_s = si;
        continue;
      }
      if (pc == '?') {
        ++pi;
        ++si;
        continue;
      }
      if (pc == '[') {
        size_t end = 0;
        bool m = ClassMatch(p, pi + 1, s[si], fold, &end);
        if (end != 0) {  // a well-formed class; without a closing ']' the '[' is literal
          if (!m) goto backtrack;
          pi = end;
          ++si;
          continue;
        }
      }
      if (pc == '\\' && pi + 1 < p.size()) {
        pc = p[++pi];
      }
      if (fold ? Lower(pc) == Lower(s[si]) : pc == s[si]) {
        ++pi;
        ++si;
        continue;
      }
    }
  backtrack:
    if (star_p == std::string_view::npos) return false;
    pi = star_p + 1;
    si = ++star_s;
  }
  while (pi < p.size() && p[pi] == '*') ++pi;
  return pi == p.size();
}

bool PathPrefixMatch(std::string_view prefix, std::string_view path) {
  while (prefix.size() > 1 && prefix.back() == '/') prefix.remove_suffix(1);
  if (prefix == "/") return path.starts_with('/');
  if (!path.starts_with(prefix)) return false;
  return path.size() == prefix.size() || path[prefix.size()] == '/';
}

// ---------------------------------------------------------------------------------------
// Evaluators.

class Evaluator {
 public:
  virtual ~Evaluator() = default;
  virtual bool Eval(const RuleContext& ctx) const = 0;
};

namespace {

// Scratch values per thread: a check extracts, compares and is done before the next check
// runs, so they can share them. The second is for the right-hand field of val().
FieldValue& Scratch() {
  thread_local FieldValue v;
  v.Clear();
  return v;
}

FieldValue& Scratch2() {
  thread_local FieldValue v;
  v.Clear();
  return v;
}

std::string& JoinScratch() {
  thread_local std::string s;
  s.clear();
  return s;
}

// Base64 (RFC 4648, padding optional) into *out; false when `in` is not base64.
bool DecodeBase64(std::string_view in, std::string* out) {
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  while (!in.empty() && in.back() == '=') in.remove_suffix(1);
  if (in.size() % 4 == 1) return false;
  out->clear();
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    int v = val(c);
    if (v < 0) return false;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out->push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  return true;
}

// One string transformer on s: a view into s (basename) or text in *tmp.
bool TransformString(Transform t, std::string_view s, std::string_view* out, std::string* tmp) {
  switch (t) {
    case Transform::kToLower:
    case Transform::kToUpper:
      tmp->assign(s);
      for (char& c : *tmp) {
        if (t == Transform::kToLower && c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
        if (t == Transform::kToUpper && c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
      }
      *out = *tmp;
      return true;
    case Transform::kB64:
      if (!DecodeBase64(s, tmp)) return false;
      *out = *tmp;
      return true;
    case Transform::kBasename: {
      size_t slash = s.rfind('/');
      *out = slash == std::string_view::npos ? s : s.substr(slash + 1);
      return true;
    }
    case Transform::kLen:
      break;
  }
  return false;
}

// A field as a check reads it: extracted, then transformed. Immutable.
struct Source {
  const FieldInfo* f = nullptr;
  FieldArg arg;
  std::shared_ptr<const std::string> key;  // what arg.key points to
  std::vector<Transform> transforms;
  FieldType type = FieldType::kString;  // after the transformers

  bool joins() const { return f->list_joins_for_strings; }

  // Fills *v; false when the field is unset (or a transformer found nothing to give).
  bool Get(const RuleContext& ctx, FieldValue* v) const {
    if (!f->Extract(ctx, arg, v)) return false;
    if (transforms.empty()) return true;
    FieldType t = f->TypeFor(arg);
    thread_local std::string tmp;
    thread_local std::vector<std::string> parts;
    for (Transform tr : transforms) {
      if (tr == Transform::kLen) {
        if (t != FieldType::kList) {
          v->num = static_cast<int64_t>(v->str.size());
        } else if (joins()) {
          size_t n = v->list.empty() ? 0 : v->list.size() - 1;
          for (std::string_view e : v->list) n += e.size();
          v->num = static_cast<int64_t>(n);
        } else {
          v->num = static_cast<int64_t>(v->list.size());
        }
        t = FieldType::kNumber;
        continue;
      }
      if (t != FieldType::kList) {
        std::string_view out;
        if (!TransformString(tr, v->str, &out, &tmp)) return false;
        if (out.data() == tmp.data()) {  // new text: keep it in the value's own buffer
          v->buf.swap(tmp);
          out = v->buf;
        }
        v->str = out;
        continue;
      }
      // Each element; new texts are gathered, then laid out in buf once (views stay valid).
      parts.resize(v->list.size());
      std::vector<bool> copied(v->list.size());
      for (size_t i = 0; i < v->list.size(); ++i) {
        std::string_view out;
        if (!TransformString(tr, v->list[i], &out, &parts[i])) return false;
        copied[i] = out.data() == parts[i].data();
        if (!copied[i]) v->list[i] = out;
      }
      size_t total = 0;
      for (size_t i = 0; i < parts.size(); ++i) total += copied[i] ? parts[i].size() : 0;
      tmp.clear();
      tmp.reserve(total);
      std::vector<size_t> at(parts.size());
      for (size_t i = 0; i < parts.size(); ++i) {
        if (!copied[i]) continue;
        at[i] = tmp.size();
        tmp += parts[i];
      }
      v->buf.swap(tmp);
      for (size_t i = 0; i < parts.size(); ++i) {
        if (copied[i]) v->list[i] = std::string_view(v->buf).substr(at[i], parts[i].size());
      }
    }
    return true;
  }
};

class AndEval final : public Evaluator {
 public:
  explicit AndEval(std::vector<std::unique_ptr<Evaluator>> c) : c_(std::move(c)) {}
  bool Eval(const RuleContext& ctx) const override {
    for (const auto& e : c_) {
      if (!e->Eval(ctx)) return false;
    }
    return true;
  }

 private:
  std::vector<std::unique_ptr<Evaluator>> c_;
};

class OrEval final : public Evaluator {
 public:
  explicit OrEval(std::vector<std::unique_ptr<Evaluator>> c) : c_(std::move(c)) {}
  bool Eval(const RuleContext& ctx) const override {
    for (const auto& e : c_) {
      if (e->Eval(ctx)) return true;
    }
    return false;
  }

 private:
  std::vector<std::unique_ptr<Evaluator>> c_;
};

class NotEval final : public Evaluator {
 public:
  explicit NotEval(std::unique_ptr<Evaluator> c) : c_(std::move(c)) {}
  bool Eval(const RuleContext& ctx) const override { return !c_->Eval(ctx); }

 private:
  std::unique_ptr<Evaluator> c_;
};

class ExistsEval final : public Evaluator {
 public:
  explicit ExistsEval(Source s) : s_(std::move(s)) {}
  bool Eval(const RuleContext& ctx) const override {
    // A list field with no element (proc.args of a bare command) still exists.
    return s_.Get(ctx, &Scratch());
  }

 private:
  Source s_;
};

// A set of strings: a few compared one by one, more through a hash set.
class StringSet {
 public:
  explicit StringSet(std::vector<std::string> items) : items_(std::move(items)) {
    std::sort(items_.begin(), items_.end());
    items_.erase(std::unique(items_.begin(), items_.end()), items_.end());
    if (items_.size() > 8) {
      for (const std::string& s : items_) hash_.insert(std::string_view(s));
    }
  }
  bool Contains(std::string_view s) const {
    if (!hash_.empty()) return hash_.contains(s);
    for (const std::string& i : items_) {
      if (i == s) return true;
    }
    return false;
  }
  const std::vector<std::string>& items() const { return items_; }

 private:
  std::vector<std::string> items_;
  std::unordered_set<std::string_view> hash_;
};

// s against one operand, for the operators that take one string. `fold`: the operand of
// icontains/iglob is already lower case.
bool MatchOne(Op op, std::string_view s, std::string_view operand, bool operand_folded) {
  switch (op) {
    case Op::kEq: return s == operand;
    case Op::kNe: return s != operand;
    case Op::kContains:
    case Op::kBContains: return s.find(operand) != std::string_view::npos;
    case Op::kIContains: {
      if (operand_folded) return IContains(s, operand);
      std::string lower(operand);
      for (char& c : lower) c = Lower(c);
      return IContains(s, lower);
    }
    case Op::kStartsWith:
    case Op::kBStartsWith: return s.starts_with(operand);
    case Op::kEndsWith: return s.ends_with(operand);
    case Op::kGlob: return GlobMatch(operand, s, false);
    case Op::kIGlob: return GlobMatch(operand, s, true);
    case Op::kPmatch: return PathPrefixMatch(operand, s);
    default: return false;
  }
}

// Compares one string (or each element of a list field) with the operand(s).
class StringEval final : public Evaluator {
 public:
  StringEval(Source src, Op op, std::vector<std::string> operands,
             std::vector<std::unique_ptr<re2::RE2>> regexes)
      : src_(std::move(src)), op_(op),
        set_(op == Op::kIn || op == Op::kIntersects ? operands : std::vector<std::string>{}),
        regexes_(std::move(regexes)) {
    if (op == Op::kIContains || op == Op::kIGlob) {
      for (std::string& s : operands) {
        for (char& c : s) c = Lower(c);
      }
    }
    operands_ = std::move(operands);
  }

  bool Eval(const RuleContext& ctx) const override {
    FieldValue& v = Scratch();
    if (!src_.Get(ctx, &v)) return false;
    if (src_.type != FieldType::kList) return Match(v.str);
    bool set_op = op_ == Op::kIn || op_ == Op::kIntersects;
    if (src_.joins() && !set_op) {
      std::string& joined = JoinScratch();
      for (size_t i = 0; i < v.list.size(); ++i) {
        if (i) joined.push_back(' ');
        joined.append(v.list[i]);
      }
      return Match(joined);
    }
    // Any element. `!=` on a list: no element equals the operand.
    if (op_ == Op::kNe) {
      for (std::string_view e : v.list) {
        if (e == operands_[0]) return false;
      }
      return true;
    }
    for (std::string_view e : v.list) {
      if (Match(e)) return true;
    }
    return false;
  }

 private:
  bool Match(std::string_view s) const {
    switch (op_) {
      case Op::kIn:
      case Op::kIntersects: return set_.Contains(s);
      case Op::kPmatch:
        for (const std::string& p : operands_) {
          if (PathPrefixMatch(p, s)) return true;
        }
        return false;
      case Op::kRegex:
        return RE2::FullMatch(re2::StringPiece(s.data(), s.size()), *regexes_[0]);
      default: return MatchOne(op_, s, operands_[0], true);
    }
  }

  Source src_;
  Op op_;
  std::vector<std::string> operands_;
  StringSet set_;
  std::vector<std::unique_ptr<re2::RE2>> regexes_;  // kRegex: one, compiled at load
};

bool CompareNumbers(Op op, int64_t n, int64_t operand) {
  switch (op) {
    case Op::kEq:
    case Op::kIn:
    case Op::kIntersects: return n == operand;
    case Op::kNe: return n != operand;
    case Op::kLt: return n < operand;
    case Op::kLe: return n <= operand;
    case Op::kGt: return n > operand;
    case Op::kGe: return n >= operand;
    default: return false;
  }
}

class NumberEval final : public Evaluator {
 public:
  NumberEval(Source src, Op op, std::vector<int64_t> operands)
      : src_(std::move(src)), op_(op), operands_(std::move(operands)) {
    std::sort(operands_.begin(), operands_.end());
  }
  bool Eval(const RuleContext& ctx) const override {
    FieldValue& v = Scratch();
    if (!src_.Get(ctx, &v)) return false;
    if (op_ == Op::kIn || op_ == Op::kIntersects) {
      return std::binary_search(operands_.begin(), operands_.end(), v.num);
    }
    return CompareNumbers(op_, v.num, operands_[0]);
  }

 private:
  Source src_;
  Op op_;
  std::vector<int64_t> operands_;
};

// An IP address field against networks: = and in hold when the address is in one of them
// (an address alone is its /32 or /128), != when it is in none.
class IpNetEval final : public Evaluator {
 public:
  IpNetEval(Source src, Op op, std::vector<IpNet> nets) : src_(std::move(src)), op_(op), nets_(std::move(nets)) {}
  bool Eval(const RuleContext& ctx) const override {
    FieldValue& v = Scratch();
    if (!src_.Get(ctx, &v)) return false;
    const std::string raw = IpRaw(v.str);
    if (raw.empty()) return false;
    bool in = false;
    for (const IpNet& n : nets_) in = in || IpNetContains(n, raw);
    return op_ == Op::kNe ? !in : in;
  }

 private:
  Source src_;
  Op op_;
  std::vector<IpNet> nets_;
};

class BoolEval final : public Evaluator {
 public:
  BoolEval(Source src, bool want_true, bool want_false)
      : src_(std::move(src)), want_true_(want_true), want_false_(want_false) {}
  bool Eval(const RuleContext& ctx) const override {
    FieldValue& v = Scratch();
    if (!src_.Get(ctx, &v)) return false;
    return v.boolean ? want_true_ : want_false_;
  }

 private:
  Source src_;
  bool want_true_, want_false_;
};

// A field compared with another field (`val(f)` or a transformer on the right). Both
// must have a value; types were matched at compile time.
class FieldCompareEval final : public Evaluator {
 public:
  FieldCompareEval(Source lhs, Op op, Source rhs) : lhs_(std::move(lhs)), op_(op), rhs_(std::move(rhs)) {}

  bool Eval(const RuleContext& ctx) const override {
    FieldValue& a = Scratch();
    if (!lhs_.Get(ctx, &a)) return false;
    FieldValue& b = Scratch2();
    if (!rhs_.Get(ctx, &b)) return false;
    if (lhs_.type == FieldType::kNumber) return CompareNumbers(op_, a.num, b.num);
    if (lhs_.type == FieldType::kBool) return op_ == Op::kNe ? a.boolean != b.boolean : a.boolean == b.boolean;
    std::string_view one_a[1] = {a.str}, one_b[1] = {b.str};
    std::span<const std::string_view> left = lhs_.type == FieldType::kList ? std::span<const std::string_view>(a.list)
                                                                           : std::span<const std::string_view>(one_a);
    std::span<const std::string_view> right = rhs_.type == FieldType::kList ? std::span<const std::string_view>(b.list)
                                                                            : std::span<const std::string_view>(one_b);
    if (op_ == Op::kNe) {
      for (std::string_view l : left) {
        for (std::string_view r : right) {
          if (l == r) return false;
        }
      }
      return true;
    }
    for (std::string_view l : left) {
      for (std::string_view r : right) {
        bool m = op_ == Op::kIn || op_ == Op::kIntersects ? l == r : MatchOne(op_, l, r, false);
        if (m) return true;
      }
      if (right.empty()) break;
    }
    return false;
  }

 private:
  Source lhs_;
  Op op_;
  Source rhs_;
};

bool ParseInt(std::string_view s, int64_t* out) {
  bool neg = false;
  std::string_view d = s;
  if (d.starts_with('-') || d.starts_with('+')) {
    neg = d[0] == '-';
    d.remove_prefix(1);
  }
  int base = 10;
  if (d.starts_with("0x") || d.starts_with("0X")) {
    base = 16;
    d.remove_prefix(2);
  }
  if (d.empty()) return false;
  uint64_t u = 0;
  auto r = std::from_chars(d.data(), d.data() + d.size(), u, base);
  if (r.ec != std::errc() || r.ptr != d.data() + d.size()) return false;
  if (u > static_cast<uint64_t>(INT64_MAX) + (neg ? 1 : 0)) return false;
  *out = neg ? static_cast<int64_t>(0 - u) : static_cast<int64_t>(u);
  return true;
}

bool ParseBool(std::string_view s, bool* out) {
  if (s == "true" || s == "1") {
    *out = true;
    return true;
  }
  if (s == "false" || s == "0") {
    *out = false;
    return true;
  }
  return false;
}

// Hex digits to bytes (bcontains, bstartswith): an even number of [0-9a-fA-F].
bool Unhex(std::string_view s, std::string* out) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  if (s.size() % 2 != 0) return false;
  out->clear();
  for (size_t i = 0; i < s.size(); i += 2) {
    int hi = hex(s[i]), lo = hex(s[i + 1]);
    if (hi < 0 || lo < 0) return false;
    out->push_back(static_cast<char>(hi * 16 + lo));
  }
  return true;
}

// The three-valued fold that finds conditions driftwatch's events can never satisfy
// (CompiledCondition::inactive_reason), with what made a part certain.
enum class Tri { kUnknown, kTrue, kFalse };
struct Why {
  std::vector<std::string> event_types;                       // never produced
  std::vector<std::pair<std::string, std::string>> fields;    // never set: name, why

  void Merge(const Why& o) {
    for (const auto& t : o.event_types) {
      if (std::find(event_types.begin(), event_types.end(), t) == event_types.end()) event_types.push_back(t);
    }
    for (const auto& f : o.fields) {
      if (std::find(fields.begin(), fields.end(), f) == fields.end()) fields.push_back(f);
    }
  }
  std::string Text() const {
    std::string s;
    if (!event_types.empty()) {
      s = "event types driftwatch never sees: ";
      for (size_t i = 0; i < event_types.size(); ++i) s += (i ? ", " : "") + event_types[i];
    }
    for (const auto& [name, never] : fields) {
      if (!s.empty()) s += "; ";
      s += "field never set: " + name + " (" + never + ")";
    }
    return s;
  }
};

struct Part {
  std::unique_ptr<Evaluator> eval;
  Tri tri = Tri::kUnknown;
  Why why;  // kTrue, kFalse: what made it certain
  // The event types for which the part can be true, and those for which it is always true
  // (from evt.type checks; anything else can be true for every type and is never certain).
  EventTypeSet can = kAnyEventType, always = 0;
};

class Compiler {
 public:
  explicit Compiler(const Names& names) : names_(names) {}

  std::expected<Part, Error> Run(const Node& n) { return CompileNode(n); }

 private:
  std::unexpected<Error> Fail(size_t offset, std::string msg,
                              Error::Kind kind = Error::Kind::kOther, std::string name = {}) {
    return std::unexpected(Error{offset, macro_stack_.empty() ? "" : macro_stack_.back(),
                                 std::move(msg), kind, std::move(name)});
  }

  std::expected<Part, Error> CompileNode(const Node& n) {
    // Each use of a macro compiles its body again, so macros that use each other twice
    // over grow a condition exponentially: a few KiB of rules could take all memory.
    if (++compiled_nodes_ > kMaxCompiledNodes) {
      return Fail(n.offset, "condition too large: over " + std::to_string(kMaxCompiledNodes) +
                                " nodes once its macros are expanded");
    }
    switch (n.kind) {
      case NodeKind::kAnd:
      case NodeKind::kOr: {
        const bool is_and = n.kind == NodeKind::kAnd;
        // and: false if any part is false, true if all are; or: the other way round.
        const Tri decisive = is_and ? Tri::kFalse : Tri::kTrue;
        const Tri other = is_and ? Tri::kTrue : Tri::kFalse;
        std::vector<std::unique_ptr<Evaluator>> c;
        Part out;
        out.can = is_and ? kAnyEventType : 0;
        out.always = is_and ? kAnyEventType : 0;
        bool any_decisive = false, all_other = true;
        Why decisive_why, other_why;
        for (const auto& ch : n.children) {
          auto e = CompileNode(*ch);
          if (!e) return std::unexpected(e.error());
          if (is_and) {
            out.can &= e->can;
            out.always &= e->always;
          } else {
            out.can |= e->can;
            out.always |= e->always;
          }
          if (e->tri == decisive) {
            any_decisive = true;
            decisive_why.Merge(e->why);
          }
          if (e->tri == other) {
            other_why.Merge(e->why);
          } else {
            all_other = false;
          }
          c.push_back(std::move(e->eval));
        }
        if (any_decisive) {
          out.tri = decisive;
          out.why = std::move(decisive_why);
        } else if (all_other) {
          out.tri = other;
          out.why = std::move(other_why);
        }
        if (is_and) {
          out.eval = std::make_unique<AndEval>(std::move(c));
        } else {
          out.eval = std::make_unique<OrEval>(std::move(c));
        }
        return out;
      }
      case NodeKind::kNot: {
        auto e = CompileNode(*n.children.at(0));
        if (!e) return e;
        e->eval = std::make_unique<NotEval>(std::move(e->eval));
        if (e->tri != Tri::kUnknown) e->tri = e->tri == Tri::kTrue ? Tri::kFalse : Tri::kTrue;
        const EventTypeSet can = e->can;
        e->can = ~e->always;
        e->always = ~can;
        return e;
      }
      case NodeKind::kMacro:
        return CompileMacro(n);
      case NodeKind::kCheck:
        return CompileCheck(n);
    }
    return Fail(n.offset, "internal: unknown node");
  }

  std::expected<Part, Error> CompileMacro(const Node& n) {
    const Node* body = names_.macro ? names_.macro(n.field) : nullptr;
    if (!body) {
      if (names_.list && names_.list(n.field)) {
        return Fail(n.offset, "'" + n.field + "' is a list, not a macro: use it inside (...) after in, intersects or pmatch");
      }
      // Falco's words (rule_loader_compiler.cpp).
      return Fail(n.offset, "Undefined macro '" + n.field + "' used in filter.", Error::Kind::kUndefinedMacro,
                  n.field);
    }
    for (const std::string& m : macro_stack_) {
      if (m == n.field) {
        std::string chain;
        for (const std::string& s : macro_stack_) chain += s + " -> ";
        return Fail(n.offset, "macro recursion: " + chain + n.field);
      }
    }
    macro_stack_.push_back(n.field);
    auto e = CompileNode(*body);
    macro_stack_.pop_back();
    return e;
  }

  // The items of a list operand, lists expanded.
  std::expected<std::vector<std::string>, Error> Operands(const Node& n) {
    std::vector<std::string> out;
    if (n.list_by_name) {
      const std::vector<std::string>* l = names_.list ? names_.list(n.values[0].text) : nullptr;
      if (!l) return Fail(n.values[0].offset, "undefined list '" + n.values[0].text + "'");
      return *l;
    }
    for (const Value& v : n.values) {
      const std::vector<std::string>* l = !v.quoted && names_.list ? names_.list(v.text) : nullptr;
      if (l) {
        out.insert(out.end(), l->begin(), l->end());
      } else {
        out.push_back(v.text);
      }
    }
    return out;
  }

  static bool IsListOp(Op op) { return op == Op::kIn || op == Op::kIntersects || op == Op::kPmatch; }

  // Resolves a field with its [index] and transformers.
  std::expected<Source, Error> ResolveSource(const std::string& field, bool has_arg, const std::string& arg_text,
                                             const std::vector<Transform>& transforms, size_t offset) {
    Source s;
    s.f = FindField(field);
    if (!s.f) return Fail(offset, "unknown field '" + field + "'", Error::Kind::kUnknownField, field);
    if (has_arg) {
      if (s.f->arg == FieldArgMode::kNone) return Fail(offset, "field '" + field + "' takes no [index]");
      int64_t idx = 0;
      // A field never set takes any [key] its Falco table allows (thread.cgroup[cpu], ...).
      const bool keyed = s.f->arg == FieldArgMode::kIndexOrKey || !s.f->never.empty();
      if (keyed && !ParseInt(arg_text, &idx)) {
        if (arg_text.empty()) return Fail(offset, "empty [] after '" + field + "'");
        s.key = std::make_shared<const std::string>(arg_text);
        s.arg.key = s.key.get();
      } else if (!ParseInt(arg_text, &idx) || idx < 0 || idx > 1000000) {
        return Fail(offset, "index of '" + field + "' must be a number >= 0, not '" + arg_text + "'");
      } else {
        s.arg.index = static_cast<int>(idx);
      }
    } else if (s.f->arg == FieldArgMode::kRequired || s.f->arg == FieldArgMode::kIndexOrKey) {
      return Fail(offset, "field '" + field + "' needs an index, as " + field + "[1]");
    }
    s.type = s.f->TypeFor(s.arg);
    for (Transform t : transforms) {
      if (s.type != FieldType::kString && s.type != FieldType::kList) {
        return Fail(offset, "transformer '" + std::string(TransformName(t)) + "' needs a string or list, not a " +
                                std::string(FieldTypeName(s.type)) + " (field " + field + ")");
      }
      if (t == Transform::kLen) s.type = FieldType::kNumber;
    }
    s.transforms = transforms;
    return s;
  }

  // What the fold knows of a check: false for a field never set, evt.type certainties.
  static void FoldCheck(const Node& n, const Source& lhs, const Source* rhs,
                        const std::vector<std::string>& operands, Part* out) {
    for (const Source* s : {&lhs, rhs}) {
      if (s && !s->f->never.empty()) {
        out->tri = Tri::kFalse;
        out->why.fields.emplace_back(std::string(s->f->name), std::string(s->f->never));
      }
    }
    if (rhs || !lhs.transforms.empty() || lhs.f->name != "evt.type" || operands.empty()) return;
    // The types it can be true for. A name driftwatch does not produce stands for the one
    // bit of all such names: "= connect" can be true only there, and is never certain.
    if (n.op == Op::kEq || n.op == Op::kIn || n.op == Op::kIntersects) {
      out->can = out->always = 0;
      for (const std::string& t : operands) {
        out->can |= EventTypeBit(t);
        if (IsProducedEventType(t)) out->always |= EventTypeBit(t);
      }
    } else if (n.op == Op::kNe && IsProducedEventType(operands[0])) {
      out->can = out->always = ~EventTypeBit(operands[0]);
    }
    if (out->tri != Tri::kUnknown) return;
    for (const std::string& t : operands) {
      if (IsProducedEventType(t)) return;
    }
    if (n.op == Op::kEq || n.op == Op::kIn || n.op == Op::kIntersects) {
      out->tri = Tri::kFalse;
    } else if (n.op == Op::kNe) {
      out->tri = Tri::kTrue;
    } else {
      return;
    }
    for (const std::string& t : operands) {
      if (std::find(out->why.event_types.begin(), out->why.event_types.end(), t) == out->why.event_types.end()) {
        out->why.event_types.push_back(t);
      }
    }
  }

  std::expected<Part, Error> CompileCheck(const Node& n) {
    auto lhs = ResolveSource(n.field, n.has_field_arg, n.field_arg, n.transforms, n.offset);
    if (!lhs) return std::unexpected(lhs.error());
    const FieldType type = lhs->type;
    const std::string& fname = n.field;
    Part part;
    if (n.op == Op::kExists) {
      FoldCheck(n, *lhs, nullptr, {}, &part);
      part.eval = std::make_unique<ExistsEval>(std::move(*lhs));
      return part;
    }
    std::string what = "'" + std::string(OpName(n.op)) + "' on " + std::string(FieldTypeName(type)) + " field " + fname;
    const bool ordering = n.op == Op::kLt || n.op == Op::kLe || n.op == Op::kGt || n.op == Op::kGe;

    if (n.rhs) {
      const FieldOperand& r = *n.rhs;
      auto rhs = ResolveSource(r.field, r.has_field_arg, r.field_arg, r.transforms, r.offset);
      if (!rhs) return std::unexpected(rhs.error());
      auto kind = [](FieldType t) { return t == FieldType::kList ? FieldType::kString : t; };
      if (kind(type) != kind(rhs->type)) {
        return Fail(r.offset, what + ": cannot compare with " + std::string(FieldTypeName(rhs->type)) + " field " +
                                  r.field);
      }
      if (n.op == Op::kRegex || n.op == Op::kBContains || n.op == Op::kBStartsWith) {
        return Fail(r.offset, what + ": needs a constant value, not a field");
      }
      if ((kind(type) == FieldType::kString || type == FieldType::kIpNet) && ordering) {
        return Fail(n.offset, what + ": ordering needs a number field");
      }
      if (type == FieldType::kNumber && !ordering && n.op != Op::kEq && n.op != Op::kNe && n.op != Op::kIn &&
          n.op != Op::kIntersects) {
        return Fail(n.offset, what + " is not supported");
      }
      if (type == FieldType::kBool && n.op != Op::kEq && n.op != Op::kNe) {
        return Fail(n.offset, what + " is not supported: use = or !=");
      }
      FoldCheck(n, *lhs, &*rhs, {}, &part);
      part.eval = std::make_unique<FieldCompareEval>(std::move(*lhs), n.op, std::move(*rhs));
      return part;
    }

    // Only list operators take several operands; list names expand only inside them.
    std::vector<std::string> operands;
    if (IsListOp(n.op)) {
      auto o = Operands(n);
      if (!o) return std::unexpected(o.error());
      operands = std::move(*o);
    } else {
      operands.push_back(n.values.at(0).text);
    }
    size_t voff = n.values.empty() ? n.offset : n.values[0].offset;
    // A list's items are copied into every check that names it, once per use of the macro
    // that holds the check: they count against the same bound as nodes.
    compiled_nodes_ += operands.size();
    if (compiled_nodes_ > kMaxCompiledNodes) {
      return Fail(voff, "condition too large: over " + std::to_string(kMaxCompiledNodes) +
                            " nodes and list items once its macros are expanded");
    }

    // Falco refuses an event type its tables do not know, whatever the operator.
    if (fname == "evt.type" && n.transforms.empty()) {
      for (const std::string& t : operands) {
        if (IsKnownEventType(t)) continue;
        size_t at = voff;
        for (const Value& v : n.values) {
          if (v.text == t) at = v.offset;
        }
        return Fail(at, "unknown event type " + t, Error::Kind::kUnknownEventType, t);
      }
    }
    FoldCheck(n, *lhs, nullptr, operands, &part);

    switch (type) {
      case FieldType::kString:
      case FieldType::kList: {
        if (ordering) return Fail(n.offset, what + ": ordering needs a number field");
        if (n.op == Op::kBContains || n.op == Op::kBStartsWith) {
          std::string bytes;
          if (!Unhex(operands[0], &bytes)) {
            return Fail(voff, "bcontains and bstartswith operator support hex strings only");  // Falco's words
          }
          operands[0] = std::move(bytes);
        }
        std::vector<std::unique_ptr<re2::RE2>> regexes;
        if (n.op == Op::kRegex) {
          // Compiled once here: RE2 in POSIX syntax, as Falco's `regex`.
          RE2::Options opt(RE2::POSIX);
          opt.set_log_errors(false);
          // A rule's pattern is short; RE2's default 8 MiB per pattern, times every use of
          // a macro that holds one, let a small rule file take gigabytes (fuzzing found it).
          opt.set_max_mem(1 << 20);
          if (++regexes_ > kMaxRegexes)
            return Fail(voff, "condition too large: over " + std::to_string(kMaxRegexes) +
                                  " regex checks once its macros are expanded");
          auto re = std::make_unique<re2::RE2>(operands[0], opt);
          if (!re->ok()) return Fail(voff, "invalid regex pattern: " + re->error());
          regexes.push_back(std::move(re));
        }
        part.eval = std::make_unique<StringEval>(std::move(*lhs), n.op, std::move(operands), std::move(regexes));
        return part;
      }
      case FieldType::kNumber: {
        if (n.op != Op::kEq && n.op != Op::kNe && !ordering && n.op != Op::kIn && n.op != Op::kIntersects) {
          return Fail(n.offset, what + " is not supported");
        }
        std::vector<int64_t> nums;
        for (const std::string& s : operands) {
          int64_t v = 0;
          if (!ParseInt(s, &v)) return Fail(voff, "'" + s + "' is not a number (field " + fname + " is a number)");
          nums.push_back(v);
        }
        if (nums.empty()) {  // in (): never
          part.eval = std::make_unique<BoolEval>(std::move(*lhs), false, false);
        } else {
          part.eval = std::make_unique<NumberEval>(std::move(*lhs), n.op, std::move(nums));
        }
        return part;
      }
      case FieldType::kIpNet: {
        if (n.op != Op::kEq && n.op != Op::kNe && n.op != Op::kIn) {
          return Fail(n.offset, what + " is not supported: use =, != or in with addresses or networks");
        }
        std::vector<IpNet> nets;
        for (const std::string& s : operands) {
          // Falco's lists quote networks inside the YAML string ('"10.0.0.0/8"'): its
          // parser reads them as quoted text; list items here arrive as written.
          std::string_view t = s;
          if (t.size() >= 2 && (t.front() == '"' || t.front() == '\'') && t.back() == t.front()) {
            t = t.substr(1, t.size() - 2);
          }
          auto net = ParseIpNet(t);
          if (!net) {
            return Fail(voff, "'" + s + "' is not an IP address or network (field " + fname +
                                  " takes \"10.0.0.0/8\", \"fe80::/10\", \"1.2.3.4\")");
          }
          nets.push_back(*net);
        }
        part.eval = std::make_unique<IpNetEval>(std::move(*lhs), n.op, std::move(nets));
        return part;
      }
      case FieldType::kBool: {
        if (n.op != Op::kEq && n.op != Op::kNe && n.op != Op::kIn) {
          return Fail(n.offset, what + " is not supported: use = true or = false");
        }
        bool want_true = false, want_false = false;
        for (const std::string& s : operands) {
          bool b;
          if (!ParseBool(s, &b)) return Fail(voff, "'" + s + "' is not true or false (field " + fname + " is a bool)");
          (b ? want_true : want_false) = true;
        }
        if (n.op == Op::kNe) {
          std::swap(want_true, want_false);
        }
        part.eval = std::make_unique<BoolEval>(std::move(*lhs), want_true, want_false);
        return part;
      }
    }
    return Fail(n.offset, "internal: unknown field type");
  }

  const Names& names_;
  std::vector<std::string> macro_stack_;
  static constexpr size_t kMaxCompiledNodes = 100000;
  size_t compiled_nodes_ = 0;
  static constexpr size_t kMaxRegexes = 256;
  size_t regexes_ = 0;
};

}  // namespace

CompiledCondition::CompiledCondition() = default;
CompiledCondition::CompiledCondition(CompiledCondition&&) noexcept = default;
CompiledCondition& CompiledCondition::operator=(CompiledCondition&&) noexcept = default;
CompiledCondition::~CompiledCondition() = default;

bool CompiledCondition::Evaluate(const RuleContext& ctx) const { return root_ && root_->Eval(ctx); }

std::expected<CompiledCondition, Error> Compile(const Node& root, const Names& names) {
  Compiler c(names);
  auto e = c.Run(root);
  if (!e) return std::unexpected(e.error());
  CompiledCondition out;
  out.root_ = std::move(e->eval);
  if (e->tri == Tri::kFalse) out.inactive_reason_ = e->why.Text();
  out.event_types_ = e->can;
  return out;
}

std::expected<CompiledCondition, Error> CompileText(std::string_view text) {
  auto n = Parse(text);
  if (!n) return std::unexpected(n.error());
  return Compile(**n, Names{});
}

}  // namespace driftwatch::cond
