// HealthWatch: a grpc.health.v1.Health/Watch stream for integration tests,
// recording every status the server pushes, so a test can see transitions
// (SERVING → NOT_SERVING at shutdown) that a polling Check might miss.
//
// Uses grpc::GenericStub with the hand-written health codec from
// client/health_codec.h (no generated health stubs: a second copy of the
// health descriptors in one binary aborts at start-up). One background
// thread per watch drives the stream; the HealthWatch owns it and cancels
// and joins it on destruction. Thread-safe: the accessors may be called from
// any thread.
#ifndef NNSERVE_TESTS_SERVER_HEALTH_WATCH_H_
#define NNSERVE_TESTS_SERVER_HEALTH_WATCH_H_

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include "client/health_codec.h"

namespace nnserve::testing {

class HealthWatch {
 public:
  HealthWatch(std::shared_ptr<grpc::Channel> channel, std::string service)
      : channel_(std::move(channel)), service_(std::move(service)) {
    thread_ = std::thread([this] { Run(); });
  }
  ~HealthWatch() {
    context_.TryCancel();
    thread_.join();
  }
  HealthWatch(const HealthWatch&) = delete;
  HealthWatch& operator=(const HealthWatch&) = delete;

  // Cancels the stream (as a client that got its answer would hang up).
  void Cancel() { context_.TryCancel(); }

  // Every status received so far, in order.
  std::vector<ServingStatus> statuses() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return statuses_;
  }

  // Waits until `status` has been received (true) or the stream ended or
  // `timeout` passed without it (false).
  bool WaitFor(ServingStatus status, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mutex_);
    auto received = [&] {
      return std::find(statuses_.begin(), statuses_.end(), status) !=
             statuses_.end();
    };
    changed_.wait_for(lock, timeout, [&] { return received() || finished_; });
    return received();
  }

  // Waits for the stream to end; false if it is still open after `timeout`.
  bool WaitForEnd(std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return finished_; });
  }

  // The stream's final status (valid once it ended).
  grpc::Status final_status() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return final_status_;
  }

 private:
  void Run() {
    grpc::GenericStub stub(channel_);
    grpc::CompletionQueue cq;
    auto step = [&cq] {
      void* tag = nullptr;
      bool ok = false;
      return cq.Next(&tag, &ok) && ok;
    };
    std::unique_ptr<grpc::GenericClientAsyncReaderWriter> call =
        stub.PrepareCall(&context_, "/grpc.health.v1.Health/Watch", &cq);
    call->StartCall(nullptr);
    bool ok = step();
    if (ok) {
      grpc::Slice slice(EncodeHealthCheckRequest(service_));
      grpc::ByteBuffer request(&slice, 1);
      call->Write(request, nullptr);
      ok = step();
    }
    if (ok) {
      call->WritesDone(nullptr);
      ok = step();
    }
    while (ok) {
      grpc::ByteBuffer buffer;
      call->Read(&buffer, nullptr);
      if (!step()) break;
      std::vector<grpc::Slice> slices;
      std::string bytes;
      if (buffer.Dump(&slices).ok()) {
        for (const grpc::Slice& s : slices) {
          bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
        }
      }
      absl::StatusOr<ServingStatus> status = DecodeHealthCheckResponse(bytes);
      std::lock_guard<std::mutex> lock(mutex_);
      statuses_.push_back(status.ok() ? *status : ServingStatus::kUnknown);
      changed_.notify_all();
    }
    grpc::Status final_status;
    call->Finish(&final_status, nullptr);
    step();
    cq.Shutdown();
    void* tag = nullptr;
    bool ignored = false;
    while (cq.Next(&tag, &ignored)) {
    }
    std::lock_guard<std::mutex> lock(mutex_);
    final_status_ = final_status;
    finished_ = true;
    changed_.notify_all();
  }

  const std::shared_ptr<grpc::Channel> channel_;
  const std::string service_;
  grpc::ClientContext context_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<ServingStatus> statuses_;
  bool finished_ = false;
  grpc::Status final_status_;
  std::thread thread_;
};

}  // namespace nnserve::testing

#endif  // NNSERVE_TESTS_SERVER_HEALTH_WATCH_H_
