// rule_condition: Falco's condition language. Text is parsed to an AST that keeps source
// offsets (for diagnostics), then compiled once, against the field registry and the
// rule set's macros and lists, into a tree of small evaluators.
//
// Grammar (EBNF): that of falcosecurity/libs 0.22 (Falco engine 0.57; see its
// userspace/libsinsp/filter/parser.h). Keywords and word operators need a word boundary
// after them; blanks (space, tab, CR, LF) separate tokens anywhere.
//
//     Expr        ::= OrExpr
//     OrExpr      ::= AndExpr ( 'or' AndExpr )*
//     AndExpr     ::= NotExpr ( 'and' NotExpr )*
//     NotExpr     ::= 'not' NotExpr
//                   | Primary
//     Primary     ::= '(' Expr ')'
//                   | Check
//                   | MacroName
//     Check       ::= Operand UnaryOp
//                   | Operand CmpOp ( Value | FieldRhs )
//                   | Operand ListOp ( ListValue | FieldRhs )
//     Operand     ::= Field | Transformer
//     Transformer ::= TransformName '(' Operand ')'
//     FieldRhs    ::= 'val(' Field ')' | Transformer      (a compare with another field)
//     Field       ::= FieldName ( '[' FieldArg ']' )?
//     ListValue   ::= '(' ( Item ( ',' Item )* )? ')'
//                   | ListName
//     Value       ::= QuotedStr | BareStr
//     Item        ::= QuotedStr | BareStr       (a bare Item naming a list expands to its items)
//
// Operators and transformers:
//     UnaryOp     ::= 'exists'
//     CmpOp       ::= '=' | '==' | '!=' | '<' | '<=' | '>' | '>='
//                   | 'contains' | 'icontains' | 'bcontains' | 'startswith' | 'bstartswith'
//                   | 'endswith' | 'glob' | 'iglob' | 'regex'
//     ListOp      ::= 'in' | 'intersects' | 'pmatch'
//     TransformName ::= 'tolower' | 'toupper' | 'b64' | 'basename' | 'len'
//
// Tokens (regular expressions):
//     MacroName   ::= [a-zA-Z_][a-zA-Z0-9_]*          (not 'and', 'or', 'not')
//     ListName    ::= [a-zA-Z_][a-zA-Z0-9_]*
//     FieldName   ::= [a-zA-Z_][a-zA-Z0-9_]*(\.[a-zA-Z0-9_]+)+
//     FieldArg    ::= [^\]]+                           (a number for the fields we have)
//     QuotedStr   ::= "(\\.|[^"\\])*" | '(\\.|[^'\\])*'   (escapes: see Semantics)
//     BareStr     ::= [^ \t\r\n(),="']+
//
// Semantics: a field that is unset makes every check false except that `not F exists` is
// true (an unset val() field on the right makes the check false too). `in`, `intersects`
// and `pmatch` take a list; `in` on a list-valued field (proc.aname) is true when any
// element is in the list. String comparisons are exact bytes (icontains and iglob fold
// ASCII case), whatever the bytes: a file name that is not UTF-8 is compared as it is.
// `pmatch` is a path-prefix match: /tmp matches /tmp and /tmp/x but not /tmpx. `regex` is
// RE2 in POSIX syntax matching the whole value, as Falco's; the pattern is compiled once,
// at load, and a bad one is a load error. `bcontains` and `bstartswith` take hex digits
// (`bcontains 7f454c46`) and compare those bytes. Transformers: tolower and toupper fold
// ASCII case, b64 decodes base64 (a value that does not decode is unset), basename keeps
// what follows the last '/', len is a string's length or a list's number of elements (a
// number); the string ones apply to each element of a list field. Values compared with
// evt.type must be event types Falco knows (lib/rules/event_types.h): Falco refuses
// others ("unknown event type").
//
// Escapes in a quoted string: \" in "...", \' in '...', \\ for a backslash, and \xHH (two
// hex digits) for the byte 0xHH, so that a rule can name any byte, including those a YAML
// file cannot hold (a file name that is not UTF-8: fd.name = "/tmp/\xffx"). Falco has the
// first three and refuses \x; any other backslash is kept as it is. Bare strings have no
// escapes. Quoted list items and exception values are unescaped the same way.
//
// Thread-safety: parsing and compiling are pure functions. A CompiledCondition is
// immutable; Evaluate may run on many threads at once (its scratch space is thread_local).
#pragma once

#include <expected>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "lib/rules/event_types.h"
#include "lib/rules/rule_context.h"

