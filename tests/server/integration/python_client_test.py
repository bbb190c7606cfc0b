"""Runs the Python example client (client/python/nnserve_client.py) against
the real nnserve server serving the example repository models/, over both
protocols the example speaks: nnserve.v1 over gRPC (values and raw
encodings) and the Open Inference Protocol over REST; then both over TLS
(a CA and server certificate made with openssl; REST as https://).

The server is started by tests/util/nnserve_server.py ($NNSERVE_BINARY, set
by CTest; gRPC, metrics and REST on 127.0.0.1 port 0). Expected outputs come
from the NumPy reference forward pass in tools/reference.py.
Run: NNSERVE_BINARY=build/server/nnserve /usr/bin/python3 -m unittest -v \
         tests/server/integration/python_client_test.py
"""

import dataclasses
import os
import re
import socket
import subprocess
import sys
import tempfile
import unittest

import numpy as np

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
EXAMPLE = os.path.join(ROOT, "client", "python", "nnserve_client.py")
MODELS = os.path.join(ROOT, "models")
sys.path.insert(0, os.path.join(ROOT, "tools"))
sys.path.insert(0, os.path.join(ROOT, "tests", "util"))

import reference  # noqa: E402  (tools/reference.py)
from nnserve_server import NnserveServer  # noqa: E402  (tests/util)

# Every way the example can talk to the server.
GRPC_VALUES, GRPC_RAW, REST = ("grpc", []), ("grpc-raw", ["--raw"]), ("rest", None)
PROTOCOLS = [GRPC_VALUES, GRPC_RAW, REST]

CLASS_LINE = re.compile(
    r"^row (\d+): (?:label (\S+) )?\(?class (\d+)\)?\s+top: ((?:\d+:[0-9.]+\s*)+)$",
    re.MULTILINE)


def csv_rows(rows):
    # %.9g round-trips float32 exactly.
    return "\n".join(",".join(f"{v:.9g}" for v in row) for row in rows) + "\n"


def sample(model):
    return np.load(os.path.join(MODELS, model, "sample_input.npy"))


