"""The Open Inference Protocol's REST/JSON binding of nnserve, end to end.

A plain HTTP client (urllib only) against the real nnserve binary
($NNSERVE_BINARY, set by CTest; started on 127.0.0.1 port 0 by
tests/util/nnserve_server.py): every endpoint, every accepted datatype,
flat and nested data, versions in the path, hidden layers of every
activation, classification, every error status, body limit, draining and
the request metric. Expected values come from the NumPy reference forward
pass in tools/reference.py with the C++ tests' row-normalised tolerance.
Servers: the example repository models/ (digits: 64 -> 32 RELU -> 10
SOFTMAX, labels), a temporary repository with a model holding every
activation in two versions, and short-lived ones for the body limit, the
REST decoding budget (429) and draining. The scheduler's queue-full 429 is
not provoked here (no deterministic way from outside); C++ tests cover it.
Run: NNSERVE_BINARY=build/server/nnserve /usr/bin/python3 -m unittest -v \
         tests/server/integration/rest_python_test.py
"""

import collections
import dataclasses
import json
import os
import re
import signal
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request
from http.client import HTTPConnection

import numpy as np

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
MODELS = os.path.join(ROOT, "models")
sys.path.insert(0, os.path.join(ROOT, "tools"))
sys.path.insert(0, os.path.join(ROOT, "tests", "util"))

import model_repo  # noqa: E402  (tools/model_repo.py)
import reference  # noqa: E402  (tools/reference.py)
import safetensors_io  # noqa: E402  (tools/safetensors_io.py)
from nnserve_server import NnserveServer  # noqa: E402  (tests/util/)

# Row-normalised error bound, as the C++ tests use (tests/util/reference.h).
TOLERANCE = 1e-5
DIGITS_OUTPUTS = ["digit", "hidden", "output"]

Response = collections.namedtuple("Response", "status body json")


def row_error(actual, expected):
    actual = np.asarray(actual, dtype=np.float64).reshape(expected.shape)
    scale = np.maximum(np.abs(expected).max(axis=1), 1e-6)
    return float((np.abs(actual - expected).max(axis=1) / scale).max())


def http(base, method, path, body=None):
    """One request; body: dict/list (sent as JSON), bytes (sent as is) or
    an iterator of bytes (sent chunked, without a Content-Length)."""
    data = body if body is None or not isinstance(body, (dict, list)) else \
        json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    text = raw.decode("utf-8", errors="replace")
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    return Response(status, text, parsed)


def to_bf16(x):
    bits = safetensors_io.float32_to_bf16_bits(np.asarray(x, np.float32))
    return safetensors_io.bf16_bits_to_float32(bits)


def infer_body(x, datatype="FP32", name="pixels", nested=False, **extra):
    """A request body for rows `x` (1-D = shape [features])."""
    x = np.asarray(x)
    data = x.tolist() if nested else x.reshape(-1).tolist()
    body = {"inputs": [{"name": name, "shape": list(x.shape),
                        "datatype": datatype, "data": data}]}
    body.update(extra)
    return body


def scrape(server):
    """nnserve_requests_total samples: {frozenset(labels): value}."""
    with urllib.request.urlopen(server.metrics_url, timeout=30) as response:
        text = response.read().decode()
    samples = {}
    for match in re.finditer(
            r"^nnserve_requests_total\{([^}]*)\} (\S+)$", text, re.MULTILINE):
        labels = frozenset(re.findall(r'(\w+)="([^"]*)"', match.group(1)))
        samples[labels] = float(match.group(2))
    return samples


def count(samples, **labels):
    want = set(labels.items())
    return sum(v for k, v in samples.items() if want <= k)


