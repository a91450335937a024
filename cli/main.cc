// driftwatch: the command-line tool. main() only wires subcommands to their code.
#include <CLI/CLI.hpp>

#include "cli/alerts.h"
#include "cli/analyze.h"
#include "cli/diff.h"
#include "cli/baseline.h"
#include "cli/inventory.h"
#include "cli/events.h"
#include "cli/rule_tests.h"
#include "cli/rules.h"
#include "cli/status.h"
#include "lib/store/default_db.h"
#include "lib/base/version.h"

int main(int argc, char** argv) {
  CLI::App app{"driftwatch: container drift detection from kernel audit and fanotify"};
  app.set_version_flag("--version", driftwatch::kVersion);
  app.require_subcommand(1);

  driftwatch::cli::AnalyzeOptions analyze;
  CLI::App* an = app.add_subcommand(
      "analyze",
      "Analyze audit.log files (RAW or ENRICHED, plain, .gz or .xz; rotated logs are put in "
      "time order) and sensor captures through the rules: prints alerts as Falco JSON, one "
      "per line; or every event as JSON with --events; or a per-container table with "
      "--summary.");
  an->add_option("files", analyze.inputs, "inputs; - (or none) reads stdin");
  an->add_flag("--events", analyze.events,
               "print one JSON object per event, keyed by Falco field names");
  an->add_flag("--summary", analyze.summary, "print a per-container table of execs and writes");
  an->add_option("--rules", analyze.rules,
                 "rule file, loaded in the order given after the shipped rule files "
                 "(repeatable)")
      ->allow_extra_args(false);
  an->add_flag("--no-shipped-rules", analyze.no_shipped_rules,
               "load only the --rules files, not the shipped macros and rules before them");
  an->add_option("--approved-images", analyze.approved_images,
                 "approved images: a list of image@sha256 references or Kubernetes YAML "
                 "(repeatable)")
      ->allow_extra_args(false);
  an->add_option("--node", analyze.node, "evt.hostname for records without a node= prefix");

  driftwatch::cli::DiffOptions diff;
  CLI::App* df = app.add_subcommand(
      "diff",
      "List a container's filesystem drift (added, modified, deleted files) from its overlay "
      "upper layer. CONTAINER is a full id, a unique prefix of one, or a container name: a "
      "CRI NAME, POD/NAME or NAMESPACE/POD/NAME, or a Docker container's NAME.");
  df->add_option("container", diff.container, "container id, unique id prefix or name");
  df->add_option("--cri-endpoint", diff.cri_endpoints,
                 "CRI socket for name lookup (repeatable; default: the usual sockets)")
      ->allow_extra_args(false);
  df->add_option("--docker-endpoint", diff.docker_endpoint,
                 "Docker (or Podman) socket for name lookup (default: /var/run/docker.sock "
                 "when it exists)");
  df->add_flag("--include-mount-points", diff.include_mount_points,
               "also list mount targets the runtime created in the upper layer (/run, "
               "/etc/hostname, ...)");
  df->add_flag("--json", diff.json, "one JSON object per line instead of the table");
  df->add_option("--hash-max", diff.hash_max, "sha256 of executables up to BYTES (default 64 MiB)");
  df->add_option("--pid", diff.pid, "use the overlay at the root of process PID");
  df->add_option("--upperdir", diff.upperdir, "offline: the upper layer directory");
  df->add_option("--lowerdir", diff.lowerdir, "offline: lower layers, DIR[:DIR...], topmost first");

  driftwatch::cli::EventsOptions events;
  CLI::App* ev = app.add_subcommand(
      "events",
      "Print the events a driftwatch-collector stored, one JSON object per line (as analyze "
      "--events), oldest first. Opens the database read-only: works while the collector runs.");
  ev->add_option("--db", events.db,
                 "collector database: a SQLite file, or the store several collectors share "
                 "(postgresql://USER:PASSWORD@HOST:PORT/DB?sslmode=...)")
      ->capture_default_str();
  ev->add_option("--node", events.node, "only this node");
  ev->add_option("--container", events.container, "only this container (full id or prefix)");
  ev->add_option("--kind", events.kind, "exec, chmod, write, container, status, prevented or network");
  ev->add_option("--since", events.since, "event time from: ISO 8601 or relative (10m, 2h, 7d)");
  ev->add_option("--until", events.until, "event time before: ISO 8601 or relative");
  ev->add_option("--limit", events.limit, "only the newest N matches");

  driftwatch::cli::StatusOptions status;
  CLI::App* st = app.add_subcommand(
      "status",
      "This node's sensor: audit mode and settings, fanotify mode, watched containers, spool "
      "depth, collector connection and loss counters (from its /status endpoint). With "
      "--collector: the fleet as the collector sees it, one line per node. With --db: the "
      "fleet as the store records it, whichever collectors share it (no collector asked).");
  CLI::Option* st_sensor =
      st->add_option("--sensor", status.sensor, "the sensor's --metrics-address")->capture_default_str();
  CLI::Option* st_collector =
      st->add_option("--collector", status.collector,
                     std::string("the collector's --metrics-address instead (default ") +
                         driftwatch::cli::kCollectorStatusAddress +
                         "): per node streams, last seen, events stored and missing, losses, "
                         "blind windows, detection lag; health and detection totals")
          ->expected(0, 1)
          ->excludes(st_sensor);
  CLI::Option* st_db =
      st->add_option("--db", status.db,
                     std::string("the collector database instead (default ") +
                         driftwatch::kDefaultCollectorDb +
                         "; or postgresql://USER:PASSWORD@HOST:PORT/DB?sslmode=...): per node "
                         "streams and last seen as recorded, events stored and missing, "
                         "detection lag; on PostgreSQL the collector evaluating each node and "
                         "the live collectors")
          ->expected(0, 1)
          ->excludes(st_sensor)
          ->excludes(st_collector);
  st->add_flag("--json", status.json,
               "print the sensor's (or collector's) status document as is; with --db, one JSON "
               "document with a nodes array");

  driftwatch::cli::AlertsOptions alerts;
  CLI::App* al = app.add_subcommand(
      "alerts",
      "Print the alerts a driftwatch-collector stored, oldest first: one Falco JSON object per "
      "line (as falcosidekick takes them), or a table. Opens the database read-only.");
  al->add_option("--db", alerts.db,
                 "collector database: a SQLite file, or the store several collectors share "
                 "(postgresql://USER:PASSWORD@HOST:PORT/DB?sslmode=...)")
      ->capture_default_str();
  al->add_option("--node", alerts.node, "only this node");
  al->add_option("--container", alerts.container, "only this container (full id or prefix)");
  al->add_option("--pod", alerts.pod, "only this pod (NAME or NAMESPACE/NAME)");
  al->add_option("--rule", alerts.rule, "only this rule (exact name)");
  al->add_option("--priority", alerts.priority,
                 "this priority or more severe (emergency, alert, critical, error, warning, "
                 "notice, informational, debug)");
  al->add_option("--since", alerts.since, "alert time from: ISO 8601 or relative (10m, 2h, 7d)");
  al->add_option("--until", alerts.until, "alert time before: ISO 8601 or relative");
  al->add_option("--limit", alerts.limit, "only the newest N matches");
  al->add_flag("--table", alerts.table, "a readable table instead of JSON lines");
  al->add_flag("--allowed", alerts.allowed,
               "the allowed-drift summary instead: matches a rule exception or the drift "
               "policy allowed, counted per day, workload, rule and file");

  driftwatch::cli::InventoryOptions inventory;
  CLI::App* inv = app.add_subcommand(
      "inventory",
      "Print the drift inventories a driftwatch-collector stored: after drift alerts on a "
      "container it asks the container's sensor which files it added, changed and deleted "
      "(as `driftwatch diff`). Without CONTAINER: one line per stored inventory.");
  inv->add_option("container", inventory.container,
                  "container id or prefix, NAME, POD/NAME or NAMESPACE/POD/NAME: its newest "
                  "inventory");
  inv->add_option("--db", inventory.db,
                  "collector database: a SQLite file, or the store several collectors share "
                  "(postgresql://USER:PASSWORD@HOST:PORT/DB?sslmode=...)")
      ->capture_default_str();
  inv->add_option("--node", inventory.node, "only this node");
  inv->add_option("--pod", inventory.pod, "only this pod (NAME or NAMESPACE/NAME)");
  inv->add_flag("--all", inventory.all, "every stored inventory that matches, oldest first");
  inv->add_flag("--json", inventory.json,
                "one JSON object per inventory (entries as `driftwatch diff --json`)");

  driftwatch::cli::BaselineOptions baseline;
  CLI::App* bl = app.add_subcommand(
      "baseline",
      "The baselines a driftwatch-collector learned: per image and container name, the "
      "processes, connection destinations, listening ports and sensitive reads of its "
      "containers while it "
      "learned, and what they did since that was not in it (alerted once each). A running "
      "collector loads edits (import, reset, enforce) within seconds.");
  bl->require_subcommand(1);
  auto baseline_cmd = [&](const char* name, const char* what, bool takes_image) {
    CLI::App* c = bl->add_subcommand(name, what);
    c->add_option("--db", baseline.db, "collector database")->capture_default_str();
    if (takes_image) {
      c->add_option("image", baseline.image,
                    "the image: its digest (sha256:...), a prefix of it, or part of its name")
          ->required();
      c->add_option("--container", baseline.container, "only the baseline of this container name");
    }
    c->callback([&baseline, name] { baseline.action = name; });
    return c;
  };
  baseline_cmd("list", "one line per baseline: image, container, state, items", false)
      ->add_flag("--json", baseline.json, "one JSON object per baseline");
  baseline_cmd("show", "every item of the matching baselines, with where it was first seen", true)
      ->add_flag("--json", baseline.json, "one JSON object per item");
  baseline_cmd("export",
               "one baseline as a Falco rules file of lists (dw_baseline_<container>_processes, "
               "_connections, _listeners, _reads), for Falco rules or `baseline import`",
               true)
      ->add_option("-o,--output", baseline.file, "write to FILE instead of stdout");
  CLI::App* bl_import = baseline_cmd(
      "import",
      "replace a baseline's items by those of an exported file (edited or not) and make it "
      "enforcing; image and container from the file's header unless given",
      false);
  bl_import->add_option("file", baseline.file, "the exported file")->required();
  bl_import->add_option("--image", baseline.image, "the image to import into");
  bl_import->add_option("--container", baseline.container, "the container name to import into");
  baseline_cmd("reset", "forget a baseline: it learns again from its next event", true)
      ->add_flag("--all", baseline.all, "every baseline that matches, not exactly one");
  baseline_cmd("enforce", "end a baseline's learning now", true)
      ->add_flag("--all", baseline.all, "every baseline that matches, not exactly one");

  driftwatch::cli::RulesCheckOptions rules_check;
  CLI::App* ru = app.add_subcommand("rules", "Falco-syntax rule files: check them, test them, list fields.");
  ru->require_subcommand(1);
  CLI::App* rc = ru->add_subcommand(
      "check",
      "Load the shipped macros and rules, then FILEs, as the collector does. Prints the rules "
      "loaded, or every error (file:line:column, rule, reason) and exits 1.");
  rc->add_option("--rules", rules_check.rules,
                 "rule file (repeatable), as analyze and the collector take it; loaded in the "
                 "order given, before the FILEs");
  rc->add_option("files", rules_check.files, "rule files, loaded in order");
  rc->add_flag("--no-shipped-rules", rules_check.no_shipped_rules,
               "load only FILEs, not the shipped macros and rules before them");
  rc->add_flag("-q,--quiet", rules_check.quiet, "print only errors and the summary");
  rc->add_flag("-v,--verbose", rules_check.verbose, "name every inactive rule in the summary");
  CLI::App* rf = ru->add_subcommand("fields", "List the fields conditions and outputs may use.");
  bool fields_markdown = false;
  rf->add_flag("--markdown", fields_markdown,
               "print docs/fields.md: every field with its type, the event kinds whose JSON "
               "prints it, and its meaning");

  driftwatch::cli::RulesTestOptions rules_test;
  CLI::App* rt = ru->add_subcommand(
      "test",
      "Run events (JSON lines, as analyze --events prints them, or written by hand) through "
      "the rules as the collector does, and check the alerts against the expectations of "
      "each SPEC (YAML: rule files, events files, test cases). Prints PASS or FAIL per case; "
      "exits 0 when all pass, 1 when one fails, 2 on bad input. Or, without a spec: "
      "RULES... --events FILE --expect RULE[=COUNT]...");
  rt->add_option("files", rules_test.files, "specs; with --events, rule files");
  rt->add_option("--rules", rules_test.rules,
                 "rule file (repeatable), loaded after the shipped files and before the "
                 "spec's")
      ->allow_extra_args(false);
  rt->add_flag("--no-shipped-rules", rules_test.no_shipped_rules,
               "load only --rules and the spec's files, not the shipped macros and rules");
  rt->add_option("--events", rules_test.events,
                 "the spec-less form: events file (JSON lines; repeatable)")
      ->allow_extra_args(false);
  rt->add_option("--expect", rules_test.expect,
                 "the spec-less form: RULE fires COUNT times (default 1; 0: never) over all "
                 "the events (repeatable)")
      ->allow_extra_args(false);

  CLI11_PARSE(app, argc, argv);
  if (al->parsed()) return driftwatch::cli::RunAlerts(alerts);
  if (inv->parsed()) return driftwatch::cli::RunInventory(inventory);
  if (bl->parsed()) return driftwatch::cli::RunBaseline(baseline);
  if (rc->parsed()) return driftwatch::cli::RunRulesCheck(rules_check);
  if (rf->parsed()) return driftwatch::cli::RunRulesFields(fields_markdown);
  if (rt->parsed()) return driftwatch::cli::RunRulesTest(rules_test);
  if (st->parsed()) {
    if (st_collector->count() > 0 && status.collector.empty())
      status.collector = driftwatch::cli::kCollectorStatusAddress;
    if (st_db->count() > 0 && status.db.empty()) status.db = driftwatch::kDefaultCollectorDb;
    return driftwatch::cli::RunStatus(status);
  }
  if (an->parsed()) return driftwatch::cli::RunAnalyze(analyze);
  if (df->parsed()) return driftwatch::cli::RunDiff(diff);
  if (ev->parsed()) return driftwatch::cli::RunEvents(events);
  return 2;
}