def expected(model, rows, layers=None):
    """Reference activations of the model's first `layers` layers (all by
    default), in float64."""
    ref = reference.load_model(os.path.join(MODELS, model))
    if layers is not None:
        ref = dataclasses.replace(ref, layers=ref.layers[:layers])
    return reference.forward(ref, rows.astype(np.float64))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PythonClientAgainstServerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = NnserveServer(model_repository=MODELS)
        cls.tmp = tempfile.TemporaryDirectory(prefix="nnserve-pyclient-")
        cls.stubs = os.path.join(cls.tmp.name, "stubs")

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()
        cls.server.stop()  # AssertionError unless SIGTERM -> exit 0

    def run_example(self, protocol, *args, stdin=""):
        name, extra = protocol
        if extra is None:
            target = ["--protocol", "rest", "--url", self.server.http_url]
        else:
            target = ["--address", self.server.grpc_address,
                      "--stubs-dir", self.stubs, *extra]
        result = subprocess.run(["/usr/bin/python3", EXAMPLE, *target, *args],
                                input=stdin, capture_output=True, text=True,
                                timeout=120)
        return result

    def assert_ok(self, result):
        self.assertEqual(result.returncode, 0,
                         f"{result.stderr}\n{self.server.log_tail()}")

    def value_lines(self, stdout, prefix=""):
        """{row: np.array} from `row R: <prefix>v, v, ...` lines."""
        found = re.findall(rf"^row (\d+): {re.escape(prefix)}([-0-9.e, ]+)$",
                           stdout, re.MULTILINE)
        return {int(r): np.array([float(v) for v in text.split(",")])
                for r, text in found}

    def assert_close(self, got, want, what):
        # Printed with 6 significant digits: compare relative to the row's
        # largest value.
        self.assertEqual(got.shape, want.shape, what)
        scale = max(np.max(np.abs(want)), 1e-30)
        self.assertLessEqual(np.max(np.abs(got - want)) / scale, 2e-5,
                             f"{what}: {got} vs {want}")

    def test_digits_labels_equal_reference_argmax(self):
        rows = sample("digits")
        want = expected("digits", rows)
        for protocol in PROTOCOLS:
            with self.subTest(protocol=protocol[0]):
                result = self.run_example(protocol, "--model", "digits",
                                          stdin=csv_rows(rows))
                self.assert_ok(result)
                if protocol is REST:
                    self.assertIn("ready: true", result.stdout)
                    self.assertIn("model: digits versions 1: pixels[-1, 64] -> "
                                  "digit[-1, 10], layers hidden[-1, 32], "
                                  "output[-1, 10]", result.stdout)
                else:
                    self.assertIn("health: SERVING", result.stdout)
                    self.assertIn("model: digits version 1: pixels[64] -> "
                                  "digit[10], 2410 parameters", result.stdout)
                printed = CLASS_LINE.findall(result.stdout)
                self.assertEqual(len(printed), len(rows), result.stdout)
                for r, label, cls_, top in printed:
                    r, best = int(r), int(np.argmax(want[int(r)]))
                    self.assertEqual((int(cls_), label), (best, str(best)), f"row {r}")
                    top = [(int(i), float(v)) for i, v in
                           (t.split(":") for t in top.split())]
                    # The 3 largest (near-ties may swap), best first.
                    self.assertEqual(len(top), 3, f"row {r}")
                    self.assertEqual(top[0][0], best, f"row {r}")
                    values = [v for _, v in top]
                    self.assertEqual(values, sorted(values, reverse=True), f"row {r}")
                    fourth = np.sort(want[r])[-4]
                    for i, value in top:
                        self.assertAlmostEqual(value, want[r][i], delta=6e-5)
                        self.assertGreaterEqual(value, fourth - 6e-5, f"row {r}")

    def test_mlp784_outputs_equal_reference(self):
        rows = sample("mlp-784")
        want = expected("mlp-784", rows)
        csv_path = os.path.join(self.tmp.name, "mlp784.csv")
        with open(csv_path, "w", encoding="utf-8") as f:
            f.write(csv_rows(rows))
        for protocol in PROTOCOLS:
            with self.subTest(protocol=protocol[0]):
                # REST shows values with --top 0 (else the top classes).
                top = ["--top", "0"] if protocol is REST else []
                result = self.run_example(protocol, "--model", "mlp-784",
                                          "--csv", csv_path, *top)
                self.assert_ok(result)
                printed = self.value_lines(result.stdout)
                self.assertEqual(sorted(printed), list(range(len(rows))), result.stdout)
                for r, got in printed.items():
                    self.assert_close(got, want[r], f"row {r}")

    def test_rest_top_classes_of_a_model_without_labels(self):
        rows = sample("mlp-784")[:2]
        want = expected("mlp-784", rows)
        result = self.run_example(REST, "--model", "mlp-784", "--top", "2",
                                  stdin=csv_rows(rows))
        self.assert_ok(result)
        printed = CLASS_LINE.findall(result.stdout)
        self.assertEqual(len(printed), len(rows), result.stdout)
        for r, label, cls_, top in printed:
            self.assertEqual(label, "", "mlp-784 has no labels")
            self.assertEqual(int(cls_), int(np.argmax(want[int(r)])))
            self.assertEqual(len(top.split()), 2)

    def test_hidden_layer_activations_equal_reference(self):
        rows = sample("digits")
        hidden = expected("digits", rows, layers=1)
        for protocol in PROTOCOLS:
            with self.subTest(protocol=protocol[0]):
                result = self.run_example(protocol, "--model", "digits",
                                          "--layers", "hidden", stdin=csv_rows(rows))
                self.assert_ok(result)
                printed = self.value_lines(result.stdout, "layer hidden: ")
                self.assertEqual(sorted(printed), list(range(len(rows))), result.stdout)
                for r, got in printed.items():
                    self.assert_close(got, hidden[r], f"row {r} layer hidden")
                # The model output is still there, one line per row.
                self.assertEqual(len(CLASS_LINE.findall(result.stdout)), len(rows))

    def test_errors_exit_non_zero_with_code_and_reason(self):
        codes = {"grpc": ("NOT_FOUND", "INVALID_ARGUMENT"),
                 "rest": ("HTTP 404", "HTTP 400")}
        for protocol in (GRPC_VALUES, REST):
            not_found, invalid = codes[protocol[0]]
            with self.subTest(protocol=protocol[0]):
                result = self.run_example(protocol, "--model", "nope", "1,2")
                self.assertEqual(result.returncode, 1, result.stdout)
                self.assertIn(f"error: {not_found}", result.stderr)
                self.assertIn("nope", result.stderr)
                result = self.run_example(protocol, "--model", "digits", "1,2,3")
                self.assertEqual(result.returncode, 1, result.stdout)
                self.assertIn(f"error: {invalid}", result.stderr)
                self.assertIn("64", result.stderr)
                result = self.run_example(protocol, "--model", "digits",
                                          "--layers", "nope", ",".join(["0"] * 64))
                self.assertEqual(result.returncode, 1, result.stdout)
                self.assertIn(f"error: {invalid}", result.stderr)
                self.assertIn("hidden", result.stderr, "valid layer names listed")

    def test_rest_unreachable_server_is_unavailable(self):
        url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
        result = subprocess.run(
            ["/usr/bin/python3", EXAMPLE, "--protocol", "rest", "--url", url,
             "--model", "digits", "--timeout", "5", "1,2"],
            capture_output=True, text=True, timeout=60)
        self.assertEqual(result.returncode, 1, result.stdout)
        self.assertIn(f"error: UNAVAILABLE: {url}", result.stderr)

    def test_rest_refuses_grpc_only_options(self):
        result = self.run_example(REST, "--model", "digits", "--raw", "1,2")
        self.assertEqual(result.returncode, 1)
        self.assertIn("--raw", result.stderr)