class RestTestCase(unittest.TestCase):
    server = None  # Set by subclasses' setUpClass.

    def call(self, method, path, body=None):
        return http(self.server.http_url, method, path, body)

    def ok(self, method, path, body=None):
        response = self.call(method, path, body)
        self.assertEqual(response.status, 200,
                         f"{method} {path}: {response.body}\n"
                         f"{self.server.log_tail()}")
        self.assertIsNotNone(response.json, response.body)
        return response.json

    def assert_error(self, response, status, *fragments, what=""):
        self.assertEqual(response.status, status, f"{what}: {response.body}")
        self.assertIsInstance(response.json, dict, f"{what}: {response.body}")
        message = response.json.get("error")
        self.assertIsInstance(message, str, f"{what}: {response.body}")
        self.assertTrue(message, f"{what}: empty error message")
        for fragment in fragments:
            self.assertIn(fragment, message, what)

    def assert_top_k(self, output, probs, k, labels):
        rows = probs.shape[0]
        self.assertEqual(output["datatype"], "BYTES")
        self.assertEqual(output["shape"], [rows, k])
        self.assertEqual(len(output["data"]), rows * k)
        for r in range(rows):
            want = np.argsort(-probs[r], kind="stable")[:k]
            values = []
            for j in range(k):
                parts = output["data"][r * k + j].split(":")
                self.assertEqual(len(parts), 3 if labels else 2, parts)
                self.assertEqual(int(parts[1]), want[j], f"row {r} rank {j}")
                if labels:
                    self.assertEqual(parts[2], labels[want[j]])
                self.assertAlmostEqual(float(parts[0]), probs[r][want[j]],
                                       places=5)
                values.append(float(parts[0]))
            self.assertEqual(values, sorted(values, reverse=True))


