#include "lib/base/yaml_documents.h"

#include <sstream>

#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/parser.h>

namespace driftwatch {
namespace {

// Records where each document starts; builds nothing.
class DocumentStarts final : public YAML::EventHandler {
 public:
  YAML::Mark start = YAML::Mark::null_mark();

  void OnDocumentStart(const YAML::Mark& mark) override { start = mark; }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

bool SameMark(const YAML::Mark& a, const YAML::Mark& b) {
  return a.pos == b.pos && a.line == b.line && a.column == b.column;
}

}  // namespace

std::vector<YAML::Node> LoadYamlDocuments(const std::string& text) try {
  // A first pass that only walks the events: each document must start past the one before
  // it. A document that starts where the last one did is the parser stuck on a token.
  {
    std::istringstream in(text);
    YAML::Parser parser(in);
    DocumentStarts starts;
    YAML::Mark last = YAML::Mark::null_mark();
    while (parser.HandleNextDocument(starts)) {
      if (!last.is_null() && SameMark(starts.start, last)) {
        throw YAML::ParserException(starts.start, "a token that cannot start a document "
                                                  "(a ',' outside [ ] or { }?)");
      }
      last = starts.start;
    }
  }
  return YAML::LoadAll(text);
} catch (const YAML::DeepRecursion& e) {
  // yaml-cpp says "bad file" for its nesting bound.
  throw YAML::ParserException(e.mark, "nested too deeply (" + std::to_string(e.depth()) +
                                          " levels reached)");
}

std::string YamlPlace(std::string_view name, const YAML::Mark& mark) {
  if (mark.is_null()) return std::string(name);
  return std::string(name) + ":" + std::to_string(mark.line + 1) + ":" +
         std::to_string(mark.column + 1);
}

}  // namespace driftwatch
