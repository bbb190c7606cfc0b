// ServedVersion: one loaded model version as the server serves it — the
// engine model, its scheduler queue, its metrics — shared by the registry
// and every in-flight call as std::shared_ptr<const ServedVersion>. An
// unload or a swap only drops the registry's reference: the version (and
// its model memory, queue and per-version metric series) is freed when the
// last call that uses it finishes.
//
// Immutable after creation; thread-safe to share.
#ifndef NNSERVE_SERVER_LIFECYCLE_SERVED_VERSION_H_
#define NNSERVE_SERVER_LIFECYCLE_SERVED_VERSION_H_

#include <cstdint>
#include <memory>
#include <string>

#include "engine/model.h"
#include "server/observability/metrics.h"
#include "server/scheduling/scheduler.h"

namespace nnserve::server {

struct ServedVersion {
  std::string name;
  int64_t version = 0;
  std::shared_ptr<const engine::Model> model;
  // Where calls for this version are scheduled (created by the loader with
  // the version's resolved batching settings).
  std::shared_ptr<ModelQueue> queue;
  // The version's series (inference, per-layer latency, rows, loaded);
  // removed from /metrics when the last holder lets go.
  std::shared_ptr<ModelVersionMetrics> metrics;
  // "model 'digits' version 1 input 'pixels'", for request error messages.
  std::string input_description;
};

}  // namespace nnserve::server

#endif  // NNSERVE_SERVER_LIFECYCLE_SERVED_VERSION_H_