class DigitsRestTest(RestTestCase):
    """The example repository: endpoints, datatypes, errors, metrics."""

    @classmethod
    def setUpClass(cls):
        cls.server = NnserveServer(model_repository=MODELS)
        cls.model = reference.load_model(os.path.join(MODELS, "digits"))
        cls.labels = list(cls.model.config.output.labels)
        x = np.load(os.path.join(MODELS, "digits", "sample_input.npy"))[:5]
        # Off the 1/16 grid, so that rounding to FP16/BF16 changes values.
        noise = np.random.default_rng(11).uniform(-0.03, 0.03, x.shape)
        cls.x = (x + noise).astype(np.float32)

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def infer(self, body, path="/v2/models/digits/infer"):
        return self.ok("POST", path, body)

    def test_health_and_server_metadata(self):
        self.assertEqual(self.ok("GET", "/v2/health/live"), {"live": True})
        self.assertEqual(self.ok("GET", "/v2/health/ready"), {"ready": True})
        meta = self.ok("GET", "/v2")
        self.assertEqual(meta["name"], "nnserve")
        self.assertIsInstance(meta["version"], str)
        self.assertTrue(meta["version"])
        self.assertIn("classification", meta["extensions"])

    def test_model_metadata_and_ready(self):
        want = {
            "name": "digits", "versions": ["1"], "platform": "nnserve_dense",
            "inputs": [{"name": "pixels", "datatype": "FP32",
                        "shape": [-1, 64]}],
            "outputs": [{"name": "digit", "datatype": "FP32",
                         "shape": [-1, 10]},
                        {"name": "hidden", "datatype": "FP32",
                         "shape": [-1, 32]},
                        {"name": "output", "datatype": "FP32",
                         "shape": [-1, 10]}]}
        for prefix in ("/v2/models/digits", "/v2/models/digits/versions/1"):
            with self.subTest(prefix=prefix):
                self.assertEqual(self.ok("GET", prefix), want)
                self.assertEqual(self.ok("GET", prefix + "/ready"),
                                 {"name": "digits", "ready": True})

    def test_every_datatype_is_exact(self):
        x32 = self.x
        x64 = x32.astype(np.float64) + 1e-9  # Not float32 values.
        x16 = x32.astype(np.float16).astype(np.float32)
        xbf = to_bf16(x32)
        exact = reference.forward(self.model, x32)
        # Rounding to FP16/BF16 must matter, or those cases prove nothing.
        self.assertGreater(row_error(reference.forward(self.model, x16),
                                     exact), TOLERANCE)
        self.assertGreater(row_error(reference.forward(self.model, xbf),
                                     exact), TOLERANCE)
        cases = [("FP32", x32, x32), ("FP64", x64, x64.astype(np.float32)),
                 ("FP16", x32, x16), ("BF16", x32, xbf)]
        for datatype, sent, served in cases:
            with self.subTest(datatype=datatype):
                response = self.infer(infer_body(sent, datatype, id="req-7"))
                self.assertEqual(response["model_name"], "digits")
                self.assertEqual(response["model_version"], "1")
                self.assertEqual(response["id"], "req-7")
                self.assertEqual(len(response["outputs"]), 1)
                out = response["outputs"][0]
                self.assertEqual(out["name"], "digit")
                self.assertEqual(out["datatype"], "FP32")
                self.assertEqual(out["shape"], [5, 10])
                self.assertEqual(len(out["data"]), 50)
                self.assertLessEqual(
                    row_error(out["data"],
                              reference.forward(self.model, served)),
                    TOLERANCE)

    def test_flat_nested_single_row_versions_and_id(self):
        expected = reference.forward(self.model, self.x)
        cases = [
            ("flat", infer_body(self.x), "/v2/models/digits/infer", 5),
            ("nested", infer_body(self.x, nested=True),
             "/v2/models/digits/infer", 5),
            ("version in path", infer_body(self.x),
             "/v2/models/digits/versions/1/infer", 5),
            ("shape [features]", infer_body(self.x[0]),
             "/v2/models/digits/infer", 1),
            ("parameters", infer_body(self.x, parameters={"note": "x"}),
             "/v2/models/digits/infer", 5),
        ]
        for what, body, path, rows in cases:
            with self.subTest(what):
                response = self.infer(body, path)
                self.assertEqual(response["id"], "")
                self.assertEqual(response["model_version"], "1")
                out = response["outputs"][0]
                self.assertEqual(out["shape"], [rows, 10])
                self.assertLessEqual(row_error(out["data"], expected[:rows]),
                                     TOLERANCE)

    def test_hidden_layers_and_classification_with_labels(self):
        hidden = reference.forward(
            dataclasses.replace(self.model, layers=self.model.layers[:1]),
            self.x)
        probs = reference.forward(self.model, self.x)
        response = self.infer(infer_body(self.x, outputs=[
            {"name": "hidden"}, {"name": "output"},
            {"name": "digit", "parameters": {"classification": 3}}]))
        names = [o["name"] for o in response["outputs"]]
        self.assertEqual(names, ["hidden", "output", "digit"])
        self.assertEqual(response["outputs"][0]["shape"], [5, 32])
        self.assertLessEqual(row_error(response["outputs"][0]["data"], hidden),
                             TOLERANCE)
        self.assertEqual(response["outputs"][1]["shape"], [5, 10])
        self.assertLessEqual(row_error(response["outputs"][1]["data"], probs),
                             TOLERANCE)
        self.assert_top_k(response["outputs"][2], probs, 3, self.labels)
        # K = every class.
        response = self.infer(infer_body(self.x, outputs=[
            {"name": "digit", "parameters": {"classification": 10}}]))
        self.assert_top_k(response["outputs"][0], probs, 10, self.labels)

    def test_infer_body_errors_are_400(self):
        row = self.x[:1]
        good = infer_body(row)

        def changed(**fields):
            body = json.loads(json.dumps(good))
            body["inputs"][0].update(fields)
            return body

        flat = row.reshape(-1).tolist()
        cases = [
            ("malformed JSON", b'{"inputs": [', ()),
            ("body not an object", [1, 2], ()),
            ("no inputs", {}, ()),
            ("empty inputs", {"inputs": []}, ()),
            ("two inputs", {"inputs": good["inputs"] * 2}, ()),
            ("NaN is not JSON",
             json.dumps(changed(data=[float("nan")] + flat[1:])).encode(), ()),
            ("string in data", changed(data=["a"] + flat[1:]), ()),
            ("boolean in data", changed(data=[True] + flat[1:]), ()),
            ("value beyond float32", changed(data=[1e300] + flat[1:]),
             ("finite",)),
            ("id not a string", dict(good, id=5), ()),
            ("data not a list", changed(data=5), ()),
            ("data a string", changed(data="0.5"), ()),
            ("shape not a list", changed(shape="1,64"), ()),
            ("shape count mismatch", changed(shape=[2, 64]), ()),
            ("nested rows mismatch", changed(shape=[2, 64], data=[flat]), ()),
            ("nested ragged", changed(shape=[2, 64],
                                      data=[flat, flat[:63]]), ()),
            ("nested too deep", changed(data=[[[v] for v in flat]]), ()),
            ("wrong feature count", changed(shape=[1, 63], data=flat[:63]),
             ("expected 64",)),
            ("rank 3", changed(shape=[1, 1, 64]), ()),
            ("negative dimension", changed(shape=[-1, 64]), ()),
            ("batch 0", changed(shape=[0, 64], data=[]), ()),
            ("unknown datatype", changed(datatype="INT32"),
             ("datatype 'INT32' is not accepted",)),
            ("datatype not a string", changed(datatype=7), ()),
            ("unknown output", dict(good, outputs=[{"name": "fc9"}]),
             ("fc9", "expected one of: digit, hidden, output")),
            ("classification not a number",
             dict(good, outputs=[{"name": "digit",
                                  "parameters": {"classification": "x"}}]),
             ()),
            ("classification too large",
             dict(good, outputs=[{"name": "digit",
                                  "parameters": {"classification": 11}}]),
             ()),
        ]
        for what, body, fragments in cases:
            with self.subTest(what):
                self.assert_error(
                    self.call("POST", "/v2/models/digits/infer", body), 400,
                    *fragments, what=what)
        self.assert_error(
            self.call("POST", "/v2/models/digits/versions/abc/infer", good),
            400, what="version not a number")

    def test_unknown_model_version_and_path_are_404_and_method_405(self):
        body = infer_body(self.x[:1])
        for method, path, status, fragment in [
                ("GET", "/v2/models/nope", 404, "nope"),
                ("GET", "/v2/models/nope/ready", 404, "nope"),
                ("POST", "/v2/models/nope/infer", 404, "nope"),
                ("GET", "/v2/models/digits/versions/9", 404, "9"),
                ("GET", "/v2/models/digits/versions/9/ready", 404, "9"),
                ("POST", "/v2/models/digits/versions/9/infer", 404, "9"),
                ("GET", "/v2/nothing", 404, ""),
                ("GET", "/v3/health/live", 404, ""),
                ("GET", "/", 404, ""),
                ("POST", "/v2/models/digits/predict", 404, ""),
                ("GET", "/v2/models/digits/versions/1/infer/more", 404, ""),
                ("GET", "/v2/models/digits/infer", 405, ""),
                ("PUT", "/v2/models/digits/infer", 405, ""),
                ("POST", "/v2/health/live", 405, ""),
                ("POST", "/v2/health/ready", 405, ""),
                ("DELETE", "/v2/models/digits", 405, "")]:
            with self.subTest(method=method, path=path):
                self.assert_error(
                    self.call(method, path,
                              body if method in ("POST", "PUT") else None),
                    status, fragment, what=f"{method} {path}")

    def test_request_metric_counts_rest_calls(self):
        before = scrape(self.server)
        body = infer_body(self.x[:2])
        for _ in range(3):
            self.infer(body)
        bad = infer_body(self.x[:2], datatype="INT32")
        for _ in range(2):
            self.assertEqual(
                self.call("POST", "/v2/models/digits/infer", bad).status, 400)
        after = scrape(self.server)

        def delta(**labels):
            return count(after, **labels) - count(before, **labels)

        self.assertEqual(delta(method="rest_infer", model="digits", code="OK"),
                         3, after)
        self.assertEqual(delta(method="rest_infer", model="digits",
                               code="INVALID_ARGUMENT"), 2, after)
        self.assertEqual(delta(method="rest_infer"), 5, after)


