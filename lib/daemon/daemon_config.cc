#include "lib/daemon/daemon_config.h"

#include <yaml-cpp/yaml.h>

#include <cstdio>
#include <sstream>

namespace driftwatch {

std::string YamlConfig::to_config(const CLI::App* app, bool default_also, bool write_description,
                                  std::string /*prefix*/) const {
  std::ostringstream out;
  for (const CLI::Option* opt : app->get_options()) {
    if (opt->get_lnames().empty() || opt->get_configurable() == false) continue;
    const std::string& name = opt->get_lnames()[0];
    if (name == "help" || name == "version" || name == "config" || name == "check-config") continue;
    std::vector<std::string> values = opt->reduced_results();
    if (values.empty() && default_also && !opt->get_default_str().empty())
      values = {opt->get_default_str()};
    if (values.empty()) continue;
    if (write_description && !opt->get_description().empty())
      out << "# " << opt->get_description() << "\n";
    YAML::Emitter e;
    e << YAML::BeginMap << YAML::Key << name << YAML::Value;
    if (opt->get_expected_max() > 1 || values.size() > 1) {
      e << YAML::Flow << values;
    } else {
      e << values[0];
    }
    e << YAML::EndMap;
    out << e.c_str() << "\n";
  }
  return out.str();
}

std::vector<CLI::ConfigItem> YamlConfig::from_config(std::istream& input) const {
  YAML::Node root;
  try {
    root = YAML::Load(input);
  } catch (const YAML::Exception& e) {
    throw CLI::ConfigError("config file: line " + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
  std::vector<CLI::ConfigItem> items;
  if (!root || root.IsNull()) return items;
  if (!root.IsMap()) throw CLI::ConfigError("config file: expected a map of option: value");
  for (const auto& kv : root) {
    CLI::ConfigItem item;
    item.name = kv.first.as<std::string>();
    for (char& c : item.name)
      if (c == '_') c = '-';
    const YAML::Node& v = kv.second;
    int line = v.Mark().line + 1;
    if (v.IsSequence()) {
      for (const auto& x : v) {
        if (!x.IsScalar())
          throw CLI::ConfigError("config file: line " + std::to_string(line) + ": " + item.name +
                                 ": list items must be scalars");
        item.inputs.push_back(x.as<std::string>());
      }
    } else if (v.IsScalar()) {
      item.inputs.push_back(v.as<std::string>());
    } else if (v.IsNull()) {
      continue;  // `key:` with nothing: the default
    } else {
      throw CLI::ConfigError("config file: line " + std::to_string(line) + ": " + item.name +
                             ": expected a value or a list");
    }
    items.push_back(std::move(item));
  }
  return items;
}

void AddYamlConfig(CLI::App* app, const std::string& default_path) {
  app->config_formatter(std::make_shared<YamlConfig>());
  // A misspelt key is an error, not a silently ignored setting.
  app->allow_config_extras(CLI::config_extras_mode::error);
  app->set_config("--config", default_path,
                  "YAML file of options (keys: the long option names); command-line options win",
                  false);
}

int ParseArgs(CLI::App* app, int argc, char** argv) {
  try {
    app->parse(argc, argv);
  } catch (const CLI::ConfigError& e) {
    std::string msg = e.what();
    const std::string ini = "INI was not able to parse ";
    if (msg.rfind(ini, 0) == 0) msg = "unknown option '" + msg.substr(ini.size()) + "'";
    std::fprintf(stderr, "%s: config file: %s\n", app->get_name().c_str(), msg.c_str());
    return 2;
  } catch (const CLI::ParseError& e) {
    return app->exit(e);
  }
  return -1;
}

}  // namespace driftwatch
