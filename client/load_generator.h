// Closed-loop load generator for Predict: keeps `concurrency` asynchronous
// calls (gRPC callback API) in flight on one stub; each completion records
// its latency and immediately issues the next call with the same pre-built
// request. Reports throughput, latency percentiles and errors by code for
// the calls that started after the warm-up and finished before the end of
// the measured window. RunLoad blocks the calling thread until every call
// has finished; the stub and request must outlive it. Concurrent RunLoad
// calls are independent (no shared state).
#ifndef NNSERVE_CLIENT_LOAD_GENERATOR_H_
#define NNSERVE_CLIENT_LOAD_GENERATOR_H_

#include <chrono>
#include <cstdint>
#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "client/client.h"
#include "nnserve/v1/inference.grpc.pb.h"

namespace nnserve {

struct LoadOptions {
  int concurrency = 1;                         // Calls in flight, >= 1.
  std::chrono::duration<double> duration{10};  // Measured window, > 0.
  std::chrono::duration<double> warmup{1};     // Unmeasured lead-in, >= 0.
  CallOptions call;                            // Per-call deadline.
};

struct LoadReport {
  int concurrency = 0;
  int64_t batch_rows = 0;    // Rows per request.
  double seconds = 0;        // Length of the measured window.
  int64_t calls = 0;         // Successful calls in the window.
  int64_t rows = 0;          // calls * batch_rows.
  int64_t failed_calls = 0;  // Calls in the window that failed.
  double calls_per_second = 0;
  double rows_per_second = 0;
  // Latency of the successful calls, microseconds.
  double mean_us = 0;
  double p50_us = 0;
  double p90_us = 0;
  double p99_us = 0;
  double max_us = 0;
  // CPU time (user + system) this process spent during the measured
  // window, and that per call in the window: the client's own cost, which
  // competes with the server when both share a machine.
  double client_cpu_seconds = 0;
  double client_cpu_us_per_call = 0;
  // Failed calls by gRPC code name ("DEADLINE_EXCEEDED", ...); a response
  // whose output does not have batch_rows rows counts as "BAD_RESPONSE".
  std::map<std::string, int64_t> errors;
};

// Runs the load. Fails only for invalid options or an invalid request.
absl::StatusOr<LoadReport> RunLoad(v1::Inference::Stub& stub,
                                   const v1::PredictRequest& request,
                                   const LoadOptions& options);

// The q-quantile (0..1) of sorted values, nearest-rank; 0 when empty.
double NearestRankQuantile(const std::vector<int64_t>& sorted, double q);

}  // namespace nnserve

#endif  // NNSERVE_CLIENT_LOAD_GENERATOR_H_
