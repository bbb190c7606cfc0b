"""Static checks of the Dockerfile and .dockerignore (the container test,
container_test.sh, builds and runs the image for real): stages, runtime
contract (user, ports, healthcheck, env), and the build context."""

import os
import re
import unittest

import deploy_files as files


def instructions(text):
    """[(stage index, INSTRUCTION, arguments)] with continuations joined."""
    joined = re.sub(r"\\\n", " ", text)
    result, stage = [], -1
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        word = word.upper()
        if word == "FROM":
            stage += 1
        result.append((stage, word, " ".join(rest.split())))
    return result


class DockerfileTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(files.DOCKERFILE) as f:
            cls.all = instructions(f.read())
        cls.final = max(s for s, _, _ in cls.all)
        cls.runtime = [(w, a) for s, w, a in cls.all if s == cls.final]

    def args(self, word):
        return [a for w, a in self.runtime if w == word]

    def test_multi_stage_from_debian_bookworm_slim(self):
        froms = [a for _, w, a in self.all if w == "FROM"]
        self.assertGreaterEqual(len(froms), 2, "not a multi-stage build")
        arg = [a for s, w, a in self.all if s == -1 and w == "ARG"]
        self.assertIn("DEBIAN_IMAGE=debian:bookworm-slim", arg)
        for f in froms:
            self.assertTrue(f.startswith("${DEBIAN_IMAGE}"), f)

    def test_build_stage_runs_engine_tests(self):
        runs = " ".join(a for s, w, a in self.all if s < self.final and w == "RUN")
        self.assertRegex(runs, r"ctest .*-L engine")
        self.assertIn("--no-tests=error", runs)

    def test_runtime_installs_no_dev_packages_or_compilers(self):
        runs = " ".join(self.args("RUN"))
        self.assertNotRegex(runs, r"-dev\b|build-essential|\bcmake\b|\bg\+\+")
        for lib in ("libgrpc++1.51", "libprotobuf32", "libdnnl2",
                    "libprometheus-cpp-core1.0", "libprometheus-cpp-pull1.0",
                    "libspdlog1.10", "libfmt9", "libgomp1",
                    "libcpp-httplib0.11", "libssl3"):  # REST (and its TLS)
            self.assertIn(lib, runs)
        self.assertIn("--no-install-recommends", runs)
        self.assertIn("rm -rf /var/lib/apt/lists/*", runs)
        self.assertIn("not found", runs, "no ldd check for missing libraries")

    def test_runtime_contract(self):
        self.assertEqual(self.args("USER"), ["10001:0"])
        # REST (Open Inference Protocol), gRPC, metrics.
        self.assertEqual(sorted(" ".join(self.args("EXPOSE")).split()),
                         ["50051", "8000", "9464"])
        healthcheck = " ".join(self.args("HEALTHCHECK"))
        self.assertRegex(healthcheck, r'CMD \["nnserve-cli", (.*, )?"health"\]')
        self.assertEqual(self.args("ENTRYPOINT"), ['["nnserve"]'])
        self.assertEqual(self.args("CMD"), ['["serve"]'])
        env = " ".join(self.args("ENV"))
        for setting in ("NNSERVE_MODEL_REPOSITORY=/models",
                        "NNSERVE_GRPC_ADDRESS=0.0.0.0:50051",
                        "NNSERVE_METRICS_ADDRESS=0.0.0.0:9464",
                        "NNSERVE_HTTP_ADDRESS=0.0.0.0:8000",
                        "NNSERVE_ADDRESS=127.0.0.1:50051"):
            self.assertIn(setting, env)
        # Every exposed port is one nnserve listens on.
        listen = {a.rsplit(":", 1)[1] for a in re.findall(
            r"NNSERVE_(?:GRPC|METRICS|HTTP)_ADDRESS=(\S+)", env)}
        self.assertEqual(listen, set(" ".join(self.args("EXPOSE")).split()))
        copies = self.args("COPY")
        self.assertTrue(any(c.endswith("/models/") for c in copies), copies)
        self.assertTrue(any("/usr/local/bin/" in c for c in copies), copies)


class DockerignoreTest(unittest.TestCase):
    def test_excludes_build_trees_and_git(self):
        with open(os.path.join(files.SOURCE_DIR, ".dockerignore")) as f:
            patterns = {l.strip() for l in f if l.strip() and not l.startswith("#")}
        for pattern in (".git", "build", "build-*", "**/__pycache__"):
            self.assertIn(pattern, patterns)
        for needed in ("CMakeLists.txt", "engine", "server", "client", "proto",
                       "models", "tests"):
            self.assertNotIn(needed, patterns, f"{needed} is needed to build")


if __name__ == "__main__":
    unittest.main()
