// sensor/counters: one reading feeds the status event, /metrics and /status. Built from the
// stages that run without the kernel's audit and fanotify (the output and a spool); the
// privileged tests read the others from a running sensor.
#include "sensor/counters.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <set>

#include "sensor/enrich.h"
#include "sensor/output.h"
#include "sensor/spool.h"

namespace driftwatch::sensor {
namespace {

TEST(SensorCounters, OneReadingThreeReports) {
  char dir[] = "/tmp/dw-counters-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  SpoolOptions so;
  so.dir = std::string(dir) + "/spool";
  auto spool = Spool::Open(so);
  ASSERT_TRUE(spool) << spool.error();
  v1::EventId id;
  id.set_node("n1");
  Output output(id, nullptr);
  output.SetSpool(spool->get());
  v1::Event ev;
  ev.mutable_exec()->set_pid(1);
  output.Write(ev);
  output.Write(ev);
  output.CountUnreadable();

  const std::vector<CounterReading> r = ReadCounters({.spool = spool->get(), .output = &output});
  // Every status field the table names exists in SensorStatus as a number.
  v1::SensorStatus status;
  std::set<std::string_view> fields;
  for (const CounterReading& c : r) {
    if (c.status_field.empty()) continue;
    fields.insert(c.status_field);
    const auto* f = status.GetDescriptor()->FindFieldByName(std::string(c.status_field));
    ASSERT_NE(f, nullptr) << c.status_field;
  }
  SetStatusFields(r, &status);
  EXPECT_EQ(status.encode_failures(), 1u);
  EXPECT_EQ(status.spool_dropped(), 0u);
  EXPECT_TRUE(fields.contains("spool_append_failures"));

  MetricsWriter w;
  WriteMetrics(r, &w);
  EXPECT_NE(w.text().find("driftwatch_sensor_events_total{kind=\"exec\"} 2"), std::string::npos)
      << w.text();
  EXPECT_NE(w.text().find("driftwatch_sensor_encode_failures_total 1"), std::string::npos);
  EXPECT_NE(w.text().find("driftwatch_sensor_spool_depth 2"), std::string::npos) << w.text();

  EXPECT_EQ(StatusJsonFields(r, "events"), ",\"exec\":2,\"chmod\":0,\"write\":0,\"container\":0,\"status\":0,\"prevented\":0,\"network\":0,\"read\":0");
  EXPECT_EQ(StatusJsonFields(r, "spool").find(",\"depth\":2"), 0u);
  EXPECT_EQ(StatusJsonFields(r, "audit"), "");  // no audit source: left out, not zero

  // The enrich stage's counts, published from an Enricher (no events yet: zeros, present).
  Enricher enricher(nullptr);
  EnrichCounters enrich;
  enrich.Publish(enricher);
  const std::vector<CounterReading> with = ReadCounters({.output = &output, .enrich = &enrich});
  EXPECT_EQ(StatusJsonFields(with, "enrich"),
            ",\"process_state_read\":0,\"process_state_gone\":0,\"process_state_moved\":0,"
            "\"env_capped\":0,\"name_files_refused\":0,\"attributed_cgroup\":0,"
            "\"attributed_parent\":0,\"attributed_device\":0,\"attributed_unknown\":0,"
            "\"cache_trusted\":0");
  MetricsWriter w2;
  WriteMetrics(with, &w2);
  EXPECT_NE(w2.text().find("driftwatch_sensor_process_state_total{result=\"gone\"} 0"),
            std::string::npos) << w2.text();

  spool->reset();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace driftwatch::sensor