class ActivationsRestTest(RestTestCase):
    """Hidden layers of every activation; two versions; no labels."""

    ACTIVATIONS = [("identity", "IDENTITY", None), ("relu", "RELU", None),
                   ("leaky", "LEAKY_RELU", 0.1), ("elu", "ELU", 0.5),
                   ("sigmoid", "SIGMOID", None), ("tanh", "TANH", None),
                   ("gelu", "GELU", None), ("softmax", "SOFTMAX", None)]

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="nnserve-rest-")
        repo = os.path.join(cls.tmp.name, "repo")
        layers = [model_repo.LayerDef(name, 5 if act == "SOFTMAX" else 7,
                                      act, f"{name}.w", f"{name}.b", alpha)
                  for name, act, alpha in cls.ACTIVATIONS]
        definition = model_repo.ModelDef(
            name="acts", input_name="x", input_size=6, output_name="y",
            layers=layers)
        rng = np.random.default_rng(7)
        for version in (1, 2):
            tensors, fan_in = {}, 6
            for layer in layers:
                tensors[layer.weight] = rng.normal(
                    0, 1.2 / np.sqrt(fan_in),
                    (layer.units, fan_in)).astype(np.float32)
                tensors[layer.bias] = rng.normal(
                    0, 0.3, layer.units).astype(np.float32)
                fan_in = layer.units
            model_repo.write_model(repo, definition, tensors, version=version)
        model_dir = os.path.join(repo, "acts")
        # Serve both versions (the default policy serves the newest only).
        with open(os.path.join(model_dir, "config.pbtxt"), "a",
                  encoding="utf-8") as f:
            f.write("version_policy { all {} }\n")
        cls.models = {v: reference.load_model(model_dir, v) for v in (1, 2)}
        cls.x = rng.normal(0, 1.5, (4, 6)).astype(np.float32)
        cls.server = NnserveServer(model_repository=repo)

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls.tmp.cleanup()

    def test_metadata_lists_versions_and_every_layer(self):
        meta = self.ok("GET", "/v2/models/acts")
        self.assertEqual(meta["versions"], ["1", "2"])
        self.assertEqual(
            [(o["name"], o["shape"]) for o in meta["outputs"]],
            [("y", [-1, 5])] + [(name, [-1, 5 if act == "SOFTMAX" else 7])
                                for name, act, _ in self.ACTIVATIONS])
        for version in ("1", "2"):
            self.assertEqual(
                self.ok("GET", f"/v2/models/acts/versions/{version}/ready"),
                {"name": "acts", "ready": True})

    def test_every_activation_layer_in_each_version(self):
        names = [name for name, _, _ in self.ACTIVATIONS]
        for version, path in [(2, "/v2/models/acts/infer"),
                              (1, "/v2/models/acts/versions/1/infer"),
                              (2, "/v2/models/acts/versions/2/infer")]:
            model = self.models[version]
            body = infer_body(self.x, name="x",
                              outputs=[{"name": n} for n in names])
            response = self.ok("POST", path, body)
            self.assertEqual(response["model_version"], str(version))
            self.assertEqual([o["name"] for o in response["outputs"]], names)
            for i, out in enumerate(response["outputs"]):
                with self.subTest(version=version, layer=out["name"]):
                    cut = dataclasses.replace(model,
                                              layers=model.layers[:i + 1])
                    want = reference.forward(cut, self.x)
                    self.assertEqual(out["shape"], list(want.shape))
                    self.assertLessEqual(row_error(out["data"], want),
                                         TOLERANCE)
        # The versions differ, so the path's version really chose one.
        self.assertGreater(
            row_error(reference.forward(self.models[1], self.x),
                      reference.forward(self.models[2], self.x)), TOLERANCE)

    def test_classification_without_labels(self):
        for version in (1, 2):
            probs = reference.forward(self.models[version], self.x)
            for k in (1, 5):
                with self.subTest(version=version, k=k):
                    response = self.ok(
                        "POST", f"/v2/models/acts/versions/{version}/infer",
                        infer_body(self.x, name="x", outputs=[
                            {"name": "y",
                             "parameters": {"classification": k}}]))
                    self.assert_top_k(response["outputs"][0], probs, k, None)


