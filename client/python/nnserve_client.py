#!/usr/bin/python3
"""Example Python client for nnserve, over either protocol it serves.

--protocol nnserve (default): nnserve.v1 over gRPC (--address): health
  check, ModelInfo, Predict. Debian's python3-grpcio and python3-protobuf;
  stubs are generated from proto/ (and grpc's health.proto) on first use
  into --stubs-dir (default: a temporary directory) with protoc and
  grpc_python_plugin (Debian's grpc_tools.protoc 1.14 is too old for
  proto3 `optional`, so it is only the fallback); never committed.
--protocol rest: the Open Inference Protocol (KServe V2) over HTTP/JSON
  (--url): GET /v2/health/ready, GET /v2/models/M, POST /v2/models/M/infer.
  Python's standard library only (urllib, json).

Per row both print the argmax label and the top --top classes for a model
with labels (REST: for any model, computed by the server's classification
extension), else the output values; --layers adds the activations of the
named layers (hidden ones too).

Examples:
  nnserve_client.py --address localhost:50051 --model digits 0,0.5,...,1
  nnserve_client.py --model digits --csv rows.csv --raw --layers hidden
  cat rows.csv | nnserve_client.py --model digits
  nnserve_client.py --protocol rest --url http://localhost:8000 \
      --model digits --csv rows.csv
  nnserve_client.py --address nnserve.example:50051 --tls-ca-file ca.pem \
      --model digits --csv rows.csv                  # TLS
  nnserve_client.py ... --tls-ca-file ca.pem --tls-cert-file client.pem \
      --tls-key-file client.key                      # mutual TLS
  nnserve_client.py --protocol rest --url https://nnserve.example:8000 \
      --tls-ca-file ca.pem ...                       # REST over TLS

gRPC: any --tls-* option turns TLS on (as in nnserve-cli); without
--tls-ca-file the system's CA roots are trusted. REST: an https:// URL turns
TLS on, verified with --tls-ca-file (or the system's roots); --tls-cert-file
and --tls-key-file present a client certificate.
"""

import argparse
import atexit
import http.client
import importlib
import json
import os
import shutil
import ssl
import struct
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_DIR = os.path.normpath(os.path.join(HERE, "..", "..", "proto"))
HEALTH_PROTO_DIR = "/usr/share/grpc-proto/grpc/health/v1"
PROTOS = ["nnserve/v1/model_config.proto", "nnserve/v1/inference.proto"]


class ClientError(Exception):
    """A failed call: printed as `error: <code>: <message>`, exit 1."""


# ---------------------------------------------------------------- input ----

def parse_rows(args):
    """Rows from positional arguments, --csv FILE, or CSV on stdin."""
    if args.rows:
        lines = args.rows
    elif args.csv:
        with open(args.csv, encoding="utf-8") as f:
            lines = f.read().splitlines()
    else:
        lines = sys.stdin.read().splitlines()
    rows = []
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            rows.append([float(v) for v in line.split(",")])
        except ValueError as e:
            sys.exit(f"error: INVALID_ARGUMENT: input row {number}: {e}")
        if len(rows[-1]) != len(rows[0]):
            sys.exit(f"error: INVALID_ARGUMENT: input row {number} has "
                     f"{len(rows[-1])} values; expected {len(rows[0])}")
    if not rows:
        sys.exit("error: INVALID_ARGUMENT: no input rows")
    return rows