def make_certs(directory):
    """A CA and a server certificate for localhost/127.0.0.1, with openssl."""
    def openssl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True)
    ca, server = os.path.join(directory, "ca"), os.path.join(directory, "server")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=nnserve test CA", "-keyout", ca + ".key", "-out", ca + ".pem")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
            "-keyout", server + ".key", "-out", server + ".csr")
    with open(server + ".ext", "w", encoding="utf-8") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl("x509", "-req", "-days", "1", "-in", server + ".csr", "-CA", ca + ".pem",
            "-CAkey", ca + ".key", "-CAcreateserial", "-extfile", server + ".ext",
            "-out", server + ".pem")
    return ca + ".pem", server + ".pem", server + ".key"


class PythonClientOverTlsTest(unittest.TestCase):
    """The example's TLS options: --tls-ca-file for gRPC and for an https://
    REST URL, against one server whose certificate serves both ports."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="nnserve-pyclient-tls-")
        cls.ca, cert, key = make_certs(cls.tmp.name)
        cls.server = NnserveServer(model_repository=MODELS, args=[
            f"--tls-cert-file={cert}", f"--tls-key-file={key}"])
        cls.row = ",".join(f"{v:.9g}" for v in sample("digits")[0])
        cls.want = int(np.argmax(expected("digits", sample("digits")[:1])[0]))

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls.tmp.cleanup()

    def run_example(self, *args):
        return subprocess.run(["/usr/bin/python3", EXAMPLE, "--model", "digits",
                               *args, self.row],
                              capture_output=True, text=True, timeout=120)

    def test_both_protocols_verify_the_server_with_the_ca(self):
        https = f"https://127.0.0.1:{self.server.http_port}"
        for name, target in (
                ("grpc", ["--address", self.server.grpc_address,
                          "--stubs-dir", os.path.join(self.tmp.name, "stubs"),
                          "--tls-server-name", "localhost"]),
                ("rest", ["--protocol", "rest", "--url", https])):
            with self.subTest(protocol=name):
                result = self.run_example(*target, "--tls-ca-file", self.ca)
                self.assertEqual(result.returncode, 0, result.stderr)
                printed = CLASS_LINE.findall(result.stdout)
                self.assertEqual(len(printed), 1, result.stdout)
                self.assertEqual(int(printed[0][2]), self.want)

    def test_rest_without_the_ca_refuses_the_certificate(self):
        result = self.run_example("--protocol", "rest", "--url",
                                  f"https://127.0.0.1:{self.server.http_port}")
        self.assertEqual(result.returncode, 1, result.stdout)
        self.assertIn("error: UNAVAILABLE", result.stderr)
        self.assertIn("CERTIFICATE_VERIFY_FAILED", result.stderr)

    def test_plain_http_to_the_tls_port_fails(self):
        result = self.run_example("--protocol", "rest", "--url",
                                  f"http://127.0.0.1:{self.server.http_port}",
                                  "--timeout", "5")
        self.assertEqual(result.returncode, 1, result.stdout)
        self.assertIn("error: UNAVAILABLE: http://127.0.0.1:", result.stderr)
        self.assertNotIn("Traceback", result.stderr)


if __name__ == "__main__":
    unittest.main()
