// protocol_bench: nnserve.v1.Inference/Predict beside the Open Inference
// Protocol's inference.GRPCInferenceService/ModelInfer against one running
// server, same model, same input rows (raw float32 encoding), same closed
// loop of `concurrency` callers, in the same run. The two protocols
// alternate in short rounds so that drift on a shared machine hits both;
// the output is throughput and latency percentiles per protocol and the
// ModelInfer/Predict throughput ratio.
//
// Usage: protocol_bench --address 127.0.0.1:PORT --model digits
//          --features 64 [--rows 1] [--concurrency 1,32] [--seconds 2]
//          [--rounds 3]
// A program, not a library: each caller is one thread doing blocking calls
// on one shared channel; the results are merged after the threads join.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "grpcpp/grpcpp.h"
#include "inference/open_inference_grpc.grpc.pb.h"
#include "nnserve/v1/inference.grpc.pb.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Result {
  int64_t calls = 0;
  int64_t errors = 0;
  double seconds = 0;
  std::vector<double> latencies_us;
};

// Runs `call` from `concurrency` threads for `seconds`.
template <typename Call>
Result RunLoop(int concurrency, double seconds, const Call& call) {
  std::vector<std::vector<double>> latencies(concurrency);
  std::atomic<int64_t> errors{0};
  const Clock::time_point start = Clock::now();
  const Clock::time_point end =
      start + std::chrono::duration_cast<Clock::duration>(
                  std::chrono::duration<double>(seconds));
  std::vector<std::thread> threads;
  for (int t = 0; t < concurrency; ++t) {
    threads.emplace_back([&, t] {
      while (Clock::now() < end) {
        const Clock::time_point before = Clock::now();
        if (!call()) errors.fetch_add(1);
        latencies[t].push_back(
            std::chrono::duration<double, std::micro>(Clock::now() - before)
                .count());
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  Result result;
  result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  for (auto& l : latencies) {
    result.latencies_us.insert(result.latencies_us.end(), l.begin(), l.end());
  }
  result.calls = static_cast<int64_t>(result.latencies_us.size());
  result.errors = errors.load();
  return result;
}

void Merge(Result& into, Result&& more) {
  into.calls += more.calls;
  into.errors += more.errors;
  into.seconds += more.seconds;
  into.latencies_us.insert(into.latencies_us.end(), more.latencies_us.begin(),
                           more.latencies_us.end());
}

double Percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(p * static_cast<double>(v.size() - 1))];
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Predict vs ModelInfer (Open Inference Protocol) throughput"};
  std::string address, model;
  int64_t features = 0, rows = 1;
  std::vector<int> concurrencies = {1, 32};
  double seconds = 2;
  int rounds = 3;
  app.add_option("--address", address, "host:port of nnserve")->required();
  app.add_option("--model", model, "model name")->required();
  app.add_option("--features", features, "the model's input width")->required();
  app.add_option("--rows", rows, "rows per call");
  app.add_option("--concurrency", concurrencies, "callers, e.g. 1,32")
      ->delimiter(',');
  app.add_option("--seconds", seconds, "seconds per round and protocol");
  app.add_option("--rounds", rounds, "alternating rounds per protocol");
  CLI11_PARSE(app, argc, argv);

  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  auto channel = grpc::CreateCustomChannel(
      address, grpc::InsecureChannelCredentials(), args);
  auto predict_stub = nnserve::v1::Inference::NewStub(channel);
  auto oip_stub = inference::GRPCInferenceService::NewStub(channel);

  std::vector<float> x(static_cast<size_t>(rows * features));
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i % 17) / 16;
  const std::string raw(reinterpret_cast<const char*>(x.data()),
                        x.size() * sizeof(float));

  nnserve::v1::PredictRequest predict;
  predict.set_model(model);
  predict.mutable_input()->add_shape(rows);
  predict.mutable_input()->add_shape(features);
  predict.mutable_input()->set_raw(raw);
  inference::ModelInferRequest infer;
  infer.set_model_name(model);
  auto* input = infer.add_inputs();
  input->set_name("input");
  input->set_datatype("FP32");
  input->add_shape(rows);
  input->add_shape(features);
  infer.add_raw_input_contents(raw);

  auto call_predict = [&] {
    grpc::ClientContext context;
    nnserve::v1::PredictResponse response;
    return predict_stub->Predict(&context, predict, &response).ok();
  };
  auto call_infer = [&] {
    grpc::ClientContext context;
    inference::ModelInferResponse response;
    return oip_stub->ModelInfer(&context, infer, &response).ok();
  };
  if (!call_predict() || !call_infer()) {
    std::fprintf(stderr,
                 "error: a warm-up call failed (address, model, "
                 "features?)\n");
    return 1;
  }

  std::printf("%-11s %4s %12s %10s %10s %10s %7s\n", "protocol", "c", "calls/s",
              "p50 us", "p90 us", "p99 us", "errors");
  for (int c : concurrencies) {
    Result p, m;
    RunLoop(c, seconds / 4, call_predict);  // Warm-up, not counted.
    RunLoop(c, seconds / 4, call_infer);
    for (int r = 0; r < rounds; ++r) {
      Merge(p, RunLoop(c, seconds, call_predict));
      Merge(m, RunLoop(c, seconds, call_infer));
    }
    const double p_rate = static_cast<double>(p.calls) / p.seconds;
    const double m_rate = static_cast<double>(m.calls) / m.seconds;
    for (auto& [name, result, rate] :
         {std::tuple<const char*, Result&, double>{"Predict", p, p_rate},
          std::tuple<const char*, Result&, double>{"ModelInfer", m, m_rate}}) {
      std::printf("%-11s %4d %12.0f %10.1f %10.1f %10.1f %7lld\n", name, c,
                  rate, Percentile(result.latencies_us, 0.5),
                  Percentile(result.latencies_us, 0.9),
                  Percentile(result.latencies_us, 0.99),
                  static_cast<long long>(result.errors));
    }
    std::printf("ratio ModelInfer/Predict throughput at c=%d: %.3f\n", c,
                m_rate / p_rate);
  }
  return 0;
}
