// ServerProcess: launches the real `nnserve serve` binary as a child process
// for integration tests, on loopback with OS-chosen ports (port 0 plus
// --port-file), and owns it until destruction.
//
// Each ServerProcess owns a private temporary directory holding the port file
// and the child's combined stdout+stderr log (server.log). The destructor
// stops a child that is still running with SIGTERM and fails the current
// gtest test unless it exits 0 within kStopTimeout (then it is killed with
// SIGKILL); it also fails the test when the log holds a sanitizer report
// (AddressSanitizer, LeakSanitizer, UndefinedBehaviorSanitizer; see
// scripts/asan.sh), so that an error in the server process fails the test
// that ran it. It prints the tail of the log when the test has failed and
// removes the temporary directory. The child also receives SIGKILL if the
// thread that started it dies (PR_SET_PDEATHSIG), so a crashed test leaves no
// server behind.
//
// This helper knows nothing about gRPC: readiness beyond "the port file was
// written" is checked by the caller through WaitUntil(probe).
//
// Not thread-safe: use one ServerProcess from one thread (the test body). The
// server it launches is of course used from many threads.
#ifndef NNSERVE_TESTS_UTIL_SERVER_PROCESS_H_
#define NNSERVE_TESTS_UTIL_SERVER_PROCESS_H_

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace nnserve::testing {

// Path of the `nnserve` binary from the NNSERVE_BINARY environment variable
// (set by tests/server/CMakeLists.txt). NotFound if unset or missing.
absl::StatusOr<std::filesystem::path> NnserveBinaryFromEnv();

struct ServerOptions {
  // The binary to run; empty = NnserveBinaryFromEnv().
  std::filesystem::path binary;
  std::filesystem::path model_repository;
  // Loopback only. Port 0 lets the OS choose; the chosen ports are read
  // back from the --port-file the server writes once it is serving.
  std::string grpc_address = "127.0.0.1:0";
  std::string metrics_address = "127.0.0.1:0";
  // The REST endpoint; empty: none.
  std::string http_address = "127.0.0.1:0";
  // Further `serve` flags, e.g. {"--max-batch-rows=8", "--threads=2"}.
  std::vector<std::string> extra_args;
  // Environment variables set (or overridden) in the child.
  std::map<std::string, std::string> environment;
};

// The sanitizer report (AddressSanitizer, LeakSanitizer or
// UndefinedBehaviorSanitizer) in a process's output `log`: at most
// `max_lines` lines from the first report's first line; empty if none.
std::string SanitizerReport(absl::string_view log, int max_lines = 150);

// How the child ended.
struct ExitStatus {
  bool exited = false;  // Normal exit: `code` is valid.
  int code = 0;
  int signal = 0;  // Killed by this signal when !exited.
  std::string ToString() const;
};

class ServerProcess {
 public:
  // How long the destructor waits after SIGTERM: the server's default
  // --shutdown-timeout (30 s) plus a margin for slow (sanitizer) builds.
  static constexpr std::chrono::seconds kStopTimeout{60};

  // Spawns `nnserve serve ...` and returns at once, without waiting for
  // anything. Call WaitForPorts() next (Start() does both).
  static absl::StatusOr<std::unique_ptr<ServerProcess>> Launch(
      const ServerOptions& options);

  // Launch() + WaitForPorts(timeout).
  static absl::StatusOr<std::unique_ptr<ServerProcess>> Start(
      const ServerOptions& options,
      std::chrono::milliseconds timeout = std::chrono::seconds(60));

  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;
  ~ServerProcess();

  // Waits until the port file holds "grpc_port metrics_port http_port\n"
  // and records the ports. Fails (with the log tail) if the child exits first
  // or the timeout passes.
  absl::Status WaitForPorts(std::chrono::milliseconds timeout);

  // Polls `probe` (every few ms) until it returns true. Fails with the log
  // tail if the child exits first or the timeout passes.
  absl::Status WaitUntil(const std::function<bool()>& probe,
                         std::chrono::milliseconds timeout,
                         const std::string& what = "condition");

  // Waits until the log contains `prefix` and returns the text after it up
  // to the next whitespace, e.g. prefix "event=listening grpc_port=" gives
  // the port the server logged. Fails with the log tail on exit/timeout.
  absl::StatusOr<std::string> WaitForLogValue(
      const std::string& prefix, std::chrono::milliseconds timeout);

  pid_t pid() const { return pid_; }
  int grpc_port() const { return grpc_port_; }
  int metrics_port() const { return metrics_port_; }
  // The REST port; 0 when started with an empty http_address.
  int http_port() const { return http_port_; }
  // "127.0.0.1:<grpc_port>", for grpc::CreateChannel.
  std::string grpc_target() const;

  // Sends `sig` to the child. FailedPrecondition if it already exited.
  absl::Status Signal(int sig);

  // True while the child has not exited (reaps it if it just did).
  bool Running();

  // Waits for the child to exit. DeadlineExceeded (child left running) if
  // it is still alive after `timeout`.
  absl::StatusOr<ExitStatus> WaitForExit(std::chrono::milliseconds timeout);

  // The child's combined stdout and stderr so far.
  std::string ReadLog() const;
  // The last `max_lines` lines of the log, for failure messages.
  std::string LogTail(int max_lines = 40) const;
  const std::filesystem::path& log_path() const { return log_path_; }

 private:
  ServerProcess() = default;
  absl::Status Spawn(const ServerOptions& options);
  // Non-blocking reap; returns true once the child has exited.
  bool Reap();

  std::filesystem::path dir_;
  std::filesystem::path log_path_;
  std::filesystem::path port_file_;
  pid_t pid_ = -1;
  bool exited_ = false;
  ExitStatus exit_status_;
  int grpc_port_ = 0;
  int metrics_port_ = 0;
  int http_port_ = 0;
};

}  // namespace nnserve::testing

#endif  // NNSERVE_TESTS_UTIL_SERVER_PROCESS_H_