def read_pem(path, flag):
    """The bytes of a PEM file, or exit naming the flag."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        sys.exit(f"error: INVALID_ARGUMENT: cannot read {flag} '{path}': "
                 f"{e.strerror}")


def print_values(prefix, values):
    print(f"{prefix}{', '.join(f'{v:.6g}' for v in values)}")


def print_classes(r, label, index, top):
    """The argmax's label (None: no labels) and index, then the top classes
    [(index, value)], best first."""
    text = "  ".join(f"{i}:{v:.4f}" for i, v in top)
    head = f"label {label} (class {index})" if label is not None else f"class {index}"
    print(f"row {r}: {head}  top: {text}")


# ------------------------------------------------------ nnserve.v1, gRPC ----

def load_stubs(stubs_dir):
    """Imports the generated modules, generating them first if needed."""
    if stubs_dir is None:
        stubs_dir = tempfile.mkdtemp(prefix="nnserve-pystubs-")
        atexit.register(shutil.rmtree, stubs_dir, ignore_errors=True)
    if not os.path.exists(os.path.join(stubs_dir, "health_pb2.py")):
        os.makedirs(stubs_dir, exist_ok=True)
        plugin, protoc = shutil.which("grpc_python_plugin"), shutil.which("protoc")
        base = ([protoc, f"--plugin=protoc-gen-grpc_python={plugin}"]
                if protoc and plugin else [sys.executable, "-m", "grpc_tools.protoc"])
        for include, files in ((PROTO_DIR, PROTOS), (HEALTH_PROTO_DIR, ["health.proto"])):
            subprocess.run(base + [f"-I{include}", f"--python_out={stubs_dir}",
                                   f"--grpc_python_out={stubs_dir}"] + files,
                           check=True)
    sys.path.insert(0, stubs_dir)
    names = ["nnserve.v1.inference_pb2", "nnserve.v1.inference_pb2_grpc",
             "health_pb2", "health_pb2_grpc"]
    return [importlib.import_module(n) for n in names]


def open_channel(grpc, args):
    """A plaintext channel, or TLS when any --tls-* option is given."""
    if not (args.tls_ca_file or args.tls_cert_file or args.tls_key_file
            or args.tls_server_name):
        return grpc.insecure_channel(args.address)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=(read_pem(args.tls_ca_file, "--tls-ca-file")
                           if args.tls_ca_file else None),
        private_key=(read_pem(args.tls_key_file, "--tls-key-file")
                     if args.tls_key_file else None),
        certificate_chain=(read_pem(args.tls_cert_file, "--tls-cert-file")
                           if args.tls_cert_file else None))
    options = []
    if args.tls_server_name:
        options.append(("grpc.ssl_target_name_override", args.tls_server_name))
    return grpc.secure_channel(args.address, credentials, options=options)


def run_grpc(args, rows, layers):
    import grpc  # Only this protocol needs python3-grpcio.

    pb, pb_grpc, health_pb, health_grpc = load_stubs(args.stubs_dir)
    with open_channel(grpc, args) as channel:
        try:
            health = health_grpc.HealthStub(channel).Check(
                health_pb.HealthCheckRequest(service="nnserve.v1.Inference"),
                timeout=args.timeout)
            status = health_pb.HealthCheckResponse.ServingStatus.Name(health.status)
            print(f"health: {status}")
            if health.status != health_pb.HealthCheckResponse.SERVING:
                raise ClientError(f"UNAVAILABLE: health is {status}")

            stub = pb_grpc.InferenceStub(channel)
            info = stub.ModelInfo(
                pb.ModelInfoRequest(model=args.model, version=args.version),
                timeout=args.timeout)
            print(f"model: {info.name} version {info.version}: "
                  f"{info.input_name}[{info.input_size}] -> "
                  f"{info.output_name}[{info.output_size}], "
                  f"{info.total_parameters} parameters")

            request = pb.PredictRequest(model=args.model, version=args.version,
                                        output_layers=layers)
            request.input.shape.extend([len(rows), len(rows[0])])
            flat = [v for row in rows for v in row]
            if args.raw:
                request.input.raw = struct.pack(f"<{len(flat)}f", *flat)
            else:
                request.input.values.extend(flat)
            response = stub.Predict(request, timeout=args.timeout)
        except grpc.RpcError as e:
            raise ClientError(f"{e.code().name}: {e.details()}") from None

    def matrix(tensor):  # [rows][cols] from either encoding
        cols = tensor.shape[-1]
        flat = (struct.unpack(f"<{len(tensor.raw) // 4}f", tensor.raw)
                if tensor.raw else list(tensor.values))
        return [flat[i:i + cols] for i in range(0, len(flat), cols)]

    output = matrix(response.output)
    layer_values = [(layer.name, matrix(layer.tensor)) for layer in response.layers]
    for r, row in enumerate(output):
        if r < len(response.classes) and args.top:  # a model with labels
            best = sorted(range(len(row)), key=lambda c: -row[c])[:args.top]
            print_classes(r, response.labels[r], response.classes[r],
                          [(c, row[c]) for c in best])
        else:
            print_values(f"row {r}: ", row)
        for name, values in layer_values:
            print_values(f"row {r}: layer {name}: ", values[r])


# ---------------------------------------- Open Inference Protocol, REST ----

def rest_call(args, path, body=None):
    """GET (or POST `body` as JSON) base URL + path; the decoded JSON.
    HTTP errors carry {"error": message}; they become ClientError."""
    context = None
    if args.url.startswith("https:"):
        context = ssl.create_default_context(cafile=args.tls_ca_file)
        if args.tls_cert_file:
            context.load_cert_chain(args.tls_cert_file, args.tls_key_file)
    request = urllib.request.Request(
        args.url.rstrip("/") + path,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=args.timeout,
                                    context=context) as response:
            return json.load(response)
    except urllib.error.HTTPError as e:
        try:
            message = json.load(e).get("error", "")
        except ValueError:
            message = e.reason
        raise ClientError(f"HTTP {e.code}: {message}") from None
    except urllib.error.URLError as e:
        raise ClientError(f"UNAVAILABLE: {args.url}: {e.reason}") from None
    except (http.client.HTTPException, OSError) as e:  # dropped, timed out
        raise ClientError(f"UNAVAILABLE: {args.url}: {e!r}") from None


def run_rest(args, rows, layers):
    ready = rest_call(args, "/v2/health/ready")
    print(f"ready: {json.dumps(ready['ready'])}")
    model = f"/v2/models/{args.model}"
    if args.version:
        model += f"/versions/{args.version}"
    meta = rest_call(args, model)
    inp, out, *layer_meta = [f"{t['name']}{t['shape']}"
                             for t in meta["inputs"] + meta["outputs"]]
    print(f"model: {meta['name']} versions {','.join(meta['versions'])}: "
          f"{inp} -> {out}, layers {', '.join(layer_meta)}")

    # The model output: its top classes (classification extension) or, with
    # --top 0, its values; then the requested layers' values.
    output = {"name": meta["outputs"][0]["name"]}
    if args.top:
        output["parameters"] = {"classification": args.top}
    body = {"id": "nnserve_client",
            "inputs": [{"name": meta["inputs"][0]["name"], "datatype": "FP32",
                        "shape": [len(rows), len(rows[0])], "data": rows}],
            "outputs": [output] + [{"name": name} for name in layers]}
    result = rest_call(args, model + "/infer", body)

    def matrix(out):  # [rows][cols] of a response output
        cols = out["shape"][-1]
        return [out["data"][i:i + cols] for i in range(0, len(out["data"]), cols)]

    outputs = [(out, matrix(out)) for out in result["outputs"]]
    for r in range(len(rows)):
        for out, values in outputs:
            if out["datatype"] == "BYTES":  # "value:index[:label]", best first
                fields = [s.split(":", 2) for s in values[r]]
                label = fields[0][2] if len(fields[0]) > 2 else None
                print_classes(r, label, int(fields[0][1]),
                              [(int(f[1]), float(f[0])) for f in fields])
            elif out["name"] == output["name"]:
                print_values(f"row {r}: ", values[r])
            else:
                print_values(f"row {r}: layer {out['name']}: ", values[r])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", choices=["nnserve", "rest"], default="nnserve",
                        help="nnserve: nnserve.v1 over gRPC at --address; rest: "
                             "the Open Inference Protocol over HTTP at --url")
    parser.add_argument("--address",
                        default=os.environ.get("NNSERVE_ADDRESS", "localhost:50051"),
                        help="gRPC host:port")
    parser.add_argument("--url", default=os.environ.get("NNSERVE_URL",
                                                        "http://localhost:8000"),
                        help="REST base URL (https:// for TLS)")
    parser.add_argument("--model", required=True)
    parser.add_argument("--version", type=int, default=0, help="0 = newest")
    parser.add_argument("--layers", default="",
                        help="comma-separated layer names whose activations to show")
    parser.add_argument("--top", type=int, default=3,
                        help="classes shown per row for models with labels (REST: "
                             "for every model; 0 = the output values)")
    parser.add_argument("--raw", action="store_true",
                        help="gRPC: send the tensor as little-endian float32 bytes")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds")
    parser.add_argument("--csv", help="CSV file, one row per line")
    parser.add_argument("--stubs-dir", help="gRPC: where generated stubs live")
    parser.add_argument("--tls-ca-file",
                        help="PEM CA certificates that issued the server's "
                             "certificate (TLS)")
    parser.add_argument("--tls-cert-file",
                        help="PEM client certificate (mutual TLS)")
    parser.add_argument("--tls-key-file",
                        help="PEM private key of --tls-cert-file")
    parser.add_argument("--tls-server-name",
                        help="gRPC: name to verify in the server certificate "
                             "instead of the --address host")
    parser.add_argument("rows", nargs="*", help="comma-separated row values")
    args = parser.parse_args()
    if bool(args.tls_cert_file) != bool(args.tls_key_file):
        sys.exit("error: INVALID_ARGUMENT: --tls-cert-file and --tls-key-file "
                 "go together (the client certificate and its key)")
    if args.protocol == "rest" and (args.raw or args.tls_server_name):
        sys.exit("error: INVALID_ARGUMENT: --raw and --tls-server-name are "
                 "gRPC options (--protocol nnserve)")
    if args.top < 0:
        sys.exit("error: INVALID_ARGUMENT: --top must be >= 0")

    rows = parse_rows(args)
    layers = [name for name in args.layers.split(",") if name]
    try:
        (run_rest if args.protocol == "rest" else run_grpc)(args, rows, layers)
    except ClientError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
