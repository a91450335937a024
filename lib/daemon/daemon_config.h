// daemon_config: /etc/driftwatch/*.yaml for the daemons. A config file is a flat YAML map
// whose keys are the long command-line options without the dashes (`collector:`,
// `spool-dir:`; underscores are accepted for dashes), values scalars or lists (repeatable
// options). The command line wins over the file. Plugged into CLI11 as its config reader.
//
// Thread-safety: stateless.
#pragma once

#include <CLI/CLI.hpp>

#include <memory>

namespace driftwatch {

class YamlConfig : public CLI::Config {
 public:
  std::string to_config(const CLI::App* app, bool default_also, bool write_description,
                        std::string prefix) const override;
  // Throws CLI::ConfigError (CLI11's convention) naming the line of a malformed file.
  std::vector<CLI::ConfigItem> from_config(std::istream& input) const override;
};

// Adds `--config FILE` (default `default_path`, read only if it exists) to `app`, read with
// YamlConfig.
void AddYamlConfig(CLI::App* app, const std::string& default_path);

// CLI11's parse with config-file errors worded for users. Returns -1 to go on, else the
// exit status (0 for --help/--version).
int ParseArgs(CLI::App* app, int argc, char** argv);

}  // namespace driftwatch
