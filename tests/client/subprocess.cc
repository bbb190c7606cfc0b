#include "tests/client/subprocess.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace nnserve::client_testing {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  std::ostringstream contents;
  contents << file.rdbuf();
  return contents.str();
}

// Forks and execs argv with stdin/stdout/stderr from/to the given files.
absl::StatusOr<pid_t> Spawn(const std::vector<std::string>& argv,
                            const std::string& in, const std::string& out,
                            const std::string& err) {
  if (argv.empty()) return absl::InvalidArgumentError("empty argv");
  std::vector<char*> args;
  for (const std::string& a : argv)
    args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t pid = fork();
  if (pid < 0) return absl::InternalError("fork failed");
  if (pid == 0) {
    const int in_fd = open(in.c_str(), O_RDONLY);
    const int out_fd = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int err_fd = open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (in_fd < 0 || out_fd < 0 || err_fd < 0) _exit(126);
    dup2(in_fd, 0);
    dup2(out_fd, 1);
    dup2(err_fd, 2);
    execv(args[0], args.data());
    _exit(127);
  }
  return pid;
}

// Waits for `pid` up to `timeout`; returns the exit code or 128 + signal.
absl::StatusOr<int> WaitFor(pid_t pid, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    int status = 0;
    const pid_t done = waitpid(pid, &status, WNOHANG);
    if (done == pid) {
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    if (done < 0) return absl::InternalError("waitpid failed");
    if (std::chrono::steady_clock::now() > deadline) {
      return absl::DeadlineExceededError(absl::StrCat(
          "process ", pid, " still running after ", timeout.count(), " ms"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

}  // namespace

std::string MakeTempDir() {
  const char* base = getenv("TMPDIR");
  std::string pattern =
      absl::StrCat(base != nullptr ? base : "/tmp", "/nnserve-client-XXXXXX");
  // Never a shared directory instead: callers remove what they get.
  if (mkdtemp(pattern.data()) == nullptr) {
    throw std::runtime_error(
        absl::StrCat("mkdtemp(", pattern, ") failed: ", strerror(errno)));
  }
  return pattern;
}

absl::StatusOr<CommandResult> RunCommand(const std::vector<std::string>& argv,
                                         const std::string& stdin_text,
                                         std::chrono::seconds timeout) {
  const std::string dir = MakeTempDir();
  const std::string in = dir + "/stdin", out = dir + "/stdout",
                    err = dir + "/stderr";
  std::ofstream(in, std::ios::binary) << stdin_text;
  absl::StatusOr<pid_t> pid = Spawn(argv, in, out, err);
  if (!pid.ok()) return pid.status();
  absl::StatusOr<int> code = WaitFor(*pid, timeout);
  if (!code.ok()) {
    kill(*pid, SIGKILL);
    waitpid(*pid, nullptr, 0);
    return code.status();
  }
  CommandResult result{*code, ReadFile(out), ReadFile(err)};
  std::filesystem::remove_all(dir);
  return result;
}

absl::StatusOr<std::unique_ptr<ChildProcess>> ChildProcess::Start(
    const std::vector<std::string>& argv) {
  const std::string dir = MakeTempDir();
  absl::StatusOr<pid_t> pid =
      Spawn(argv, "/dev/null", dir + "/stdout", dir + "/stderr");
  if (!pid.ok()) return pid.status();
  return std::unique_ptr<ChildProcess>(new ChildProcess(*pid, dir));
}

ChildProcess::~ChildProcess() {
  if (!reaped_) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  std::filesystem::remove_all(dir_);
}

absl::StatusOr<int> ChildProcess::Terminate(std::chrono::seconds timeout) {
  kill(pid_, SIGTERM);
  absl::StatusOr<int> code = WaitFor(pid_, timeout);
  if (code.ok()) reaped_ = true;
  return code;
}

std::string ChildProcess::Stdout() const { return ReadFile(dir_ + "/stdout"); }

absl::StatusOr<Baseline> StartBaseline(
    const std::string& binary, const std::vector<std::string>& extra_args) {
  const std::string dir = MakeTempDir();
  const std::string port_file = dir + "/port";
  std::vector<std::string> argv = {binary, "--address", "127.0.0.1:0",
                                   "--port-file", port_file};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  absl::StatusOr<std::unique_ptr<ChildProcess>> process =
      ChildProcess::Start(argv);
  if (!process.ok()) return process.status();
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    int port = 0;
    if (absl::SimpleAtoi(absl::StripAsciiWhitespace(ReadFile(port_file)),
                         &port) &&
        port > 0) {
      std::filesystem::remove_all(dir);
      return Baseline{*std::move(process), absl::StrCat("127.0.0.1:", port)};
    }
    int status = 0;
    if (waitpid((*process)->pid(), &status, WNOHANG) != 0) {
      return absl::InternalError(
          absl::StrCat(binary, " exited before writing its port file"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return absl::DeadlineExceededError(
      absl::StrCat(binary, " wrote no port file within 30 s"));
}

}  // namespace nnserve::client_testing
