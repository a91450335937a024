// driftwatch: the command-line tool. main() only wires subcommands to their code.
#include <CLI/CLI.hpp>

#include "cli/analyze.h"
#include "lib/version.h"

int main(int argc, char** argv) {
  CLI::App app{"driftwatch: container drift detection from kernel audit and fanotify"};
  app.set_version_flag("--version", driftwatch::kVersion);
  app.require_subcommand(1);

  driftwatch::cli::AnalyzeOptions analyze;
  CLI::App* an = app.add_subcommand(
      "analyze",
      "Analyze audit.log files (RAW or ENRICHED, plain, .gz or .xz; rotated logs are put in "
      "time order) and sensor captures. Prints a per-container summary, or every exec and "
      "chmod event as JSON with --events.");
  an->add_option("files", analyze.inputs, "inputs; - (or none) reads stdin");
  an->add_flag("--events", analyze.events,
               "print one JSON object per event, keyed by Falco field names");
  an->add_option("--node", analyze.node, "evt.hostname for records without a node= prefix");

  CLI11_PARSE(app, argc, argv);
  if (an->parsed()) return driftwatch::cli::RunAnalyze(analyze);
  return 2;
}
