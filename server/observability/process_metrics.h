// ProcessCollector: the standard Prometheus process metrics, which
// prometheus-cpp does not provide, read from /proc at scrape time:
//   process_cpu_seconds_total       counter  user + system CPU time
//   process_resident_memory_bytes   gauge    resident set size
//   process_virtual_memory_bytes    gauge    virtual memory size
//   process_start_time_seconds      gauge    start time, Unix epoch seconds
//   process_open_fds                gauge    open file descriptors
// Register it with an Exposer next to the server's registry. Stateless
// apart from constants read at construction; Collect() is thread-safe.
// Linux only (reads /proc/self/stat, /proc/stat, /proc/self/fd).
#ifndef NNSERVE_SERVER_OBSERVABILITY_PROCESS_METRICS_H_
#define NNSERVE_SERVER_OBSERVABILITY_PROCESS_METRICS_H_

#include <vector>

#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"

namespace nnserve::server {

class ProcessCollector : public prometheus::Collectable {
 public:
  ProcessCollector();
  // Returns the families above; a family whose /proc source cannot be read
  // is omitted rather than reported with a made-up value.
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  double ticks_per_second_;
  double page_size_;
  double boot_time_seconds_;  // From /proc/stat btime; < 0 if unknown.
};

}  // namespace nnserve::server

#endif  // NNSERVE_SERVER_OBSERVABILITY_PROCESS_METRICS_H_
