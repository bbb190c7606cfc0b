#include "tests/util/test_certs.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>
#include <sstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

extern char** environ;

namespace nnserve::testing {
namespace {

namespace fs = std::filesystem;

constexpr char kOpenssl[] = "/usr/bin/openssl";

std::string ReadText(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// A key and certificate signing request for `subject`.
absl::Status MakeKeyAndRequest(const fs::path& dir, const std::string& name,
                               const std::string& subject) {
  return RunOpenssl(dir, {"req", "-new", "-newkey", "ec", "-pkeyopt",
                          "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
                          (dir / (name + ".key")).string(), "-out",
                          (dir / (name + ".csr")).string(), "-subj", subject});
}

// Signs <name>.csr with `ca`, adding the extensions in `extensions`.
absl::StatusOr<CertAndKey> SignRequest(const fs::path& dir,
                                       const std::string& name,
                                       const CertAndKey& ca,
                                       const std::string& extensions) {
  const fs::path ext = dir / (name + ".ext");
  {
    std::ofstream out(ext);
    out << extensions;
    if (!out) {
      return absl::InternalError(absl::StrCat("cannot write ", ext.string()));
    }
  }
  CertAndKey result{dir / (name + ".pem"), dir / (name + ".key")};
  absl::Status signed_ok = RunOpenssl(
      dir,
      {"x509", "-req", "-in", (dir / (name + ".csr")).string(), "-CA",
       ca.cert.string(), "-CAkey", ca.key.string(), "-set_serial",
       std::to_string(std::hash<std::string>{}(dir.string() + name) &
                      0x7fffffff),
       "-days", "2", "-extfile", ext.string(), "-out", result.cert.string()});
  if (!signed_ok.ok()) return signed_ok;
  return result;
}

}  // namespace

absl::Status RunOpenssl(const fs::path& dir, std::vector<std::string> args) {
  args.insert(args.begin(), kOpenssl);
  const fs::path log = dir / "openssl.log";
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null",
                                   O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  pid_t pid = -1;
  const int spawned =
      posix_spawn(&pid, kOpenssl, &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  const std::string command = absl::StrJoin(args, " ");
  if (spawned != 0) {
    return absl::InternalError(absl::StrCat("cannot run '", command,
                                            "': ", std::strerror(spawned),
                                            " (is the openssl package "
                                            "installed?)"));
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      return absl::InternalError(
          absl::StrCat("waitpid for '", command, "': ", std::strerror(errno)));
    }
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return absl::InternalError(
        absl::StrCat("'", command, "' failed: ", ReadText(log)));
  }
  return absl::OkStatus();
}

absl::StatusOr<CertAndKey> MakeTestCa(const fs::path& dir,
                                      const std::string& name) {
  CertAndKey ca{dir / (name + ".pem"), dir / (name + ".key")};
  absl::Status made = RunOpenssl(
      dir, {"req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
            ca.key.string(), "-out", ca.cert.string(), "-days", "2", "-subj",
            "/CN=" + name, "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign"});
  if (!made.ok()) return made;
  return ca;
}

absl::StatusOr<CertAndKey> MakeServerCert(const fs::path& dir,
                                          const std::string& name,
                                          const CertAndKey& ca) {
  if (absl::Status s = MakeKeyAndRequest(dir, name, "/CN=localhost"); !s.ok()) {
    return s;
  }
  return SignRequest(dir, name, ca,
                     "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                     "extendedKeyUsage=serverAuth\n");
}

absl::StatusOr<CertAndKey> MakeClientCert(const fs::path& dir,
                                          const std::string& name,
                                          const CertAndKey& ca) {
  if (absl::Status s = MakeKeyAndRequest(dir, name, "/CN=" + name); !s.ok()) {
    return s;
  }
  return SignRequest(dir, name, ca, "extendedKeyUsage=clientAuth\n");
}

absl::StatusOr<TestCertificates> MakeTestCertificates(const fs::path& dir) {
  TestCertificates certs;
  absl::StatusOr<CertAndKey> made = MakeTestCa(dir, "ca");
  if (!made.ok()) return made.status();
  certs.ca = *made;
  made = MakeServerCert(dir, "server", certs.ca);
  if (!made.ok()) return made.status();
  certs.server = *made;
  made = MakeClientCert(dir, "client", certs.ca);
  if (!made.ok()) return made.status();
  certs.client = *made;
  made = MakeTestCa(dir, "other_ca");
  if (!made.ok()) return made.status();
  certs.other_ca = *made;
  made = MakeServerCert(dir, "other_server", certs.other_ca);
  if (!made.ok()) return made.status();
  certs.other_server = *made;
  made = MakeClientCert(dir, "other_client", certs.other_ca);
  if (!made.ok()) return made.status();
  certs.other_client = *made;
  return certs;
}

absl::Status ReplaceFileAtomically(const fs::path& from, const fs::path& to) {
  const fs::path temp = to.parent_path() / (".tmp-" + to.filename().string());
  std::error_code error;
  fs::copy_file(from, temp, fs::copy_options::overwrite_existing, error);
  if (!error) fs::rename(temp, to, error);
  if (error) {
    return absl::InternalError(absl::StrCat("cannot replace ", to.string(),
                                            " with ", from.string(), ": ",
                                            error.message()));
  }
  return absl::OkStatus();
}

}  // namespace nnserve::testing
