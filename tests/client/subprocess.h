// Test support: child processes for the client integration tests. A
// ChildProcess owns one forked child (killed and reaped on destruction);
// RunCommand runs a command to completion and captures its output. Not
// thread-safe; use from the test thread.
#ifndef NNSERVE_TESTS_CLIENT_SUBPROCESS_H_
#define NNSERVE_TESTS_CLIENT_SUBPROCESS_H_

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace nnserve::client_testing {

struct CommandResult {
  int exit_code = -1;  // 128 + signal when killed by a signal.
  std::string out;     // Captured stdout.
  std::string err;     // Captured stderr.
};

// Runs argv[0] with `argv`, feeding `stdin_text` on standard input, and waits
// up to `timeout` (then kills it and fails with DEADLINE_EXCEEDED).
absl::StatusOr<CommandResult> RunCommand(
    const std::vector<std::string>& argv, const std::string& stdin_text = "",
    std::chrono::seconds timeout = std::chrono::seconds(60));

// A running child with stdout/stderr redirected to files in a temp dir.
class ChildProcess {
 public:
  static absl::StatusOr<std::unique_ptr<ChildProcess>> Start(
      const std::vector<std::string>& argv);
  ~ChildProcess();

  pid_t pid() const { return pid_; }
  // Sends SIGTERM and waits up to `timeout`; returns the exit code.
  absl::StatusOr<int> Terminate(
      std::chrono::seconds timeout = std::chrono::seconds(10));
  // Captured stdout so far.
  std::string Stdout() const;

 private:
  ChildProcess(pid_t pid, std::string dir) : pid_(pid), dir_(std::move(dir)) {}
  pid_t pid_;
  std::string dir_;
  bool reaped_ = false;
};

// A fresh empty directory under $TMPDIR (or /tmp); throws
// std::runtime_error if none can be made.
std::string MakeTempDir();

// Starts bench/transport_baseline_server on 127.0.0.1 port 0 with
// `extra_args`, waits for its port file and returns "127.0.0.1:PORT".
struct Baseline {
  std::unique_ptr<ChildProcess> process;
  std::string address;
};
absl::StatusOr<Baseline> StartBaseline(
    const std::string& binary, const std::vector<std::string>& extra_args);

}  // namespace nnserve::client_testing

#endif  // NNSERVE_TESTS_CLIENT_SUBPROCESS_H_
