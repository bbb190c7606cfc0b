#include "tests/util/server_process.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"

extern char** environ;

namespace nnserve::testing {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kPollInterval = std::chrono::milliseconds(10);

std::string ReadWholeFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

absl::StatusOr<std::filesystem::path> MakeTempDir() {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = absl::StrCat(
      tmp != nullptr && *tmp != '\0' ? tmp : "/tmp", "/nnserve-server-XXXXXX");
  if (mkdtemp(pattern.data()) == nullptr) {
    return absl::InternalError(
        absl::StrCat("mkdtemp(", pattern, ") failed: ", strerror(errno)));
  }
  return std::filesystem::path(pattern);
}

// The first line of a sanitizer report as the runtimes print it
// (compiler-rt: "==PID==ERROR: AddressSanitizer: ...", "==PID==ERROR:
// LeakSanitizer: ...", "FILE:LINE:COL: runtime error: ..." for UBSan).
constexpr absl::string_view kSanitizerMarkers[] = {
    "ERROR: AddressSanitizer", "ERROR: LeakSanitizer", ": runtime error: "};

}  // namespace

std::string SanitizerReport(absl::string_view log, int max_lines) {
  size_t first = absl::string_view::npos;
  for (absl::string_view marker : kSanitizerMarkers) {
    first = std::min(first, log.find(marker));
  }
  if (first == absl::string_view::npos) return "";
  const size_t line_start = log.rfind('\n', first);
  log.remove_prefix(line_start == absl::string_view::npos ? 0 : line_start + 1);
  size_t end = 0;
  for (int line = 0; line < max_lines && end < log.size(); ++line) {
    const size_t newline = log.find('\n', end);
    end = newline == absl::string_view::npos ? log.size() : newline + 1;
  }
  return std::string(log.substr(0, end));
}

absl::StatusOr<std::filesystem::path> NnserveBinaryFromEnv() {
  const char* env = std::getenv("NNSERVE_BINARY");
  if (env == nullptr || *env == '\0') {
    return absl::NotFoundError(
        "environment variable NNSERVE_BINARY is not set; expected the path "
        "of the nnserve binary (tests/server/CMakeLists.txt sets it)");
  }
  std::filesystem::path path(env);
  if (access(path.c_str(), X_OK) != 0) {
    return absl::NotFoundError(
        absl::StrCat("NNSERVE_BINARY='", env, "' is not an executable file"));
  }
  return path;
}

std::string ExitStatus::ToString() const {
  return exited ? absl::StrCat("exited with code ", code)
                : absl::StrCat("killed by signal ", signal, " (",
                               strsignal(signal), ")");
}

absl::StatusOr<std::unique_ptr<ServerProcess>> ServerProcess::Launch(
    const ServerOptions& options) {
  std::unique_ptr<ServerProcess> process(new ServerProcess());
  absl::StatusOr<std::filesystem::path> dir = MakeTempDir();
  if (!dir.ok()) return dir.status();
  process->dir_ = *dir;
  process->log_path_ = *dir / "server.log";
  process->port_file_ = *dir / "ports";
  if (absl::Status status = process->Spawn(options); !status.ok()) {
    return status;
  }
  return process;
}

absl::StatusOr<std::unique_ptr<ServerProcess>> ServerProcess::Start(
    const ServerOptions& options, std::chrono::milliseconds timeout) {
  absl::StatusOr<std::unique_ptr<ServerProcess>> process = Launch(options);
  if (!process.ok()) return process.status();
  if (absl::Status status = (*process)->WaitForPorts(timeout); !status.ok()) {
    return status;
  }
  return process;
}

