"""Runs the Python example client (client/python/nnserve_client.py) against
the real nnserve server serving the example repository models/.

The server binary comes from $NNSERVE_BINARY (set by CTest); it listens on
127.0.0.1 port 0 and reports its ports through --port-file. Expected outputs
come from the NumPy reference forward pass in tools/reference.py.
Run: NNSERVE_BINARY=build/server/nnserve /usr/bin/python3 -m unittest -v \
         tests/server/integration/python_client_test.py
"""

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import unittest

import numpy as np

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
EXAMPLE = os.path.join(ROOT, "client", "python", "nnserve_client.py")
MODELS = os.path.join(ROOT, "models")
sys.path.insert(0, os.path.join(ROOT, "tools"))

import reference  # noqa: E402  (tools/reference.py)


def csv_rows(rows):
    # %.9g round-trips float32 exactly.
    return "\n".join(",".join(f"{v:.9g}" for v in row) for row in rows) + "\n"


class PythonClientAgainstServerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        binary = os.environ.get("NNSERVE_BINARY")
        if not binary or not os.access(binary, os.X_OK):
            raise RuntimeError(
                "NNSERVE_BINARY must name the nnserve binary (CTest sets it)")
        cls.tmp = tempfile.TemporaryDirectory(prefix="nnserve-pyclient-")
        port_file = os.path.join(cls.tmp.name, "ports")
        cls.log_path = os.path.join(cls.tmp.name, "server.log")
        cls.log = open(cls.log_path, "w", encoding="utf-8")
        cls.server = subprocess.Popen(
            [binary, "serve", f"--model-repository={MODELS}",
             "--grpc-address=127.0.0.1:0", "--metrics-address=127.0.0.1:0",
             f"--port-file={port_file}"],
            stdout=cls.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while not os.path.exists(port_file):
            if cls.server.poll() is not None or time.monotonic() > deadline:
                cls.server.kill()
                cls.server.wait()
                with open(cls.log_path, encoding="utf-8") as f:
                    raise RuntimeError("nnserve did not start:\n" + f.read())
            time.sleep(0.01)
        with open(port_file, encoding="utf-8") as f:
            grpc_port, _ = f.read().split()
        cls.address = f"127.0.0.1:{grpc_port}"
        cls.stubs = os.path.join(cls.tmp.name, "stubs")

    @classmethod
    def tearDownClass(cls):
        cls.server.send_signal(signal.SIGTERM)
        try:
            code = cls.server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            cls.server.kill()
            code = cls.server.wait()
        cls.log.close()
        cls.tmp.cleanup()
        if code != 0:
            raise AssertionError(f"nnserve exited with {code} after SIGTERM")

    def run_example(self, *args, stdin=""):
        return subprocess.run(
            ["/usr/bin/python3", EXAMPLE, "--address", self.address,
             "--stubs-dir", self.stubs, *args],
            input=stdin, capture_output=True, text=True, timeout=120)

    def test_digits_labels_equal_reference_argmax(self):
        model = reference.load_model(os.path.join(MODELS, "digits"))
        rows = np.load(os.path.join(MODELS, "digits", "sample_input.npy"))
        expected = reference.forward(model, rows.astype(np.float64))
        for extra in ([], ["--raw"]):
            with self.subTest(encoding=extra or "values"):
                result = self.run_example("--model", "digits", *extra,
                                          stdin=csv_rows(rows))
                self.assertEqual(result.returncode, 0, result.stderr)
                self.assertIn("health: SERVING", result.stdout)
                self.assertIn(
                    "model: digits version 1: pixels[64] -> digit[10], "
                    "2410 parameters", result.stdout)
                printed = re.findall(
                    r"^row (\d+): label (\S+) \(class (\d+)\)\s+top: (\d+):([0-9.]+)",
                    result.stdout, re.MULTILINE)
                self.assertEqual(len(printed), len(rows), result.stdout)
                for r, label, cls_, top, prob in printed:
                    r = int(r)
                    want = int(np.argmax(expected[r]))
                    self.assertEqual(int(cls_), want, f"row {r}")
                    self.assertEqual(label, str(want), f"row {r}")
                    self.assertEqual(int(top), want, f"row {r}")
                    self.assertAlmostEqual(float(prob), expected[r][want],
                                           delta=6e-5)

    def test_mlp784_outputs_equal_reference(self):
        model = reference.load_model(os.path.join(MODELS, "mlp-784"))
        rows = np.load(os.path.join(MODELS, "mlp-784", "sample_input.npy"))
        expected = reference.forward(model, rows.astype(np.float64))
        csv_path = os.path.join(self.tmp.name, "mlp784.csv")
        with open(csv_path, "w", encoding="utf-8") as f:
            f.write(csv_rows(rows))
        result = self.run_example("--model", "mlp-784", "--csv", csv_path)
        self.assertEqual(result.returncode, 0, result.stderr)
        printed = re.findall(r"^row (\d+): (.*)$", result.stdout, re.MULTILINE)
        self.assertEqual(len(printed), len(rows), result.stdout)
        for r, text in printed:
            got = np.array([float(v) for v in text.split(",")])
            want = expected[int(r)]
            self.assertEqual(got.shape, want.shape)
            # Printed with 6 significant digits: compare relative to the
            # row's largest output.
            error = np.max(np.abs(got - want)) / np.max(np.abs(want))
            self.assertLessEqual(error, 2e-5, f"row {r}: {got} vs {want}")

    def test_errors_exit_non_zero_with_code_and_reason(self):
        result = self.run_example("--model", "nope", "1,2")
        self.assertEqual(result.returncode, 1)
        self.assertIn("error: NOT_FOUND", result.stderr)
        self.assertIn("digits", result.stderr)
        self.assertIn("mlp-784", result.stderr)
        result = self.run_example("--model", "digits", "1,2,3")
        self.assertEqual(result.returncode, 1)
        self.assertIn("error: INVALID_ARGUMENT", result.stderr)
        self.assertIn("64", result.stderr)


if __name__ == "__main__":
    unittest.main()
