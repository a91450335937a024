#include "lib/rules/rule_condition.h"

#include <algorithm>
#include <charconv>
#include <unordered_set>

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
        for (std::string_view w : {"exists", "contains", "icontains", "startswith", "endswith", "glob", "iglob", "in",
                                   "intersects", "pmatch"}) {
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
                    {"icontains", Op::kIContains},   {"startswith", Op::kStartsWith},
                    {"endswith", Op::kEndsWith},     {"glob", Op::kGlob},
                    {"iglob", Op::kIGlob},           {"intersects", Op::kIntersects},
                    {"in", Op::kIn},                 {"pmatch", Op::kPmatch}};
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
        for (std::string_view w : {"bcontains", "bstartswith", "regex"}) {
          if (AtWord(w)) {
            Fail(at, "operator '" + std::string(w) + "' is not supported");
            return false;
          }
        }
        if (pos_ >= s_.size()) {
          Fail(at, "unexpected end of condition: expected an operator after " + n->field);
        } else {
          Fail(at, "expected an operator after " + n->field + ", found '" + std::string(Peek(16)) + "'");
        }
        return false;
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

// One scratch value per thread: a check extracts, compares and is done before the next
// check runs, so they can share it.
FieldValue& Scratch() {
  thread_local FieldValue v;
  v.Clear();
  return v;
}

std::string& JoinScratch() {
  thread_local std::string s;
  s.clear();
  return s;
}

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
  ExistsEval(const FieldInfo* f, FieldArg a) : f_(f), a_(a) {}
  bool Eval(const RuleContext& ctx) const override {
    FieldValue& v = Scratch();
    if (!f_->Extract(ctx, a_, &v)) return false;
    // A list field with no element (proc.args of a bare command) still exists.
    return true;
  }

 private:
  const FieldInfo* f_;
  FieldArg a_;
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

// Compares one string (or each element of a list field) with the operand(s).
class StringEval final : public Evaluator {
 public:
  StringEval(const FieldInfo* f, FieldArg a, FieldType type, Op op, std::vector<std::string> operands)
      : f_(f), a_(a), type_(type), op_(op), set_(op == Op::kIn || op == Op::kIntersects ? operands : std::vector<std::string>{}) {
    if (op == Op::kIContains || op == Op::kIGlob) {
      for (std::string& s : operands) {
        for (char& c : s) c = Lower(c);
      }
    }
    operands_ = std::move(operands);
  }

  bool Eval(const RuleContext& ctx) const override {
    FieldValue& v = Scratch();
    if (!f_->Extract(ctx, a_, &v)) return false;
    if (type_ != FieldType::kList) return Match(v.str);
    bool set_op = op_ == Op::kIn || op_ == Op::kIntersects;
    if (f_->list_joins_for_strings && !set_op) {
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
      case Op::kEq: return s == operands_[0];
      case Op::kNe: return s != operands_[0];
      case Op::kContains: return s.find(operands_[0]) != std::string_view::npos;
      case Op::kIContains: return IContains(s, operands_[0]);
      case Op::kStartsWith: return s.starts_with(operands_[0]);
      case Op::kEndsWith: return s.ends_with(operands_[0]);
      case Op::kGlob: return GlobMatch(operands_[0], s, false);
      case Op::kIGlob: return GlobMatch(operands_[0], s, true);
      case Op::kIn:
      case Op::kIntersects: return set_.Contains(s);
      case Op::kPmatch:
        for (const std::string& p : operands_) {
          if (PathPrefixMatch(p, s)) return true;
        }
        return false;
      default: return false;
    }
  }

  const FieldInfo* f_;
  FieldArg a_;
  FieldType type_;
  Op op_;
  std::vector<std::string> operands_;
  StringSet set_;
};

class NumberEval final : public Evaluator {
 public:
  NumberEval(const FieldInfo* f, FieldArg a, Op op, std::vector<int64_t> operands)
      : f_(f), a_(a), op_(op), operands_(std::move(operands)) {
    std::sort(operands_.begin(), operands_.end());
  }
  bool Eval(const RuleContext& ctx) const override {
    FieldValue& v = Scratch();
    if (!f_->Extract(ctx, a_, &v)) return false;
    int64_t n = v.num;
    switch (op_) {
      case Op::kEq: return n == operands_[0];
      case Op::kNe: return n != operands_[0];
      case Op::kLt: return n < operands_[0];
      case Op::kLe: return n <= operands_[0];
      case Op::kGt: return n > operands_[0];
      case Op::kGe: return n >= operands_[0];
      case Op::kIn:
      case Op::kIntersects: return std::binary_search(operands_.begin(), operands_.end(), n);
      default: return false;
    }
  }

 private:
  const FieldInfo* f_;
  FieldArg a_;
  Op op_;
  std::vector<int64_t> operands_;
};

class BoolEval final : public Evaluator {
 public:
  BoolEval(const FieldInfo* f, FieldArg a, bool want_true, bool want_false)
      : f_(f), a_(a), want_true_(want_true), want_false_(want_false) {}
  bool Eval(const RuleContext& ctx) const override {
    FieldValue& v = Scratch();
    if (!f_->Extract(ctx, a_, &v)) return false;
    return v.boolean ? want_true_ : want_false_;
  }

 private:
  const FieldInfo* f_;
  FieldArg a_;
  bool want_true_, want_false_;
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

class Compiler {
 public:
  explicit Compiler(const Names& names) : names_(names) {}