absl::Status ServerProcess::Spawn(const ServerOptions& options) {
  std::filesystem::path binary = options.binary;
  if (binary.empty()) {
    absl::StatusOr<std::filesystem::path> from_env = NnserveBinaryFromEnv();
    if (!from_env.ok()) return from_env.status();
    binary = *from_env;
  }

  // Everything the child needs is built before fork(): after it, the child
  // only makes async-signal-safe calls.
  std::vector<std::string> args = {
      binary.string(),
      "serve",
      absl::StrCat("--model-repository=", options.model_repository.string()),
      absl::StrCat("--grpc-address=", options.grpc_address),
      absl::StrCat("--metrics-address=", options.metrics_address),
      absl::StrCat("--http-address=", options.http_address),
      absl::StrCat("--port-file=", port_file_.string()),
  };
  args.insert(args.end(), options.extra_args.begin(), options.extra_args.end());
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);

  std::map<std::string, std::string> env_map;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    absl::string_view kv(*entry);
    size_t eq = kv.find('=');
    if (eq == absl::string_view::npos) continue;
    env_map[std::string(kv.substr(0, eq))] = std::string(kv.substr(eq + 1));
  }
  for (const auto& [key, value] : options.environment) env_map[key] = value;
  std::vector<std::string> env_strings;
  for (const auto& [key, value] : env_map) {
    env_strings.push_back(absl::StrCat(key, "=", value));
  }
  std::vector<char*> envp;
  for (std::string& kv : env_strings) envp.push_back(kv.data());
  envp.push_back(nullptr);

  int log_fd =
      open(log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    return absl::InternalError(absl::StrCat(
        "cannot create log file ", log_path_.string(), ": ", strerror(errno)));
  }
  int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null_fd < 0) {
    close(log_fd);
    return absl::InternalError(
        absl::StrCat("cannot open /dev/null: ", strerror(errno)));
  }
  const pid_t parent = getpid();

  pid_t pid = fork();
  if (pid < 0) {
    close(log_fd);
    close(null_fd);
    return absl::InternalError(absl::StrCat("fork failed: ", strerror(errno)));
  }
  if (pid == 0) {
    // Child. Die with the thread that started us; if the parent is already
    // gone, do not linger.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    // Reset the signal mask and dispositions the test process may have
    // changed (gRPC or gtest threads): the server installs its own.
    sigset_t empty;
    sigemptyset(&empty);
    sigprocmask(SIG_SETMASK, &empty, nullptr);
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGPIPE, SIG_DFL);
    dup2(null_fd, STDIN_FILENO);
    dup2(log_fd, STDOUT_FILENO);
    dup2(log_fd, STDERR_FILENO);
    execve(argv[0], argv.data(), envp.data());
    const char msg[] = "server_process: execve failed\n";
    ssize_t ignored = write(STDERR_FILENO, msg, sizeof(msg) - 1);
    (void)ignored;
    _exit(127);
  }
  close(log_fd);
  close(null_fd);
  pid_ = pid;
  return absl::OkStatus();
}

ServerProcess::~ServerProcess() {
  if (pid_ > 0 && !Reap()) {
    // A graceful stop, so that the server's shutdown path runs (and, in a
    // sanitizer build, LeakSanitizer's check at exit).
    kill(pid_, SIGTERM);
    absl::StatusOr<ExitStatus> exit = WaitForExit(kStopTimeout);
    if (!exit.ok()) {
      kill(pid_, SIGKILL);
      int status = 0;
      while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
      ADD_FAILURE() << "nnserve (pid " << pid_ << ") did not exit within "
                    << kStopTimeout.count() << " s of SIGTERM; killed";
    } else if (!(exit->exited && exit->code == 0) &&
               !(!exit->exited && exit->signal == SIGTERM)) {
      // (Killed by SIGTERM itself: it had not installed its handler yet.)
      ADD_FAILURE() << "nnserve (pid " << pid_
                    << ") did not exit cleanly on SIGTERM: it "
                    << exit->ToString() << " (expected exit code 0)";
    }
  }
  if (!log_path_.empty()) {
    const std::string report = SanitizerReport(ReadLog());
    if (!report.empty()) {
      ADD_FAILURE() << "nnserve (pid " << pid_
                    << ") reported a sanitizer error:\n"
                    << report;
    }
  }
  if (::testing::Test::HasFailure() && !log_path_.empty()) {
    std::cerr << "---- nnserve log (" << log_path_.string()
              << "), last lines ----\n"
              << LogTail(60) << "---- end of nnserve log ----\n";
  }
  std::error_code ignored;
  if (!dir_.empty()) std::filesystem::remove_all(dir_, ignored);
}

bool ServerProcess::Reap() {
  if (exited_) return true;
  if (pid_ <= 0) return true;
  int status = 0;
  pid_t result = waitpid(pid_, &status, WNOHANG);
  if (result == 0) return false;
  if (result < 0) {
    // Not our child any more (should not happen): treat it as gone.
    exited_ = true;
    exit_status_ = ExitStatus{false, -1, 0};
    return true;
  }
  exited_ = true;
  if (WIFEXITED(status)) {
    exit_status_ = ExitStatus{true, WEXITSTATUS(status), 0};
  } else {
    exit_status_ = ExitStatus{false, 0, WTERMSIG(status)};
  }
  return true;
}

bool ServerProcess::Running() { return !Reap(); }

