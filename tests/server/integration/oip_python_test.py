"""A Python client built from the standard Open Inference Protocol file talks
to nnserve unchanged.

Stubs are generated at test time from proto/inference/open_inference_grpc.proto
with grpc_tools.protoc (Debian python3-grpc-tools) into a temporary
directory; the server is the real nnserve binary ($NNSERVE_BINARY, set by
CTest; started by tests/util/nnserve_server.py) serving the example
repository models/ on 127.0.0.1 port 0. Expected
values come from the NumPy reference forward pass in tools/reference.py.
Run: NNSERVE_BINARY=build/server/nnserve /usr/bin/python3 -m unittest -v \
         tests/server/integration/oip_python_test.py
"""

import dataclasses
import os
import struct
import sys
import tempfile
import unittest

import grpc
import numpy as np
from grpc_tools import protoc

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
MODELS = os.path.join(ROOT, "models")
PROTO_DIR = os.path.join(ROOT, "proto")
sys.path.insert(0, os.path.join(ROOT, "tools"))
sys.path.insert(0, os.path.join(ROOT, "tests", "util"))

import reference  # noqa: E402  (tools/reference.py)
from nnserve_server import NnserveServer  # noqa: E402  (tests/util/)

# Row-normalised error bound, as the C++ tests use (tests/util/reference.h).
TOLERANCE = 1e-5


def row_error(actual, expected):
    actual = np.asarray(actual, dtype=np.float64).reshape(expected.shape)
    scale = np.maximum(np.abs(expected).max(axis=1), 1e-6)
    return float((np.abs(actual - expected).max(axis=1) / scale).max())


class OpenInferenceProtocolTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="nnserve-oip-")
        stubs = os.path.join(cls.tmp.name, "stubs")
        os.makedirs(stubs)
        code = protoc.main([
            "grpc_tools.protoc", f"-I{PROTO_DIR}", f"--python_out={stubs}",
            f"--grpc_python_out={stubs}",
            os.path.join(PROTO_DIR, "inference", "open_inference_grpc.proto")])
        if code != 0:
            raise RuntimeError(f"grpc_tools.protoc failed with {code}")
        sys.path.insert(0, stubs)
        from inference import open_inference_grpc_pb2 as pb  # noqa: E402
        from inference import open_inference_grpc_pb2_grpc as pb_grpc
        cls.pb = pb

        cls.server = NnserveServer(model_repository=MODELS)
        cls.channel = grpc.insecure_channel(cls.server.grpc_address)
        cls.stub = pb_grpc.GRPCInferenceServiceStub(cls.channel)
        cls.model = reference.load_model(os.path.join(MODELS, "digits"))
        cls.x = np.load(os.path.join(MODELS, "digits", "sample_input.npy"))[:5]
        cls.x = cls.x.astype(np.float32)

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()
        cls.tmp.cleanup()
        cls.server.stop()

    def request(self, x, datatype="FP32", raw=True, outputs=()):
        pb = self.pb
        tensor = pb.ModelInferRequest.InferInputTensor(
            name="pixels", datatype=datatype, shape=list(x.shape))
        req = pb.ModelInferRequest(model_name="digits", id="req-7",
                                   inputs=[tensor])
        numpy_type = {"FP32": "<f4", "FP64": "<f8", "FP16": "<f2"}
        if datatype == "BF16":
            bits = x.astype("<f4").view("<u4") >> 16  # Exact for these values.
            req.raw_input_contents.append(bits.astype("<u2").tobytes())
        elif raw:
            req.raw_input_contents.append(
                x.astype(numpy_type[datatype]).tobytes())
        elif datatype == "FP32":
            tensor.contents.fp32_contents.extend(x.flatten().tolist())
        else:
            tensor.contents.fp64_contents.extend(x.flatten().tolist())
        req.inputs[0].CopyFrom(tensor)
        for name, k in outputs:
            out = req.outputs.add(name=name)
            if k:
                out.parameters["classification"].int64_param = k
        return req

    def floats(self, response, i):
        if response.raw_output_contents:
            return np.frombuffer(response.raw_output_contents[i], dtype="<f4")
        return np.array(response.outputs[i].contents.fp32_contents)

    def test_health_and_metadata(self):
        pb = self.pb
        self.assertTrue(self.stub.ServerLive(pb.ServerLiveRequest()).live)
        self.assertTrue(self.stub.ServerReady(pb.ServerReadyRequest()).ready)
        self.assertTrue(self.stub.ModelReady(
            pb.ModelReadyRequest(name="digits")).ready)
        server = self.stub.ServerMetadata(pb.ServerMetadataRequest())
        self.assertEqual(server.name, "nnserve")
        self.assertIn("classification", server.extensions)
        meta = self.stub.ModelMetadata(pb.ModelMetadataRequest(name="digits"))
        self.assertEqual(meta.platform, "nnserve_dense")
        self.assertEqual(list(meta.versions), ["1"])
        self.assertEqual([(t.name, t.datatype, list(t.shape))
                          for t in meta.inputs],
                         [("pixels", "FP32", [-1, 64])])
        self.assertEqual([(t.name, list(t.shape)) for t in meta.outputs],
                         [("digit", [-1, 10]), ("hidden", [-1, 32]),
                          ("output", [-1, 10])])

    def test_every_datatype_and_encoding_is_exact(self):
        # The digits pixels are multiples of 1/16: exact in every datatype.
        expected = reference.forward(self.model, self.x)
        for datatype, raw in [("FP32", False), ("FP32", True),
                              ("FP64", False), ("FP64", True),
                              ("FP16", True), ("BF16", True)]:
            with self.subTest(datatype=datatype, raw=raw):
                response = self.stub.ModelInfer(
                    self.request(self.x, datatype, raw))
                self.assertEqual(response.id, "req-7")
                self.assertEqual(response.model_version, "1")
                self.assertEqual(len(response.raw_output_contents),
                                 1 if raw else 0)
                self.assertEqual(response.outputs[0].name, "digit")
                self.assertEqual(list(response.outputs[0].shape), [5, 10])
                self.assertLessEqual(
                    row_error(self.floats(response, 0), expected), TOLERANCE)

    def test_hidden_layer_and_classification(self):
        cut = dataclasses.replace(self.model, layers=self.model.layers[:1])
        hidden = reference.forward(cut, self.x)
        probs = reference.forward(self.model, self.x)
        for raw in (False, True):
            response = self.stub.ModelInfer(self.request(
                self.x, raw=raw, outputs=[("hidden", 0), ("digit", 3)]))
            self.assertLessEqual(
                row_error(self.floats(response, 0), hidden), TOLERANCE)
            top = response.outputs[1]
            self.assertEqual(top.datatype, "BYTES")
            self.assertEqual(list(top.shape), [5, 3])
            if raw:
                data, elements = response.raw_output_contents[1], []
                while data:
                    (size,) = struct.unpack("<I", data[:4])
                    elements.append(data[4:4 + size])
                    data = data[4 + size:]
            else:
                elements = list(top.contents.bytes_contents)
            for r in range(5):
                want = np.argsort(-probs[r], kind="stable")[:3]
                for k in range(3):
                    value, index, label = elements[r * 3 + k].decode().split(":")
                    self.assertEqual(int(index), want[k])
                    self.assertEqual(label, str(want[k]))
                    self.assertAlmostEqual(float(value), probs[r][want[k]],
                                           places=5)

    def test_error_codes(self):
        pb = self.pb
        cases = [
            (dict(model_name="nope"), grpc.StatusCode.NOT_FOUND, "nope"),
            (dict(model_version="9"), grpc.StatusCode.NOT_FOUND, "9"),
            (dict(datatype="INT32"), grpc.StatusCode.INVALID_ARGUMENT,
             "datatype 'INT32' is not accepted"),
            (dict(outputs=[("fc9", 0)]), grpc.StatusCode.INVALID_ARGUMENT,
             "expected one of: digit, hidden, output"),
            (dict(shape=[2, 63]), grpc.StatusCode.INVALID_ARGUMENT,
             "expected 64"),
        ]
        for change, code, text in cases:
            with self.subTest(change=change):
                req = self.request(self.x[:1], outputs=change.get("outputs", ()))
                if "model_name" in change:
                    req.model_name = change["model_name"]
                if "model_version" in change:
                    req.model_version = change["model_version"]
                if "datatype" in change:
                    req.inputs[0].datatype = change["datatype"]
                if "shape" in change:
                    del req.inputs[0].shape[:]
                    req.inputs[0].shape.extend(change["shape"])
                with self.assertRaises(grpc.RpcError) as caught:
                    self.stub.ModelInfer(req)
                self.assertEqual(caught.exception.code(), code)
                self.assertIn(text, caught.exception.details())
        with self.assertRaises(grpc.RpcError) as caught:
            self.stub.ModelReady(pb.ModelReadyRequest(name="nope"))
        self.assertEqual(caught.exception.code(), grpc.StatusCode.NOT_FOUND)


if __name__ == "__main__":
    unittest.main()