namespace driftwatch {

struct FieldInfo;

namespace cond {

enum class Op {
  kEq, kNe, kLt, kLe, kGt, kGe,
  kContains, kIContains, kBContains, kStartsWith, kBStartsWith, kEndsWith, kGlob, kIGlob,
  kRegex,
  kIn, kIntersects, kPmatch,
  kExists,
};
std::string_view OpName(Op op);

// Falco's field transformers (libs 0.22), applied to a field's value before the compare.
enum class Transform { kToLower, kToUpper, kB64, kBasename, kLen };
std::string_view TransformName(Transform t);

// A field as the right-hand side of a check reads it: val(field) or transformers.
struct FieldOperand {
  std::string field;
  std::string field_arg;              // the text in [...], empty if none
  bool has_field_arg = false;
  std::vector<Transform> transforms;  // in the order they apply: innermost first
  size_t offset = 0;
};

struct Value {
  std::string text;    // unquoted
  bool quoted = false; // a quoted item never names a list
  size_t offset = 0;   // in the condition text
};

enum class NodeKind { kAnd, kOr, kNot, kCheck, kMacro };

struct Node {
  NodeKind kind = NodeKind::kCheck;
  size_t offset = 0;                          // where the node starts in the text
  std::vector<std::unique_ptr<Node>> children;  // kAnd, kOr: two or more; kNot: one
  // kCheck
  std::string field;
  std::string field_arg;                      // the text in [...], empty if none
  bool has_field_arg = false;
  Op op = Op::kEq;
  std::vector<Value> values;                  // kExists: none; CmpOp: one; ListOp: the items
  bool list_by_name = false;                  // `in NAME` without parentheses
  std::vector<Transform> transforms;          // on `field`, innermost first
  std::optional<FieldOperand> rhs;            // `val(field)` or a transformer; then no values
  // kMacro: the name in `field`.
};
using NodePtr = std::unique_ptr<Node>;

struct Error {
  // What the loader treats apart: an unknown field (skip-if-unknown-filter) and a macro
  // that is not defined (perhaps one whose own definition failed: reported once, there).
  // kUnknownEventType: an evt.type value Falco does not know (skip-if-unknown-filter skips
  // such a rule too, as Falco does).
  enum class Kind { kOther, kUnknownField, kUndefinedMacro, kUnknownEventType };
  size_t offset = 0;    // in the condition text (of `macro` when that is set)
  std::string macro;    // the error lies in this macro's condition; empty: in the rule's own
  std::string message;
  Kind kind = Kind::kOther;
  std::string name;     // kUnknownField: the field; kUndefinedMacro: the macro
};

// The text between the quotes of a quoted string with its escapes undone (see Semantics).
// Error: the offset in `body` of a bad escape, and why.
[[nodiscard]] std::expected<std::string, std::pair<size_t, std::string>> UnescapeQuoted(
    std::string_view body, char quote);

// Parses a condition. Errors name what was expected at the offset where parsing stopped.
[[nodiscard]] std::expected<NodePtr, Error> Parse(std::string_view text);

// 1-based line and column of a byte offset in text.
void LineColumn(std::string_view text, size_t offset, int* line, int* column);

// What a condition may refer to besides fields.
struct Names {
  // The parsed condition of a macro, or null when no macro has that name.
  std::function<const Node*(std::string_view)> macro;
  // The items of a list, its own list references already expanded, or null.
  std::function<const std::vector<std::string>*(std::string_view)> list;
};

class Evaluator;  // rule_condition.cc

// A condition compiled once at load. Thread-safety: immutable; Evaluate is safe from any
// number of threads.
class CompiledCondition {
 public:
  CompiledCondition();
  CompiledCondition(CompiledCondition&&) noexcept;
  CompiledCondition& operator=(CompiledCondition&&) noexcept;
  ~CompiledCondition();

  // REQUIRES: ctx.event != nullptr.
  bool Evaluate(const RuleContext& ctx) const;

  // Not empty: the condition can never be true on driftwatch's events, and why ("event
  // types driftwatch never sees: connect, accept4"; "field never set: fd.sip (...)").
  // Found by a three-valued fold (true, false, unknown) over the compiled condition: a
  // check of evt.type =/in names driftwatch never produces is false (!= such a name is
  // true); any check, `exists` included, of a field whose FieldInfo::never is set is false
  // (an unset field fails every check); `not` flips true and false; and/or fold as usual;
  // anything else is unknown. Only a condition that folds to false has a reason.
  const std::string& inactive_reason() const { return inactive_reason_; }

  // The event types for which the condition can be true (EventTypeBit): for the others it is
  // false without being evaluated. From its evt.type checks: =, in and intersects allow their
  // names, != all but its name; and takes what all parts allow, or what any part does; not
  // allows the types for which its part is not always true.
  EventTypeSet event_types() const { return event_types_; }

 private:
  friend std::expected<CompiledCondition, Error> Compile(const Node&, const Names&);
  std::unique_ptr<Evaluator> root_;
  std::string inactive_reason_;
  EventTypeSet event_types_ = kAnyEventType;
};

// Resolves fields, macros (expanded in place; recursion refused) and lists, checks each
// operator against its field's type and converts values (numbers, booleans) once.
[[nodiscard]] std::expected<CompiledCondition, Error> Compile(const Node& root,
                                                              const Names& names);

// Convenience for tests: parse and compile with no macros or lists.
[[nodiscard]] std::expected<CompiledCondition, Error> CompileText(std::string_view text);

// Helpers exposed for tests.
bool GlobMatch(std::string_view pattern, std::string_view s, bool fold_case);
bool PathPrefixMatch(std::string_view prefix, std::string_view path);

}  // namespace cond
}  // namespace driftwatch