std::string ServerProcess::grpc_target() const {
  return absl::StrCat("127.0.0.1:", grpc_port_);
}

absl::Status ServerProcess::WaitUntil(const std::function<bool()>& probe,
                                      std::chrono::milliseconds timeout,
                                      const std::string& what) {
  const Clock::time_point deadline = Clock::now() + timeout;
  while (true) {
    if (probe()) return absl::OkStatus();
    if (Reap()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "nnserve ", exit_status_.ToString(), " while waiting for ", what,
          "; log tail:\n", LogTail()));
    }
    if (Clock::now() >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat(
          "timed out after ", timeout.count(), " ms waiting for ", what,
          "; nnserve is still running; log tail:\n", LogTail()));
    }
    std::this_thread::sleep_for(kPollInterval);
  }
}

absl::Status ServerProcess::WaitForPorts(std::chrono::milliseconds timeout) {
  std::string parse_error;
  auto ports_written = [&] {
    std::string text = ReadWholeFile(port_file_);
    // The server writes the file atomically; still, only a complete line
    // counts.
    if (text.empty() || text.back() != '\n') return false;
    std::vector<absl::string_view> fields =
        absl::StrSplit(absl::string_view(text).substr(0, text.size() - 1), ' ',
                       absl::SkipEmpty());
    int grpc = 0, metrics = 0, http = 0;
    if (fields.size() != 3 || !absl::SimpleAtoi(fields[0], &grpc) ||
        !absl::SimpleAtoi(fields[1], &metrics) ||
        !absl::SimpleAtoi(fields[2], &http) || grpc <= 0 || metrics <= 0 ||
        http < 0) {
      parse_error = absl::StrCat(
          "port file ", port_file_.string(), " holds '", text,
          "', expected \"<grpc_port> <metrics_port> <http_port>\\n\"");
      return true;
    }
    grpc_port_ = grpc;
    metrics_port_ = metrics;
    http_port_ = http;
    return true;
  };
  absl::Status status = WaitUntil(
      ports_written, timeout, absl::StrCat("port file ", port_file_.string()));
  if (!status.ok()) return status;
  if (!parse_error.empty()) return absl::InternalError(parse_error);
  return absl::OkStatus();
}

absl::StatusOr<std::string> ServerProcess::WaitForLogValue(
    const std::string& prefix, std::chrono::milliseconds timeout) {
  std::string value;
  auto logged = [&] {
    const std::string log = ReadLog();
    const size_t at = log.find(prefix);
    if (at == std::string::npos) return false;
    const size_t begin = at + prefix.size();
    const size_t end = log.find_first_of(" \t\r\n", begin);
    if (end == std::string::npos) return false;  // Line not complete yet.
    value = log.substr(begin, end - begin);
    return true;
  };
  absl::Status status =
      WaitUntil(logged, timeout, absl::StrCat("log text '", prefix, "'"));
  if (!status.ok()) return status;
  return value;
}

absl::Status ServerProcess::Signal(int sig) {
  if (Reap()) {
    return absl::FailedPreconditionError(absl::StrCat("cannot send signal ",
                                                      sig, ": nnserve already ",
                                                      exit_status_.ToString()));
  }
  if (kill(pid_, sig) != 0) {
    return absl::InternalError(
        absl::StrCat("kill(", pid_, ", ", sig, ") failed: ", strerror(errno)));
  }
  return absl::OkStatus();
}

absl::StatusOr<ExitStatus> ServerProcess::WaitForExit(
    std::chrono::milliseconds timeout) {
  const Clock::time_point deadline = Clock::now() + timeout;
  while (!Reap()) {
    if (Clock::now() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("nnserve (pid ", pid_, ") still running after ",
                       timeout.count(), " ms; log tail:\n", LogTail()));
    }
    std::this_thread::sleep_for(kPollInterval);
  }
  return exit_status_;
}

std::string ServerProcess::ReadLog() const { return ReadWholeFile(log_path_); }

std::string ServerProcess::LogTail(int max_lines) const {
  std::string log = ReadLog();
  std::vector<absl::string_view> lines = absl::StrSplit(log, '\n');
  if (!lines.empty() && lines.back().empty()) lines.pop_back();
  size_t first = lines.size() > static_cast<size_t>(max_lines)
                     ? lines.size() - max_lines
                     : 0;
  std::string tail;
  for (size_t i = first; i < lines.size(); ++i) {
    absl::StrAppend(&tail, lines[i], "\n");
  }
  return tail;
}

}  // namespace nnserve::testing
