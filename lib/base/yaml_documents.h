// yaml_documents: every document of a YAML stream, as YAML::LoadAll, without its endless loop;
// and where a node is, as errors name it.
//
// yaml-cpp 0.7 (Debian 12) loops forever on a stream such as "," and allocates an empty
// document per turn until the machine runs out of memory: the parser returns a document
// without consuming the token it cannot place (jbeder/yaml-cpp#1040, fixed upstream by
// #1319; Falco hit it as falcosecurity/falco#3281). A rule or policy file is user input,
// so every multi-document load goes through here.
//
// Thread-safety: a pure function.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <yaml-cpp/yaml.h>

namespace driftwatch {

// The documents of `text`. Throws YAML::Exception (with the mark of the fault) as
// YAML::LoadAll does, and YAML::ParserException where the parser stops making progress.
std::vector<YAML::Node> LoadYamlDocuments(const std::string& text);

// "name:line:column" of a mark (1-based), "name" for a null mark.
std::string YamlPlace(std::string_view name, const YAML::Mark& mark);

}  // namespace driftwatch
