// nnserve-cli: command-line client for nnserve (predict, info, list, health,
// bench, load, unload). Exit status 0 on success; 1 with "error: CODE:
// message" on stderr when a call or the input fails; health exits 0 only
// when SERVING.
#include <cstdlib>
#include <iostream>
#include <string>

#include <CLI/CLI.hpp>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "client/channel.h"
#include "client/cli_output.h"
#include "client/client.h"
#include "client/explain.h"
#include "client/input_readers.h"
#include "client/load_generator.h"
#include "client/rows.h"

namespace nnserve {
namespace {

struct GlobalFlags {
  std::string address = "localhost:50051";
  double timeout_seconds = 10;
  bool json = false;
  bool tls = false;
  std::string ca_cert;
  std::string cert;
  std::string key;
  std::string tls_server_name;
  int max_message_bytes = 64 << 20;
};

int Fail(const absl::Status& status) {
  std::cerr << "error: " << status.ToString() << "\n";
  return 1;
}

void Print(const GlobalFlags& flags, const nlohmann::json& json,
           const std::string& text) {
  if (flags.json) {
    std::cout << json.dump() << "\n";
  } else {
    std::cout << text;
  }
}

absl::StatusOr<std::unique_ptr<Client>> Connect(const GlobalFlags& flags) {
  ChannelOptions options;
  options.target = flags.address;
  options.use_tls = flags.tls || !flags.ca_cert.empty() ||
                    !flags.cert.empty() || !flags.key.empty() ||
                    !flags.tls_server_name.empty();
  options.root_certs_path = flags.ca_cert;
  options.client_cert_path = flags.cert;
  options.client_key_path = flags.key;
  options.tls_server_name = flags.tls_server_name;
  options.max_message_bytes = flags.max_message_bytes;
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = MakeChannel(options);
  if (!channel.ok()) return channel.status();
  return std::make_unique<Client>(*std::move(channel));
}

CallOptions MakeCallOptions(const GlobalFlags& flags) {
  CallOptions call;
  call.timeout = std::chrono::microseconds(
      static_cast<int64_t>(flags.timeout_seconds * 1e6));
  return call;
}

struct PredictFlags {
  std::string model;
  int64_t version = 0;
  std::string input = "-";
  bool raw = false;
  int top = 3;
  std::vector<std::string> layers;
};

int RunPredict(const GlobalFlags& flags, const PredictFlags& p) {
  absl::StatusOr<RowBatch> rows = ReadInputRows(p.input);
  if (!rows.ok()) return Fail(rows.status());
  absl::StatusOr<v1::PredictRequest> request = MakePredictRequest(
      p.model, p.version, *rows, p.raw ? Encoding::kRaw : Encoding::kValues);
  if (!request.ok()) return Fail(request.status());
  for (const std::string& layer : p.layers) request->add_output_layers(layer);
  absl::StatusOr<std::unique_ptr<Client>> client = Connect(flags);
  if (!client.ok()) return Fail(client.status());
  absl::StatusOr<v1::PredictResponse> response =
      (*client)->Predict(*request, MakeCallOptions(flags));
  if (!response.ok()) return Fail(response.status());
  absl::StatusOr<RowBatch> output = DecodeTensor(response->output());
  if (!output.ok()) {
    return Fail(absl::DataLossError(
        absl::StrCat("server response: ", output.status().message())));
  }
  Print(flags, flags.json ? cli::PredictJson(*response, *output) : nullptr,
        flags.json ? "" : cli::PredictText(*response, *output, p.top));
  return 0;
}

// ModelInfo for the layer names, then one Predict asking for every layer's
// activations, summarised per layer (client/explain.h).
int RunExplain(const GlobalFlags& flags, const PredictFlags& p) {
  absl::StatusOr<RowBatch> rows = ReadInputRows(p.input);
  if (!rows.ok()) return Fail(rows.status());
  absl::StatusOr<std::unique_ptr<Client>> client = Connect(flags);
  if (!client.ok()) return Fail(client.status());
  absl::StatusOr<v1::ModelInfoResponse> info =
      (*client)->ModelInfo(p.model, p.version, MakeCallOptions(flags));
  if (!info.ok()) return Fail(info.status());
  // The version ModelInfo described, so both calls see the same layers.
  absl::StatusOr<v1::PredictRequest> request =
      MakePredictRequest(p.model, info->version(), *rows, Encoding::kRaw);
  if (!request.ok()) return Fail(request.status());
  for (const v1::LayerInfo& layer : info->layers()) {
    request->add_output_layers(layer.name());
  }
  absl::StatusOr<v1::PredictResponse> response =
      (*client)->Predict(*request, MakeCallOptions(flags));
  if (!response.ok()) return Fail(response.status());
  absl::StatusOr<std::vector<cli::LayerSummary>> layers =
      cli::SummarizeLayers(*info, *response, p.top);
  if (!layers.ok()) return Fail(layers.status());
  Print(flags, flags.json ? cli::ExplainJson(*response, *layers) : nullptr,
        flags.json ? "" : cli::ExplainText(*response, *layers));
  return 0;
}

int RunInfo(const GlobalFlags& flags, const std::string& model,
            int64_t version) {
  absl::StatusOr<std::unique_ptr<Client>> client = Connect(flags);
  if (!client.ok()) return Fail(client.status());
  absl::StatusOr<v1::ModelInfoResponse> info =
      (*client)->ModelInfo(model, version, MakeCallOptions(flags));
  if (!info.ok()) return Fail(info.status());
  Print(flags, flags.json ? cli::ProtoJson(*info) : nullptr,
        flags.json ? "" : cli::ModelInfoText(*info));
  return 0;
}

int RunList(const GlobalFlags& flags) {
  absl::StatusOr<std::unique_ptr<Client>> client = Connect(flags);
  if (!client.ok()) return Fail(client.status());
  absl::StatusOr<v1::ListModelsResponse> list =
      (*client)->ListModels(MakeCallOptions(flags));
  if (!list.ok()) return Fail(list.status());
  Print(flags, flags.json ? cli::ProtoJson(*list) : nullptr,
        flags.json ? "" : cli::ModelListText(*list));
  return 0;
}

int RunHealth(const GlobalFlags& flags, const std::string& service) {
  absl::StatusOr<std::unique_ptr<Client>> client = Connect(flags);
  if (!client.ok()) return Fail(client.status());
  absl::StatusOr<ServingStatus> status =
      (*client)->Health(service, MakeCallOptions(flags));
  if (!status.ok()) return Fail(status.status());
  Print(flags, cli::HealthJson(service, *status),
        std::string(ServingStatusName(*status)) + "\n");
  return *status == ServingStatus::kServing ? 0 : 1;
}

// load / unload: ModelRepository.LoadModel / UnloadModel.
int RunLoadModel(const GlobalFlags& flags, const std::string& model) {
  absl::StatusOr<std::unique_ptr<Client>> client = Connect(flags);
  if (!client.ok()) return Fail(client.status());
  absl::StatusOr<v1::LoadModelResponse> response =
      (*client)->LoadModel(model, MakeCallOptions(flags));
  if (!response.ok()) return Fail(response.status());
  Print(flags, flags.json ? cli::ProtoJson(*response) : nullptr,
        flags.json ? "" : cli::LoadModelText(*response));
  return 0;
}

int RunUnloadModel(const GlobalFlags& flags, const std::string& model) {
  absl::StatusOr<std::unique_ptr<Client>> client = Connect(flags);
  if (!client.ok()) return Fail(client.status());
  absl::StatusOr<v1::UnloadModelResponse> response =
      (*client)->UnloadModel(model, MakeCallOptions(flags));
  if (!response.ok()) return Fail(response.status());
  Print(flags, flags.json ? cli::ProtoJson(*response) : nullptr,
        flags.json ? "" : cli::UnloadModelText(*response));
  return 0;
}

struct BenchFlags {
  std::string model;
  int64_t version = 0;
  int concurrency = 1;
  double duration = 10;
  double warmup = 1;
  int64_t batch = 1;
  bool raw = false;
  uint64_t seed = 42;
};

int RunBench(const GlobalFlags& flags, const BenchFlags& b) {
  absl::StatusOr<std::unique_ptr<Client>> client = Connect(flags);
  if (!client.ok()) return Fail(client.status());
  absl::StatusOr<v1::ModelInfoResponse> info =
      (*client)->ModelInfo(b.model, b.version, MakeCallOptions(flags));
  if (!info.ok()) return Fail(info.status());
  const std::string_view encoding = b.raw ? "raw" : "values";
  absl::StatusOr<v1::PredictRequest> request = MakePredictRequest(
      b.model, b.version, RandomRows(b.batch, info->input_size(), b.seed),
      b.raw ? Encoding::kRaw : Encoding::kValues);
  if (!request.ok()) return Fail(request.status());
  LoadOptions load;
  load.concurrency = b.concurrency;
  load.duration = std::chrono::duration<double>(b.duration);
  load.warmup = std::chrono::duration<double>(b.warmup);
  load.call = MakeCallOptions(flags);
  absl::StatusOr<LoadReport> report =
      RunLoad((*client)->stub(), *request, load);
  if (!report.ok()) return Fail(report.status());
  Print(flags,
        flags.json ? cli::LoadReportJson(*report, b.model, encoding, b.warmup)
                   : nullptr,
        flags.json ? ""
                   : cli::LoadReportText(*report, b.model, encoding, b.warmup));
  return report->calls > 0 ? 0 : 1;
}

int Main(int argc, char** argv) {
  CLI::App app{"nnserve-cli: client for the nnserve model server"};
  app.require_subcommand(1);
  app.fallthrough();  // Global options may follow the subcommand.
  GlobalFlags flags;
  app.add_option("--address", flags.address, "Server host:port")
      ->envname("NNSERVE_ADDRESS")
      ->capture_default_str();
  app.add_option("--timeout", flags.timeout_seconds,
                 "Per-call deadline in seconds (0 = none)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_flag("--json", flags.json, "Print JSON instead of tables");
  // Any --tls-* option turns TLS on; --tls, --ca-cert, --cert and --key are
  // the older names, kept working.
  app.add_flag("--tls", flags.tls,
               "Use TLS with the system's CA roots (implied by any --tls-* "
               "option)");
  app.add_option("--tls-ca-file,--ca-cert", flags.ca_cert,
                 "PEM CA certificates that issued the server's certificate "
                 "(default: the system's roots)");
  app.add_option("--tls-cert-file,--cert", flags.cert,
                 "PEM client certificate, for servers that require one "
                 "(mutual TLS; with --tls-key-file)");
  app.add_option("--tls-key-file,--key", flags.key,
                 "PEM private key of --tls-cert-file");
  app.add_option("--tls-server-name", flags.tls_server_name,
                 "Name to verify in the server certificate instead of the "
                 "--address host");
  app.add_option("--max-message-bytes", flags.max_message_bytes,
                 "Largest message sent or received")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();

  PredictFlags predict;
  CLI::App* predict_cmd = app.add_subcommand("predict", "Run a forward pass");
  predict_cmd->add_option("--model", predict.model, "Model name")->required();
  predict_cmd->add_option("--version", predict.version, "0 = newest")
      ->check(CLI::NonNegativeNumber);
  predict_cmd
      ->add_option("--input", predict.input,
                   "Rows: file.npy ('<f4'/'<f8'), file.csv, or - for "
                   "stdin (npy or CSV)")
      ->capture_default_str();
  predict_cmd->add_flag("--raw", predict.raw,
                        "Send the tensor as raw bytes instead of values");
  predict_cmd
      ->add_option("--top", predict.top,
                   "Top outputs shown per row (labelled models)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  predict_cmd
      ->add_option("--layers", predict.layers,
                   "Also show these layers' activations (names as in `info`, "
                   "comma-separated)")
      ->delimiter(',');

  std::string info_model;
  int64_t info_version = 0;
  CLI::App* info_cmd = app.add_subcommand("info", "Describe a model");
  info_cmd->add_option("--model", info_model, "Model name")->required();
  info_cmd->add_option("--version", info_version, "0 = newest")
      ->check(CLI::NonNegativeNumber);

  PredictFlags explain;
  CLI::App* explain_cmd = app.add_subcommand(
      "explain", "What each layer does to an input: per-layer activations");
  explain_cmd->add_option("--model", explain.model, "Model name")->required();
  explain_cmd->add_option("--version", explain.version, "0 = newest")
      ->check(CLI::NonNegativeNumber);
  explain_cmd
      ->add_option("--input", explain.input,
                   "Rows: file.npy, file.csv, or - for stdin")
      ->capture_default_str();
  explain_cmd->add_option("--top", explain.top, "Top units shown per layer")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();

  CLI::App* list_cmd = app.add_subcommand("list", "List models and versions");

  std::string service;
  CLI::App* health_cmd =
      app.add_subcommand("health", "Health check; exit 0 only when SERVING");
  health_cmd->add_option("--service", service,
                         "Service name (\"\" = whole server)");

  BenchFlags bench;
  CLI::App* bench_cmd =
      app.add_subcommand("bench", "Closed-loop Predict load test");
  bench_cmd->add_option("--model", bench.model, "Model name")->required();
  bench_cmd->add_option("--version", bench.version, "0 = newest")
      ->check(CLI::NonNegativeNumber);
  bench_cmd->add_option("--concurrency", bench.concurrency, "Calls in flight")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  bench_cmd->add_option("--duration", bench.duration, "Measured seconds")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  bench_cmd->add_option("--warmup", bench.warmup, "Unmeasured seconds first")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  bench_cmd->add_option("--batch", bench.batch, "Rows per request")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  bench_cmd->add_flag("--raw", bench.raw, "Raw tensor encoding");
  bench_cmd->add_option("--seed", bench.seed, "Input generator seed")
      ->capture_default_str();

  std::string load_model;
  CLI::App* load_cmd = app.add_subcommand(
      "load", "(Re)load a model from the server's repository (explicit mode)");
  load_cmd->add_option("--model", load_model, "Model name")->required();

  std::string unload_model;
  CLI::App* unload_cmd = app.add_subcommand(
      "unload", "Stop serving every version of a model (explicit mode)");
  unload_cmd->add_option("--model", unload_model, "Model name")->required();

  CLI11_PARSE(app, argc, argv);

  if (predict_cmd->parsed()) return RunPredict(flags, predict);
  if (info_cmd->parsed()) return RunInfo(flags, info_model, info_version);
  if (explain_cmd->parsed()) return RunExplain(flags, explain);
  if (list_cmd->parsed()) return RunList(flags);
  if (health_cmd->parsed()) return RunHealth(flags, service);
  if (bench_cmd->parsed()) return RunBench(flags, bench);
  if (load_cmd->parsed()) return RunLoadModel(flags, load_model);
  if (unload_cmd->parsed()) return RunUnloadModel(flags, unload_model);
  return 2;
}

}  // namespace
}  // namespace nnserve

int main(int argc, char** argv) {
  // Debian's Abseil is built with Mutex deadlock detection on; gRPC's
  // internal mutexes are absl::Mutex, so every lock pays for cycle tracking
  // (~2-4 % of the CPU in a profile of `bench`). Nothing here needs it.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  return nnserve::Main(argc, argv);
}