  std::expected<std::unique_ptr<Evaluator>, Error> Run(const Node& n) { return CompileNode(n); }

 private:
  std::unexpected<Error> Fail(size_t offset, std::string msg,
                              Error::Kind kind = Error::Kind::kOther, std::string name = {}) {
    return std::unexpected(Error{offset, macro_stack_.empty() ? "" : macro_stack_.back(),
                                 std::move(msg), kind, std::move(name)});
  }

  std::expected<std::unique_ptr<Evaluator>, Error> CompileNode(const Node& n) {
    switch (n.kind) {
      case NodeKind::kAnd:
      case NodeKind::kOr: {
        std::vector<std::unique_ptr<Evaluator>> c;
        for (const auto& ch : n.children) {
          auto e = CompileNode(*ch);
          if (!e) return std::unexpected(e.error());
          c.push_back(std::move(*e));
        }
        if (n.kind == NodeKind::kAnd) return std::make_unique<AndEval>(std::move(c));
        return std::make_unique<OrEval>(std::move(c));
      }
      case NodeKind::kNot: {
        auto e = CompileNode(*n.children.at(0));
        if (!e) return e;
        return std::make_unique<NotEval>(std::move(*e));
      }
      case NodeKind::kMacro:
        return CompileMacro(n);
      case NodeKind::kCheck:
        return CompileCheck(n);
    }
    return Fail(n.offset, "internal: unknown node");
  }

  std::expected<std::unique_ptr<Evaluator>, Error> CompileMacro(const Node& n) {
    const Node* body = names_.macro ? names_.macro(n.field) : nullptr;
    if (!body) {
      if (names_.list && names_.list(n.field)) {
        return Fail(n.offset, "'" + n.field + "' is a list, not a macro: use it inside (...) after in, intersects or pmatch");
      }
      return Fail(n.offset, "undefined macro '" + n.field + "'", Error::Kind::kUndefinedMacro,
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

  std::expected<std::unique_ptr<Evaluator>, Error> CompileCheck(const Node& n) {
    const FieldInfo* f = FindField(n.field);
    if (!f) {
      return Fail(n.offset, "unknown field '" + n.field + "'", Error::Kind::kUnknownField,
                  n.field);
    }
    FieldArg arg;
    if (n.has_field_arg) {
      if (f->arg == FieldArgMode::kNone) return Fail(n.offset, "field '" + n.field + "' takes no [index]");
      int64_t idx = 0;
      if (!ParseInt(n.field_arg, &idx) || idx < 0 || idx > 1000000) {
        return Fail(n.offset, "index of '" + n.field + "' must be a number >= 0, not '" + n.field_arg + "'");
      }
      arg.index = static_cast<int>(idx);
    } else if (f->arg == FieldArgMode::kRequired) {
      return Fail(n.offset, "field '" + n.field + "' needs an index, as " + n.field + "[1]");
    }
    FieldType type = f->TypeFor(arg);
    if (n.op == Op::kExists) return std::make_unique<ExistsEval>(f, arg);

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
    std::string what = "'" + std::string(OpName(n.op)) + "' on " + std::string(FieldTypeName(type)) + " field " + n.field;

    switch (type) {
      case FieldType::kString:
      case FieldType::kList: {
        if (n.op == Op::kLt || n.op == Op::kLe || n.op == Op::kGt || n.op == Op::kGe) {
          return Fail(n.offset, what + ": ordering needs a number field");
        }
        return std::make_unique<StringEval>(f, arg, type, n.op, std::move(operands));
      }
      case FieldType::kNumber: {
        if (n.op != Op::kEq && n.op != Op::kNe && n.op != Op::kLt && n.op != Op::kLe && n.op != Op::kGt &&
            n.op != Op::kGe && n.op != Op::kIn && n.op != Op::kIntersects) {
          return Fail(n.offset, what + " is not supported");
        }
        std::vector<int64_t> nums;
        for (const std::string& s : operands) {
          int64_t v = 0;
          if (!ParseInt(s, &v)) return Fail(voff, "'" + s + "' is not a number (field " + n.field + " is a number)");
          nums.push_back(v);
        }
        if (nums.empty()) return std::make_unique<BoolEval>(f, arg, false, false);  // in (): never
        return std::make_unique<NumberEval>(f, arg, n.op, std::move(nums));
      }
      case FieldType::kBool: {
        if (n.op != Op::kEq && n.op != Op::kNe && n.op != Op::kIn) {
          return Fail(n.offset, what + " is not supported: use = true or = false");
        }
        bool want_true = false, want_false = false;
        for (const std::string& s : operands) {
          bool b;
          if (!ParseBool(s, &b)) return Fail(voff, "'" + s + "' is not true or false (field " + n.field + " is a bool)");
          (b ? want_true : want_false) = true;
        }
        if (n.op == Op::kNe) {
          std::swap(want_true, want_false);
        }
        return std::make_unique<BoolEval>(f, arg, want_true, want_false);
      }
    }
    return Fail(n.offset, "internal: unknown field type");
  }

  const Names& names_;
  std::vector<std::string> macro_stack_;
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
  out.root_ = std::move(*e);
  return out;
}

std::expected<CompiledCondition, Error> CompileText(std::string_view text) {
  auto n = Parse(text);
  if (!n) return std::unexpected(n.error());
  return Compile(**n, Names{});
}

}  // namespace driftwatch::cond
