// rule_condition: Falco's condition language. Text is parsed to an AST that keeps source
// offsets (for diagnostics), then compiled once, against the field registry and the
// rule set's macros and lists, into a tree of small evaluators.
//
// Grammar (EBNF). Keywords and word operators need a word boundary after them; blanks
// (space, tab, CR, LF) separate tokens anywhere.
//
//     Expr        ::= OrExpr
//     OrExpr      ::= AndExpr ( 'or' AndExpr )*
//     AndExpr     ::= NotExpr ( 'and' NotExpr )*
//     NotExpr     ::= 'not' NotExpr
//                   | Primary
//     Primary     ::= '(' Expr ')'
//                   | Check
//                   | MacroName
//     Check       ::= Field UnaryOp
//                   | Field CmpOp Value
//                   | Field ListOp ListValue
//     Field       ::= FieldName ( '[' FieldArg ']' )?
//     ListValue   ::= '(' ( Item ( ',' Item )* )? ')'
//                   | ListName
//     Value       ::= QuotedStr | BareStr
//     Item        ::= QuotedStr | BareStr       (a bare Item naming a list expands to its items)
//
// Operators:
//     UnaryOp     ::= 'exists'
//     CmpOp       ::= '=' | '==' | '!=' | '<' | '<=' | '>' | '>='
//                   | 'contains' | 'icontains' | 'startswith' | 'endswith' | 'glob' | 'iglob'
//     ListOp      ::= 'in' | 'intersects' | 'pmatch'
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
// true. `in`, `intersects` and `pmatch` take a list; `in` on a list-valued field (proc.aname)
// is true when any element is in the list. String comparisons are exact bytes (icontains and
// iglob fold ASCII case), whatever the bytes: a file name that is not UTF-8 is compared as it
// is. `pmatch` is a path-prefix match: /tmp matches /tmp and /tmp/x but not /tmpx.
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
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "lib/rules/rule_context.h"

namespace driftwatch {

struct FieldInfo;

namespace cond {

enum class Op {
  kEq, kNe, kLt, kLe, kGt, kGe,
  kContains, kIContains, kStartsWith, kEndsWith, kGlob, kIGlob,
  kIn, kIntersects, kPmatch,
  kExists,
};
std::string_view OpName(Op op);

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
  // kMacro: the name in `field`.
};
using NodePtr = std::unique_ptr<Node>;

struct Error {
  // What the loader treats apart: an unknown field (skip-if-unknown-filter) and a macro
  // that is not defined (perhaps one whose own definition failed: reported once, there).
  enum class Kind { kOther, kUnknownField, kUndefinedMacro };
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

 private:
  friend std::expected<CompiledCondition, Error> Compile(const Node&, const Names&);
  std::unique_ptr<Evaluator> root_;
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
