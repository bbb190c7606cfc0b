"""Talks to a running nnserve over gRPC from Python, for the deploy tests.

Message classes are generated at run time with the system protoc (3.21,
matching python3-protobuf) from proto/nnserve/v1/*.proto and the standard
grpc/health/v1/health.proto into a temporary directory; calls go through
generic grpc channel methods, so no grpc Python plugin is needed.

As a program (used by tests/deploy/container_test.sh):
  nnserve_grpc.py check --address 127.0.0.1:PORT --repository models/
waits for SERVING, then checks ListModels, ModelInfo and Predict (both
tensor encodings) for every model of the repository; exits non-zero naming
what was wrong.
  nnserve_grpc.py layers --repository models/
prints "model layer" for every layer of every model. Not thread-safe: one Client per thread.
"""

import argparse
import atexit
import importlib
import os
import shutil
import subprocess
import sys
import tempfile
import time

import grpc
import numpy as np

SOURCE_DIR = os.environ.get("NNSERVE_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
GRPC_PROTO_DIR = "/usr/share/grpc-proto"
INFERENCE_SERVICE = "nnserve.v1.Inference"

_modules = None


def protos():
    """Generated modules (model_config_pb2, inference_pb2, health_pb2),
    generated once per process."""
    global _modules
    if _modules is not None:
        return _modules
    out = tempfile.mkdtemp(prefix="nnserve-deploy-pb-")
    atexit.register(shutil.rmtree, out, True)
    proto_dir = os.path.join(SOURCE_DIR, "proto")
    health = os.path.join(GRPC_PROTO_DIR, "grpc/health/v1/health.proto")
    if not os.path.exists(health):
        raise RuntimeError(f"{health} is missing: install the grpc-proto package")
    # Python modules are named after the file path, and "grpc" is grpcio's
    # package: compile health.proto from another folder (its proto package,
    # hence the RPC path /grpc.health.v1.Health/Check, is unchanged).
    health_src = os.path.join(out, "src", "nnserve_health")
    os.makedirs(health_src)
    shutil.copy(health, health_src)
    cmd = ["protoc", f"-I{proto_dir}", f"-I{os.path.join(out, 'src')}",
           f"--python_out={out}", "nnserve/v1/model_config.proto",
           "nnserve/v1/inference.proto", "nnserve_health/health.proto"]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"protoc failed ({' '.join(cmd)}): {result.stderr}")
    sys.path.insert(0, out)
    _modules = (importlib.import_module("nnserve.v1.model_config_pb2"),
                importlib.import_module("nnserve.v1.inference_pb2"),
                importlib.import_module("nnserve_health.health_pb2"))
    return _modules


def read_model_configs(repository):
    """{model name: ModelConfig} for every model directory in `repository`."""
    from google.protobuf import text_format
    config_pb2 = protos()[0]
    configs = {}
    for name in sorted(os.listdir(repository)):
        path = os.path.join(repository, name, "config.pbtxt")
        if os.path.isfile(path):
            with open(path) as f:
                configs[name] = text_format.Parse(f.read(), config_pb2.ModelConfig())
    if not configs:
        raise RuntimeError(f"no <model>/config.pbtxt under {repository}")
    return configs


class Client:
    """Unary calls to one server address."""

    def __init__(self, address):
        _, self.pb, self.health_pb = protos()
        self.address = address
        self.channel = grpc.insecure_channel(address)

    def close(self):
        self.channel.close()

    def _call(self, method, request, response_type, timeout):
        fn = self.channel.unary_unary(
            method, request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=response_type.FromString)
        return fn(request, timeout=timeout)

    def health(self, service="", timeout=2.0):
        """The serving status name (SERVING, NOT_SERVING, ...)."""
        reply = self._call("/grpc.health.v1.Health/Check",
                           self.health_pb.HealthCheckRequest(service=service),
                           self.health_pb.HealthCheckResponse, timeout)
        return self.health_pb.HealthCheckResponse.ServingStatus.Name(reply.status)

    def wait_serving(self, timeout_s):
        """Polls health ("" and the Inference service) until both are
        SERVING; raises TimeoutError with the last answer otherwise."""
        deadline = time.monotonic() + timeout_s
        last = "no answer"
        while time.monotonic() < deadline:
            try:
                statuses = [self.health(s) for s in ("", INFERENCE_SERVICE)]
                if statuses == ["SERVING", "SERVING"]:
                    return
                last = f"health statuses {statuses}"
            except grpc.RpcError as e:
                last = f"{e.code().name}: {e.details()}"
            time.sleep(0.2)
        raise TimeoutError(
            f"{self.address} not SERVING within {timeout_s}s (last: {last})")

    def predict(self, model, rows, raw=False, version=0, timeout=10.0):
        rows = np.asarray(rows, dtype=np.float32)
        tensor = self.pb.Tensor(shape=list(rows.shape))
        if raw:
            tensor.raw = rows.astype("<f4").tobytes()
        else:
            tensor.values.extend(rows.ravel().tolist())
        request = self.pb.PredictRequest(model=model, version=version, input=tensor)
        return self._call("/nnserve.v1.Inference/Predict", request,
                          self.pb.PredictResponse, timeout)

    def model_info(self, model, version=0, timeout=10.0):
        return self._call("/nnserve.v1.Inference/ModelInfo",
                          self.pb.ModelInfoRequest(model=model, version=version),
                          self.pb.ModelInfoResponse, timeout)

    def list_models(self, timeout=10.0):
        return self._call("/nnserve.v1.Inference/ListModels",
                          self.pb.ListModelsRequest(), self.pb.ListModelsResponse,
                          timeout)


