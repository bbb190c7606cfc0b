// protocol_bench: nnserve.v1.Inference/Predict beside the Open Inference
// Protocol's inference.GRPCInferenceService/ModelInfer (and, with
// --http-port, its REST binding) against one running server, same model,
// same input rows (gRPC: raw float32; REST: JSON numbers), same closed loop
// of `concurrency` callers, in the same run. The protocols alternate in
// short rounds so that drift on a shared machine hits all of them; the
// output is throughput and latency percentiles per protocol and each
// protocol's throughput relative to Predict.
//
// Usage: protocol_bench --address 127.0.0.1:PORT --model digits
//          --features 64 [--http-port PORT] [--rows 1]
//          [--concurrency 1,32] [--seconds 2] [--rounds 3]
// A program, not a library: each gRPC caller is one thread doing blocking
// calls on one shared channel, each REST caller a thread with its own
// kept-alive connection; the results are merged after the threads join.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "grpcpp/grpcpp.h"
#include "httplib.h"
#include "inference/open_inference_grpc.grpc.pb.h"
#include "nlohmann/json.hpp"
#include "nnserve/v1/inference.grpc.pb.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Result {
  int64_t calls = 0;
  int64_t errors = 0;
  double seconds = 0;
  std::vector<double> latencies_us;
};

// Runs `call(thread)` from `concurrency` threads for `seconds`.
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
        if (!call(t)) errors.fetch_add(1);
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
  int http_port = 0;
  app.add_option("--address", address, "host:port of nnserve")->required();
  app.add_option("--http-port", http_port,
                 "nnserve's REST port on the same host (0: no REST)");
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
  // The Open Inference Protocol names the input tensor: ask the server.
  std::string input_name;
  {
    grpc::ClientContext context;
    inference::ModelMetadataRequest request;
    request.set_name(model);
    inference::ModelMetadataResponse metadata;
    if (!oip_stub->ModelMetadata(&context, request, &metadata).ok() ||
        metadata.inputs_size() != 1) {
      std::fprintf(stderr, "error: no metadata for model '%s'\n",
                   model.c_str());
      return 1;
    }
    input_name = metadata.inputs(0).name();
  }
  inference::ModelInferRequest infer;
  infer.set_model_name(model);
  auto* input = infer.add_inputs();
  input->set_name(input_name);
  input->set_datatype("FP32");
  input->add_shape(rows);
  input->add_shape(features);
  infer.add_raw_input_contents(raw);

  const std::string rest_body = nlohmann::json{
      {"inputs",
       {{{"name", input_name},
         {"shape", {rows, features}},
         {"datatype", "FP32"},
         {"data", x}}}}}.dump();
  const std::string rest_path = "/v2/models/" + model + "/infer";
  const std::string host = address.substr(0, address.rfind(':'));
  const int max_callers =
      *std::max_element(concurrencies.begin(), concurrencies.end());
  std::vector<std::unique_ptr<httplib::Client>> rest_clients;
  for (int t = 0; http_port > 0 && t < max_callers; ++t) {
    rest_clients.push_back(std::make_unique<httplib::Client>(host, http_port));
    rest_clients.back()->set_keep_alive(true);
    rest_clients.back()->set_tcp_nodelay(true);
  }

  auto call_predict = [&](int) {
    grpc::ClientContext context;
    nnserve::v1::PredictResponse response;
    return predict_stub->Predict(&context, predict, &response).ok();
  };
  auto call_infer = [&](int) {
    grpc::ClientContext context;
    inference::ModelInferResponse response;
    return oip_stub->ModelInfer(&context, infer, &response).ok();
  };
  auto call_rest = [&](int t) {
    httplib::Result result = rest_clients[static_cast<size_t>(t)]->Post(
        rest_path, rest_body, "application/json");
    return result && result->status == 200;
  };
  if (!call_predict(0) || !call_infer(0) || (http_port > 0 && !call_rest(0))) {
    std::fprintf(stderr,
                 "error: a warm-up call failed (address, model, "
                 "features?)\n");
    return 1;
  }

  std::printf("%-11s %4s %12s %10s %10s %10s %7s\n", "protocol", "c", "calls/s",
              "p50 us", "p90 us", "p99 us", "errors");
  struct Protocol {
    const char* name;
    std::function<bool(int)> call;
    Result result;
  };
  std::vector<Protocol> protocols = {{"Predict", call_predict, {}},
                                     {"ModelInfer", call_infer, {}}};
  if (http_port > 0) protocols.push_back({"REST", call_rest, {}});
  for (int c : concurrencies) {
    for (Protocol& protocol : protocols) {
      protocol.result = Result{};
      RunLoop(c, seconds / 4, protocol.call);  // Warm-up, not counted.
    }
    for (int r = 0; r < rounds; ++r) {
      for (Protocol& protocol : protocols) {
        Merge(protocol.result, RunLoop(c, seconds, protocol.call));
      }
    }
    const auto rate = [](const Result& result) {
      return static_cast<double>(result.calls) / result.seconds;
    };
    for (Protocol& protocol : protocols) {
      Result& result = protocol.result;
      std::printf("%-11s %4d %12.0f %10.1f %10.1f %10.1f %7lld\n",
                  protocol.name, c, rate(result),
                  Percentile(result.latencies_us, 0.5),
                  Percentile(result.latencies_us, 0.9),
                  Percentile(result.latencies_us, 0.99),
                  static_cast<long long>(result.errors));
    }
    for (size_t i = 1; i < protocols.size(); ++i) {
      std::printf("ratio %s/Predict throughput at c=%d: %.3f\n",
                  protocols[i].name, c,
                  rate(protocols[i].result) / rate(protocols[0].result));
    }
  }
  return 0;
}