class LimitsAndDrainRestTest(RestTestCase):
    """Servers of their own: a small message limit; a drain period."""

    def test_body_over_limit_is_413(self):
        # REST bodies may be 4 x --max-message-bytes (JSON numbers take
        # about four times the bytes of float32; server/http/rest_server.cc).
        limit = 1024
        body_limit = 4 * limit
        x = np.load(os.path.join(MODELS, "digits", "sample_input.npy"))
        small = json.dumps(infer_body(x[:1])).encode()
        large = json.dumps(infer_body(np.tile(x, (2, 1)))).encode()
        self.assertLess(len(small), limit)
        self.assertGreater(len(large), body_limit)
        with NnserveServer(args=[f"--max-message-bytes={limit}"]) as server:
            self.server = server
            self.ok("POST", "/v2/models/digits/infer", small)
            self.assert_error(
                self.call("POST", "/v2/models/digits/infer", large), 413,
                str(body_limit), what="oversize body")
            # Chunked, without a Content-Length: cut off at the limit.
            chunks = (large[i:i + 512] for i in range(0, len(large), 512))
            self.assert_error(
                self.call("POST", "/v2/models/digits/infer", chunks), 413,
                str(body_limit), what="oversize chunked body")
            # The server serves on.
            self.ok("POST", "/v2/models/digits/infer", small)

    def test_decode_budget_full_is_429(self):
        # With --max-memory-bytes=1 MiB, REST bodies being read and decoded
        # may hold 128 KiB, charged 4 bytes per body byte (rest_server.h). A
        # request whose body is still arriving holds its share, so while
        # one holds 256 KiB every other request is RESOURCE_EXHAUSTED (429).
        x = np.load(os.path.join(MODELS, "digits", "sample_input.npy"))
        small = infer_body(x[:1])
        held = json.dumps(infer_body(x)).encode()
        held += b" " * (64 * 1024 - len(held))
        with NnserveServer(args=["--max-memory-bytes=1048576"]) as server:
            self.server = server
            before = scrape(server)
            connection = HTTPConnection(
                "127.0.0.1", server.http_port, timeout=60)
            connection.putrequest("POST", "/v2/models/digits/infer")
            connection.putheader("Content-Type", "application/json")
            connection.putheader("Content-Length", str(len(held)))
            connection.endheaders(held[:100])
            # The server reserves once it has the headers; until then the
            # other request is served (a deadline only bounds the wait).
            deadline = time.monotonic() + 30
            while True:
                response = self.call("POST", "/v2/models/digits/infer", small)
                if response.status != 200 or time.monotonic() > deadline:
                    break
                time.sleep(0.01)
            self.assert_error(response, 429, "budget", what="budget full")
            # The held request completes normally, and frees the budget.
            connection.send(held[100:])
            answer = connection.getresponse()
            self.assertEqual(answer.status, 200)
            out = json.loads(answer.read())["outputs"][0]
            self.assertEqual(out["shape"], [len(x), 10])
            connection.close()
            self.ok("POST", "/v2/models/digits/infer", small)
            after = scrape(server)
            self.assertEqual(
                count(after, method="rest_infer", code="RESOURCE_EXHAUSTED")
                - count(before, method="rest_infer",
                        code="RESOURCE_EXHAUSTED"), 1, after)

    def test_ready_turns_503_while_draining_and_calls_are_served(self):
        x = np.load(os.path.join(MODELS, "digits", "sample_input.npy"))[:2]
        model = reference.load_model(os.path.join(MODELS, "digits"))
        # The drain period is far longer than the few calls below take.
        self.server = NnserveServer(args=["--drain-seconds=20"])
        try:
            self.assertEqual(self.ok("GET", "/v2/health/ready"),
                             {"ready": True})
            self.server.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 15
            while True:
                response = self.call("GET", "/v2/health/ready")
                if response.status != 200 or time.monotonic() > deadline:
                    break
                time.sleep(0.02)
            self.assertEqual(response.status, 503, response.body)
            self.assertEqual(response.json, {"ready": False})
            self.assertEqual(self.ok("GET", "/v2/health/live"), {"live": True})
            out = self.ok("POST", "/v2/models/digits/infer",
                          infer_body(x))["outputs"][0]
            self.assertLessEqual(
                row_error(out["data"], reference.forward(model, x)), TOLERANCE)
        finally:
            self.server.stop(timeout=60)


if __name__ == "__main__":
    unittest.main()
