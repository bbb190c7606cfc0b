// transport_baseline_server: the transport floor for nnserve benchmarks. A
// minimal gRPC callback server implementing nnserve.v1.Inference with no
// computation: Predict answers with an all-zero output tensor of the right
// size ([rows, --output-size], same encoding as the request) plus a class
// and label per row (like a labelled model), ModelInfo/ListModels describe
// the one fake model, and grpc.health.v1.Health reports SERVING for "" and
// "nnserve.v1.Inference". Used by bench/compare_transport.sh and the client
// integration tests. Loopback by default; --address 127.0.0.1:0 lets the OS
// pick the port, printed as "grpc_port=N" on stdout and written to
// --port-file (atomically, "N\n"). Optional TLS / mutual TLS (--tls-cert,
// --tls-key, --tls-client-ca) for the client's TLS tests. SIGINT/SIGTERM shut
// it down cleanly.
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>

#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <CLI/CLI.hpp>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "nnserve/v1/inference.grpc.pb.h"

namespace nnserve {
namespace {

struct BaselineOptions {
  std::string address = "127.0.0.1:0";
  std::string model = "digits";
  int64_t input_size = 64;
  int64_t output_size = 10;
  bool labels = true;
  int max_message_bytes = 64 << 20;
  std::string port_file;
  // TLS (all PEM files): server certificate chain and key; with a client CA,
  // clients must present a certificate it signed (mutual TLS).
  std::string tls_cert;
  std::string tls_key;
  std::string tls_client_ca;
};

class BaselineService final : public v1::Inference::CallbackService {
 public:
  explicit BaselineService(const BaselineOptions& options)
      : options_(options) {}

  grpc::ServerUnaryReactor* Predict(grpc::CallbackServerContext* context,
                                    const v1::PredictRequest* request,
                                    v1::PredictResponse* response) override {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(Answer(*request, response));
    return reactor;
  }

  grpc::ServerUnaryReactor* ModelInfo(
      grpc::CallbackServerContext* context, const v1::ModelInfoRequest* request,
      v1::ModelInfoResponse* response) override {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    grpc::Status status = CheckModel(request->model(), request->version());
    if (status.ok()) {
      response->set_name(options_.model);
      response->set_version(1);
      response->add_available_versions(1);
      response->set_input_name("input");
      response->set_input_size(options_.input_size);
      response->set_output_name("output");
      response->set_output_size(options_.output_size);
      if (options_.labels) {
        for (int64_t i = 0; i < options_.output_size; ++i) {
          response->add_labels(absl::StrCat(i));
        }
      }
    }
    reactor->Finish(status);
    return reactor;
  }

  grpc::ServerUnaryReactor* ListModels(
      grpc::CallbackServerContext* context, const v1::ListModelsRequest*,
      v1::ListModelsResponse* response) override {
    v1::ModelStatus* model = response->add_models();
    model->set_name(options_.model);
    v1::ModelVersionStatus* version = model->add_versions();
    version->set_version(1);
    version->set_state(v1::ModelVersionStatus::AVAILABLE);
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

 private:
  grpc::Status CheckModel(const std::string& model, int64_t version) const {
    if (model != options_.model) {
      return grpc::Status(
          grpc::StatusCode::NOT_FOUND,
          absl::StrCat("model '", model,
                       "' not found; available: ", options_.model));
    }
    if (version != 0 && version != 1) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND,
                          absl::StrCat("model '", model, "' has no version ",
                                       version, "; available: 1"));
    }
    return grpc::Status::OK;
  }

  grpc::Status Answer(const v1::PredictRequest& request,
                      v1::PredictResponse* response) const {
    if (grpc::Status s = CheckModel(request.model(), request.version());
        !s.ok()) {
      return s;
    }
    const v1::Tensor& input = request.input();
    if (input.shape_size() < 1 || input.shape_size() > 2 ||
        input.shape(input.shape_size() - 1) != options_.input_size) {
      return grpc::Status(
          grpc::StatusCode::INVALID_ARGUMENT,
          absl::StrCat("input shape must be [rows, ", options_.input_size,
                       "] or [", options_.input_size, "]"));
    }
    const int64_t rows = input.shape_size() == 2 ? input.shape(0) : 1;
    if (rows <= 0) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "input must have at least one row");
    }
    response->set_model(options_.model);
    response->set_version(1);
    v1::Tensor* output = response->mutable_output();
    output->add_shape(rows);
    output->add_shape(options_.output_size);
    const int64_t count = rows * options_.output_size;
    if (!input.raw().empty()) {
      output->mutable_raw()->resize(count * sizeof(float));
    } else {
      output->mutable_values()->Resize(static_cast<int>(count), 0.0f);
    }
    if (options_.labels) {
      for (int64_t r = 0; r < rows; ++r) {
        response->add_classes(0);
        response->add_labels("0");
      }
    }
    return grpc::Status::OK;
  }

  const BaselineOptions options_;
};

