// Allocation failures inside the engine (engine/model.h): Model::Create
// turns them into RESOURCE_EXHAUSTED statuses instead of letting
// std::bad_alloc (or oneDNN's out-of-memory error) escape and terminate the
// server with every call in flight.
//
// (Forward has the same boundary, but an address-space cap cannot test it
// here: the only allocations a forward pass makes on a new batch size are
// oneDNN's JIT code buffers, and oneDNN 2.6 crashes when mapping those
// fails instead of reporting it.)
//
// Memory runs out for real: each test forks (a gtest death test), caps the
// child's address space just above what it has mapped (RLIMIT_AS), and
// makes the call there. The child exits 0 only if the call returned
// RESOURCE_EXHAUSTED; an exception escaping would abort it instead.
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "engine/model.h"
#include "gtest/gtest.h"
#include "tests/util/model_builder.h"
#include "tests/util/sanitizers.h"

namespace nnserve::engine {
namespace {

using ::nnserve::testing::BuildRandomModel;
using ::nnserve::testing::LayerDef;
using ::nnserve::testing::RandomModel;

// Address and thread sanitizers reserve terabytes of shadow memory, which
// an address-space cap cannot leave room for.
constexpr bool kSanitizer = ::nnserve::testing::kAddressSanitizer ||
                            ::nnserve::testing::kThreadSanitizer;

// VmSize of this process in bytes (0 if unreadable).
long long MappedBytes() {
  std::ifstream status("/proc/self/status");
  std::string key;
  long long kb = 0;
  while (status >> key) {
    if (key == "VmSize:") {
      status >> kb;
      return kb * 1024;
    }
  }
  return 0;
}

// Caps the address space at what is mapped now plus `headroom` bytes.
void CapAddressSpace(long long headroom) {
  const rlimit limit{static_cast<rlim_t>(MappedBytes() + headroom),
                     static_cast<rlim_t>(MappedBytes() + headroom)};
  if (setrlimit(RLIMIT_AS, &limit) != 0) _exit(5);
}

// Reports `status` on stderr and exits 0 iff it is RESOURCE_EXHAUSTED.
[[noreturn]] void ExitWith(const absl::Status& status) {
  std::fprintf(stderr, "status: %s\n", status.ToString().c_str());
  _exit(status.code() == absl::StatusCode::kResourceExhausted ? 0 : 4);
}

// Three 1024-unit layers: ~8 MB of weights the engine copies into oneDNN's
// layout at load.
RandomModel BigModel() {
  return BuildRandomModel(
      "big", 1024,
      {LayerDef(1024, Activation::kRelu), LayerDef(1024, Activation::kRelu),
       LayerDef(10, Activation::kSoftmax)},
      WeightLayout::kOutIn, 3);
}

class ModelMemoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (kSanitizer) {
      GTEST_SKIP() << "RLIMIT_AS cannot be combined with a sanitizer's "
                      "shadow memory";
    }
    GTEST_FLAG_SET(death_test_style, "threadsafe");
  }
};

TEST_F(ModelMemoryTest, OutOfMemoryDuringCreateIsResourceExhausted) {
  const RandomModel m = BigModel();
  EXPECT_EXIT(
      {
        absl::StatusOr<ModelSpec> spec =
            BuildModelSpec(m.config, m.tensors, "mem");
        if (!spec.ok()) _exit(6);
        CapAddressSpace(1 << 20);
        absl::StatusOr<std::shared_ptr<const Model>> model =
            Model::Create(*std::move(spec), 1, EngineOptions{});
        if (model.ok()) _exit(3);
        ExitWith(model.status());
      },
      ::testing::ExitedWithCode(0), "RESOURCE_EXHAUSTED: out of memory");
}

}  // namespace
}  // namespace nnserve::engine
