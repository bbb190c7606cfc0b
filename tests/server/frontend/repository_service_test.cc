// In-process tests of ModelRepositoryService: a real grpc::Server on
// loopback (port chosen by the OS) with the service over a real
// ModelLifecycle, ModelRegistry and Scheduler on a temporary repository,
// and the generated stub as client. What the real binary cannot show:
// the answer comes once the registry serves the model, the request metrics'
// labels, and draining — new calls refused while a load runs, and
// WaitForIdle returning only after that load has finished.
#include "server/frontend/repository_service.h"

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/lifecycle/model_lifecycle.h"
#include "server/lifecycle/model_registry.h"
#include "server/scheduling/scheduler.h"
#include "tests/server/frontend/service_test_util.h"
#include "tests/util/model_builder.h"

namespace nnserve::server {
namespace {

using nnserve::testing::BuildRandomModel;
using nnserve::testing::FileFormat;
using nnserve::testing::LayerDef;
using nnserve::testing::ScopedTempDir;
using nnserve::testing::WriteModelDir;
using ::testing::HasSubstr;

class RepositoryServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    WriteModelDir(
        repo_.path(),
        BuildRandomModel("small", 4, {LayerDef(3, engine::Activation::kRelu)},
                         engine::WeightLayout::kOutIn, 1),
        1, FileFormat::kSafetensors, formats::DType::kF32);
    // ~5.5 M parameters (22 MB): its load runs long enough to be seen
    // LOADING in the registry.
    WriteModelDir(repo_.path(),
                  BuildRandomModel("big", 512,
                                   {LayerDef(1536, engine::Activation::kRelu),
                                    LayerDef(1536, engine::Activation::kRelu),
                                    LayerDef(1536, engine::Activation::kRelu),
                                    LayerDef(4, engine::Activation::kSoftmax)},
                                   engine::WeightLayout::kOutIn, 2),
                  1, FileFormat::kSafetensors, formats::DType::kF32);
  }

  // As the server shuts down: the lifecycle first (pending loads are
  // answered), then the gRPC server.
  void TearDown() override {
    if (lifecycle_) lifecycle_->Stop();
    if (server_) server_->Shutdown();
  }

  void Start(ModelControlMode mode) {
    ModelLifecycle::Options options;
    options.repository = repo_.path();
    options.mode = mode;
    lifecycle_ = std::make_unique<ModelLifecycle>(options, &registry_,
                                                  &scheduler_, &metrics_);
    ASSERT_TRUE(lifecycle_->Start().ok());
    service_ =
        std::make_unique<ModelRepositoryService>(lifecycle_.get(), &metrics_);
    std::shared_ptr<grpc::Channel> channel;
    ASSERT_NO_FATAL_FAILURE(nnserve::testing::StartLoopbackServer(
        service_.get(), &server_, &channel));
    stub_ = v1::ModelRepository::NewStub(channel);
  }

  grpc::Status Load(const std::string& model,
                    v1::LoadModelResponse* response = nullptr) {
    v1::LoadModelRequest request;
    request.set_model(model);
    v1::LoadModelResponse ignored;
    grpc::ClientContext context;
    return stub_->LoadModel(&context, request, response ? response : &ignored);
  }

  grpc::Status Unload(const std::string& model) {
    v1::UnloadModelRequest request;
    request.set_model(model);
    v1::UnloadModelResponse response;
    grpc::ClientContext context;
    return stub_->UnloadModel(&context, request, &response);
  }

  // Whether the registry lists `model` with a version in `state`.
  bool Listed(const std::string& model, v1::ModelVersionStatus::State state) {
    const v1::ListModelsResponse list = registry_.ListModels();
    for (const v1::ModelStatus& m : list.models()) {
      if (m.name() != model) continue;
      for (const v1::ModelVersionStatus& v : m.versions()) {
        if (v.state() == state) return true;
      }
    }
    return false;
  }

  double RequestCount(const std::string& model, const std::string& method,
                      const std::string& code) {
    return nnserve::testing::RequestCount(metrics_, model, method, code);
  }

  ScopedTempDir repo_{"repository_service_test"};
  ServerMetrics metrics_{"test"};
  Scheduler scheduler_{Scheduler::Options{.threads = 1}};
  ModelRegistry registry_{&metrics_};
  std::unique_ptr<ModelLifecycle> lifecycle_;
  std::unique_ptr<ModelRepositoryService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::ModelRepository::Stub> stub_;
};