std::string ReadFileOrEmpty(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  std::ostringstream contents;
  contents << file.rdbuf();
  return contents.str();
}

// Plaintext, or TLS when a certificate is given; empty on a bad TLS setup.
std::shared_ptr<grpc::ServerCredentials> MakeCredentials(
    const BaselineOptions& options) {
  if (options.tls_cert.empty() && options.tls_key.empty()) {
    return grpc::InsecureServerCredentials();
  }
  const std::string cert = ReadFileOrEmpty(options.tls_cert);
  const std::string key = ReadFileOrEmpty(options.tls_key);
  if (cert.empty() || key.empty()) {
    std::cerr << "error: --tls-cert and --tls-key must both name readable "
                 "PEM files\n";
    return nullptr;
  }
  grpc::SslServerCredentialsOptions ssl(
      options.tls_client_ca.empty()
          ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
          : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  if (!options.tls_client_ca.empty()) {
    ssl.pem_root_certs = ReadFileOrEmpty(options.tls_client_ca);
    if (ssl.pem_root_certs.empty()) {
      std::cerr << "error: cannot read --tls-client-ca "
                << options.tls_client_ca << "\n";
      return nullptr;
    }
  }
  ssl.pem_key_cert_pairs.push_back({key, cert});
  return grpc::SslServerCredentials(ssl);
}

bool WritePortFile(const std::string& path, int port) {
  const std::string temp = path + ".tmp";
  {
    std::ofstream out(temp, std::ios::trunc);
    out << port << "\n";
    if (!out) return false;
  }
  std::error_code error;
  std::filesystem::rename(temp, path, error);
  return !error;
}

int Main(int argc, char** argv) {
  BaselineOptions options;
  CLI::App app{"nnserve transport baseline: Inference without computation"};
  app.add_option("--address", options.address, "host:port (port 0 = any)")
      ->capture_default_str();
  app.add_option("--model", options.model, "Model name served")
      ->capture_default_str();
  app.add_option("--input-size", options.input_size, "Features per row")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--output-size", options.output_size, "Outputs per row")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_flag("!--no-labels", options.labels,
               "Omit per-row classes/labels in Predict responses");
  app.add_option("--max-message-bytes", options.max_message_bytes,
                 "Largest message received or sent")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--port-file", options.port_file,
                 "Write the bound port here once serving");
  app.add_option("--tls-cert", options.tls_cert,
                 "PEM server certificate chain (enables TLS)");
  app.add_option("--tls-key", options.tls_key, "PEM server private key");
  app.add_option("--tls-client-ca", options.tls_client_ca,
                 "PEM CA for client certificates (requires mutual TLS)");
  CLI11_PARSE(app, argc, argv);
  const std::shared_ptr<grpc::ServerCredentials> credentials =
      MakeCredentials(options);
  if (credentials == nullptr) return 1;

  // Block the shutdown signals in every thread; main waits for them below.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  grpc::EnableDefaultHealthCheckService(true);
  BaselineService service(options);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(options.address, credentials, &port);
  builder.SetMaxReceiveMessageSize(options.max_message_bytes);
  builder.SetMaxSendMessageSize(options.max_message_bytes);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::cerr << "error: cannot listen on " << options.address << "\n";
    return 1;
  }
  server->GetHealthCheckService()->SetServingStatus("nnserve.v1.Inference",
                                                    true);
  std::cout << "grpc_port=" << port << std::endl;
  if (!options.port_file.empty() && !WritePortFile(options.port_file, port)) {
    std::cerr << "error: cannot write port file " << options.port_file << "\n";
    server->Shutdown();
    return 1;
  }

  int signal_number = 0;
  sigwait(&signals, &signal_number);
  server->GetHealthCheckService()->SetServingStatus(false);
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  return 0;
}

}  // namespace
}  // namespace nnserve

int main(int argc, char** argv) {
  // Debian's Abseil is built with Mutex deadlock detection on, which taxes
  // every gRPC-internal lock; the transport floor runs without it.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  return nnserve::Main(argc, argv);
}
