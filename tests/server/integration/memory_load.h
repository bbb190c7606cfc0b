// Helpers for the memory-bound integration tests (memory_limits_ and
// soak_integration_test.cc): requests serialized once and sent as shared
// grpc::ByteBuffers (64 callers of 16 MiB requests must not cost the test
// process 64 copies), one connection per caller, and a sampler of the
// server's resident set size.
//
// Header-only (the test utility library stays free of gRPC). A RawCaller
// is thread-safe (gRPC stubs are); an RssSampler owns its thread, joined in
// Stop() and the destructor.
#ifndef NNSERVE_TESTS_SERVER_INTEGRATION_MEMORY_LOAD_H_
#define NNSERVE_TESTS_SERVER_INTEGRATION_MEMORY_LOAD_H_

#include <sys/types.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <future>
#include <memory>
#include <string>
#include <thread>

#include "google/protobuf/message.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/support/byte_buffer.h"
#include "tests/util/process_memory.h"

namespace nnserve::testing {

inline constexpr char kPredictMethod[] = "/nnserve.v1.Inference/Predict";

// `bytes` as a ByteBuffer: one copy here, shared (reference-counted) by
// every call that sends it.
inline grpc::ByteBuffer ToByteBuffer(const std::string& bytes) {
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

inline grpc::ByteBuffer SerializeToByteBuffer(
    const google::protobuf::Message& message) {
  return ToByteBuffer(message.SerializeAsString());
}

// Calls with pre-serialized requests on a connection of its own (a caller
// of its own, as far as the server can tell).
class RawCaller {
 public:
  explicit RawCaller(const std::string& target) {
    grpc::ChannelArguments args;
    args.SetMaxSendMessageSize(-1);
    args.SetMaxReceiveMessageSize(-1);
    // No connection shared with other channels to the same target.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    channel_ = grpc::CreateCustomChannel(
        target, grpc::InsecureChannelCredentials(), args);
    stub_ = std::make_unique<grpc::GenericStub>(channel_);
  }

  // A unary call of `method` with `request`; blocks until it completes.
  grpc::Status Call(const std::string& method, const grpc::ByteBuffer& request,
                    grpc::ByteBuffer* response,
                    std::chrono::milliseconds timeout) const {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + timeout);
    std::promise<grpc::Status> done;
    stub_->UnaryCall(
        &context, method, grpc::StubOptions(), &request, response,
        [&done](grpc::Status status) { done.set_value(std::move(status)); });
    return done.get_future().get();
  }

 private:
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<grpc::GenericStub> stub_;
};

// Parses a response ByteBuffer into `message`; false if it does not parse.
inline bool ParseByteBuffer(const grpc::ByteBuffer& buffer,
                            google::protobuf::Message* message) {
  grpc::Slice slice;
  if (!buffer.DumpToSingleSlice(&slice).ok()) return false;
  return message->ParseFromArray(slice.begin(), static_cast<int>(slice.size()));
}

// Samples the resident set size of `pid` every `interval` on a thread of
// its own and keeps the largest sample.
class RssSampler {
 public:
  RssSampler(pid_t pid, std::chrono::milliseconds interval)
      : thread_([this, pid, interval] {
          while (!stop_.load()) {
            absl::StatusOr<int64_t> rss = ResidentBytes(pid);
            if (rss.ok()) {
              int64_t seen = max_.load();
              while (*rss > seen && !max_.compare_exchange_weak(seen, *rss)) {
              }
            }
            std::this_thread::sleep_for(interval);
          }
        }) {}
  RssSampler(const RssSampler&) = delete;
  RssSampler& operator=(const RssSampler&) = delete;
  ~RssSampler() { Stop(); }

  // Stops sampling; the largest sample in bytes (0 if none).
  int64_t Stop() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
    return max_.load();
  }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> max_{0};
  std::thread thread_;
};

}  // namespace nnserve::testing

#endif  // NNSERVE_TESTS_SERVER_INTEGRATION_MEMORY_LOAD_H_