TEST_F(RepositoryServiceTest, AnswersOnceTheModelServesAndCountsTheCalls) {
  ASSERT_NO_FATAL_FAILURE(Start(ModelControlMode::kExplicit));
  EXPECT_EQ(registry_.Find("small", 0).status().code(),
            absl::StatusCode::kNotFound);

  v1::LoadModelResponse response;
  grpc::Status status = Load("small", &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.model(), "small");
  EXPECT_TRUE(registry_.Find("small", 0).ok());

  status = Unload("small");
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(registry_.Find("small", 0).status().code(),
            absl::StatusCode::kNotFound);

  EXPECT_EQ(Load("nope").error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Load("../small").error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  EXPECT_EQ(RequestCount("small", "LoadModel", "OK"), 1);
  EXPECT_EQ(RequestCount("small", "UnloadModel", "OK"), 1);
  EXPECT_EQ(RequestCount("_unknown", "LoadModel", "NOT_FOUND"), 1);
  EXPECT_EQ(RequestCount("_unknown", "LoadModel", "INVALID_ARGUMENT"), 1);
}

TEST_F(RepositoryServiceTest, ModeNoneRefusesNamingTheMode) {
  ASSERT_NO_FATAL_FAILURE(Start(ModelControlMode::kNone));
  ASSERT_TRUE(registry_.Find("small", 0).ok());
  for (const grpc::Status& status : {Load("small"), Unload("small")}) {
    EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
    EXPECT_THAT(status.error_message(), HasSubstr("none"));
  }
  EXPECT_TRUE(registry_.Find("small", 0).ok());
  EXPECT_EQ(RequestCount("_unknown", "LoadModel", "FAILED_PRECONDITION"), 1);
}

// A LoadModel sent asynchronously; its answer arrives on a gRPC thread.
class AsyncLoad {
 public:
  AsyncLoad(v1::ModelRepository::Stub& stub, const std::string& model) {
    request_.set_model(model);
    stub.async()->LoadModel(&context_, &request_, &response_,
                            [this](grpc::Status status) {
                              std::lock_guard<std::mutex> lock(mutex_);
                              status_ = std::move(status);
                              done_ = true;
                              answered_.notify_all();
                            });
  }
  ~AsyncLoad() { Wait(); }

  bool done() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return done_;
  }
  // Waits for the answer (up to 2 minutes); whether it came.
  bool Wait() {
    std::unique_lock<std::mutex> lock(mutex_);
    return answered_.wait_for(lock, std::chrono::seconds(120),
                              [this] { return done_; });
  }
  // Read after Wait().
  const grpc::Status& status() const { return status_; }
  const v1::LoadModelResponse& response() const { return response_; }

 private:
  grpc::ClientContext context_;
  v1::LoadModelRequest request_;
  v1::LoadModelResponse response_;
  mutable std::mutex mutex_;
  std::condition_variable answered_;
  bool done_ = false;
  grpc::Status status_;
};

TEST_F(RepositoryServiceTest, DrainRefusesNewCallsAndWaitsForARunningLoad) {
  ASSERT_NO_FATAL_FAILURE(Start(ModelControlMode::kExplicit));

  // Load "big" until its load is seen running (LOADING in the registry).
  // A load that finishes before the test looks is unloaded and tried again.
  std::unique_ptr<AsyncLoad> load;
  for (int attempt = 0; attempt < 5 && load == nullptr; ++attempt) {
    auto candidate = std::make_unique<AsyncLoad>(*stub_, "big");
    while (!candidate->done() &&
           !Listed("big", v1::ModelVersionStatus::LOADING)) {
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
    if (!candidate->done()) {
      load = std::move(candidate);
    } else {
      ASSERT_TRUE(candidate->status().ok())
          << candidate->status().error_message();
      ASSERT_TRUE(Unload("big").ok());
    }
  }
  ASSERT_NE(load, nullptr) << "5 loads of 'big' all finished unobserved";
  service_->BeginDrain();

  // New calls are refused at once, while the load still runs.
  const grpc::Status refused = Load("small");
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(refused.error_message(), HasSubstr("shutting down"));
  EXPECT_EQ(registry_.Find("small", 0).status().code(),
            absl::StatusCode::kNotFound);

  // Idle means the running load has completed: "big" serves.
  ASSERT_TRUE(service_->WaitForIdle(std::chrono::system_clock::now() +
                                    std::chrono::seconds(120)));
  EXPECT_TRUE(registry_.Find("big", 0).ok());
  ASSERT_TRUE(load->Wait());
  EXPECT_TRUE(load->status().ok()) << load->status().error_message();
  EXPECT_EQ(load->response().model(), "big");
}

}  // namespace
}  // namespace nnserve::server