def output_array(tensor):
    """A response Tensor as a float32 array of its shape."""
    if tensor.raw:
        data = np.frombuffer(tensor.raw, dtype="<f4")
    else:
        data = np.asarray(tensor.values, dtype=np.float32)
    return data.reshape(tuple(tensor.shape))


def input_rows(repository, name, config, count=3):
    """`count` input rows for a model: its sample_input.npy if it has one,
    otherwise a fixed-seed uniform [0, 1) batch."""
    sample = os.path.join(repository, name, "sample_input.npy")
    if os.path.exists(sample):
        rows = np.load(sample).astype(np.float32).reshape(-1, config.input.size)
        if len(rows) >= count:
            return rows[:count]
    rng = np.random.default_rng(7)
    return rng.random((count, config.input.size), dtype=np.float32)


def check_model(client, repository, name, config):
    """ModelInfo and Predict (values and raw encodings) for one model; raises
    AssertionError naming the mismatch. Returns a one-line summary."""
    info = client.model_info(name)
    want_layers = [layer.name for layer in config.layers]
    got_layers = [layer.name for layer in info.layers]
    assert info.name == name, f"ModelInfo({name}).name is {info.name!r}"
    assert got_layers == want_layers, (
        f"ModelInfo({name}) layers {got_layers}, config.pbtxt has {want_layers}")
    assert info.input_size == config.input.size, (
        f"ModelInfo({name}).input_size {info.input_size}, config {config.input.size}")
    rows = input_rows(repository, name, config)
    units = config.layers[-1].units
    outputs = []
    for raw in (False, True):
        reply = client.predict(name, rows, raw=raw)
        out = output_array(reply.output)
        assert out.shape == (len(rows), units), (
            f"Predict({name}, raw={raw}) output shape {out.shape}, "
            f"expected {(len(rows), units)}")
        assert bool(reply.output.raw) == raw, (
            f"Predict({name}) answered raw={bool(reply.output.raw)} to a raw={raw} request")
        assert np.all(np.isfinite(out)), f"Predict({name}) output not finite: {out}"
        if config.layers[-1].activation == protos()[0].SOFTMAX:
            sums = out.sum(axis=1)
            assert np.allclose(sums, 1.0, atol=1e-4), (
                f"Predict({name}) softmax rows sum to {sums}, expected 1")
        labels = list(config.output.labels)
        if labels:
            want = [labels[i] for i in np.argmax(out, axis=1)]
            assert list(reply.labels) == want, (
                f"Predict({name}) labels {list(reply.labels)}, argmax gives {want}")
        outputs.append(out)
    assert np.allclose(outputs[0], outputs[1], rtol=1e-6, atol=1e-7), (
        f"Predict({name}) values and raw encodings disagree")
    return (f"{name}: {len(want_layers)} layers {want_layers}, "
            f"predict {rows.shape} -> {outputs[0].shape} ok")


def check_repository(address, repository, wait_s):
    client = Client(address)
    try:
        client.wait_serving(wait_s)
        configs = read_model_configs(repository)
        listed = sorted(m.name for m in client.list_models().models)
        assert listed == sorted(configs), (
            f"ListModels gives {listed}, repository has {sorted(configs)}")
        for name, config in configs.items():
            print(check_model(client, repository, name, config))
    finally:
        client.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="health, ListModels, ModelInfo, Predict")
    check.add_argument("--address", required=True)
    check.add_argument("--repository", default=os.path.join(SOURCE_DIR, "models"))
    check.add_argument("--wait", type=float, default=60.0,
                       help="seconds to wait for SERVING")
    layers = sub.add_parser("layers", help="print 'model layer' per layer")
    layers.add_argument("--repository", default=os.path.join(SOURCE_DIR, "models"))
    args = parser.parse_args()
    if args.command == "layers":
        for name, config in read_model_configs(args.repository).items():
            for layer in config.layers:
                print(name, layer.name)
        return 0
    try:
        check_repository(args.address, args.repository, args.wait)
    except (AssertionError, TimeoutError, grpc.RpcError, RuntimeError) as e:
        if isinstance(e, grpc.RpcError):
            e = f"{e.code().name}: {e.details()}"
        print(f"nnserve_grpc check FAILED against {args.address}: {e}", file=sys.stderr)
        return 1
    print(f"nnserve_grpc check passed against {args.address}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
