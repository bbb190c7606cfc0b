#include "server/observability/process_metrics.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <optional>
#include <sstream>
#include <string>

namespace nnserve::server {
namespace {

// The fields of /proc/self/stat after the parenthesised command name, so
// that fields()[0] is field 3 ("state") of proc(5).
std::optional<std::vector<std::string>> ReadStatFields() {
  std::ifstream in("/proc/self/stat");
  std::string line;
  if (!std::getline(in, line)) return std::nullopt;
  const size_t close = line.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream rest(line.substr(close + 1));
  std::vector<std::string> fields{std::istream_iterator<std::string>(rest),
                                  std::istream_iterator<std::string>()};
  return fields;
}

double BootTimeSeconds() {
  std::ifstream in("/proc/stat");
  std::string key;
  while (in >> key) {
    if (key == "btime") {
      double value = -1;
      in >> value;
      return value;
    }
    in.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
  }
  return -1;
}

prometheus::MetricFamily Single(std::string name, std::string help,
                                prometheus::MetricType type, double value) {
  prometheus::MetricFamily family;
  family.name = std::move(name);
  family.help = std::move(help);
  family.type = type;
  prometheus::ClientMetric metric;
  if (type == prometheus::MetricType::Counter) {
    metric.counter.value = value;
  } else {
    metric.gauge.value = value;
  }
  family.metric.push_back(std::move(metric));
  return family;
}

}  // namespace

ProcessCollector::ProcessCollector()
    : ticks_per_second_(static_cast<double>(sysconf(_SC_CLK_TCK))),
      page_size_(static_cast<double>(sysconf(_SC_PAGESIZE))),
      boot_time_seconds_(BootTimeSeconds()) {}

std::vector<prometheus::MetricFamily> ProcessCollector::Collect() const {
  std::vector<prometheus::MetricFamily> families;
  // proc(5) field numbers (1-based): utime 14, stime 15, starttime 22,
  // vsize 23, rss 24. fields[0] is field 3.
  if (auto fields = ReadStatFields(); fields && fields->size() >= 22) {
    const auto field = [&](int number) {
      return std::stod((*fields)[static_cast<size_t>(number - 3)]);
    };
    families.push_back(Single("process_cpu_seconds_total",
                              "Total user and system CPU time in seconds",
                              prometheus::MetricType::Counter,
                              (field(14) + field(15)) / ticks_per_second_));
    families.push_back(Single("process_virtual_memory_bytes",
                              "Virtual memory size in bytes",
                              prometheus::MetricType::Gauge, field(23)));
    families.push_back(
        Single("process_resident_memory_bytes", "Resident memory size in bytes",
               prometheus::MetricType::Gauge, field(24) * page_size_));
    if (boot_time_seconds_ >= 0) {
      families.push_back(
          Single("process_start_time_seconds",
                 "Start time of the process since unix epoch in seconds",
                 prometheus::MetricType::Gauge,
                 boot_time_seconds_ + field(22) / ticks_per_second_));
    }
  }
  std::error_code error;
  std::filesystem::directory_iterator it("/proc/self/fd", error);
  if (!error) {
    double open_fds = 0;
    for (; it != std::filesystem::directory_iterator(); it.increment(error)) {
      if (error) break;
      ++open_fds;
    }
    if (!error) {
      families.push_back(Single("process_open_fds",
                                "Number of open file descriptors",
                                prometheus::MetricType::Gauge, open_fds));
    }
  }
  return families;
}

}  // namespace nnserve::server
