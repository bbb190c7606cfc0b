#!/usr/bin/python3
"""Example Python client for nnserve: health check, ModelInfo and Predict.

Uses Debian's python3-grpcio and python3-protobuf. The Python stubs are not
committed: on first use they are generated from proto/ (and grpc's
health.proto) into --stubs-dir (default: a fresh temporary directory) with
protoc and grpc_python_plugin (Debian protobuf-compiler / protobuf-compiler-
grpc). Debian's grpc_tools.protoc (1.14) is too old for the proto3 `optional`
fields in model_config.proto, so it is only the fallback.

Examples:
  nnserve_client.py --address localhost:50051 --model digits 0,0.5,...,1
  nnserve_client.py --model digits --csv rows.csv --raw
  cat rows.csv | nnserve_client.py --model digits
  nnserve_client.py --address nnserve.example:50051 --tls-ca-file ca.pem \
      --model digits --csv rows.csv                  # TLS
  nnserve_client.py ... --tls-ca-file ca.pem --tls-cert-file client.pem \
      --tls-key-file client.key                      # mutual TLS

Any --tls-* option turns TLS on (as in nnserve-cli); without --tls-ca-file
the system's CA roots are trusted.
"""

import argparse
import atexit
import importlib
import os
import shutil
import struct
import subprocess
import sys
import tempfile

import grpc

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_DIR = os.path.normpath(os.path.join(HERE, "..", "..", "proto"))
HEALTH_PROTO_DIR = "/usr/share/grpc-proto/grpc/health/v1"
PROTOS = ["nnserve/v1/model_config.proto", "nnserve/v1/inference.proto"]


def generate_stubs(out_dir):
    """Writes inference_pb2*, model_config_pb2* and health_pb2* into out_dir."""
    os.makedirs(out_dir, exist_ok=True)
    plugin = shutil.which("grpc_python_plugin")
    protoc = shutil.which("protoc")
    if protoc and plugin:
        base = [protoc, f"--plugin=protoc-gen-grpc_python={plugin}"]
    else:
        base = [sys.executable, "-m", "grpc_tools.protoc"]
    for include, files in ((PROTO_DIR, PROTOS), (HEALTH_PROTO_DIR, ["health.proto"])):
        subprocess.run(
            base + [f"-I{include}", f"--python_out={out_dir}",
                    f"--grpc_python_out={out_dir}"] + files,
            check=True)


def load_stubs(stubs_dir):
    """Imports the generated modules, generating them first if needed."""
    if stubs_dir is None:
        stubs_dir = tempfile.mkdtemp(prefix="nnserve-pystubs-")
        atexit.register(shutil.rmtree, stubs_dir, ignore_errors=True)
    if not os.path.exists(os.path.join(stubs_dir, "health_pb2.py")):
        generate_stubs(stubs_dir)
    sys.path.insert(0, stubs_dir)
    names = ["nnserve.v1.inference_pb2", "nnserve.v1.inference_pb2_grpc",
             "health_pb2", "health_pb2_grpc"]
    return [importlib.import_module(n) for n in names]


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


def open_channel(args):
    """A plaintext channel, or TLS when any --tls-* option is given."""
    if not (args.tls_ca_file or args.tls_cert_file or args.tls_key_file
            or args.tls_server_name):
        return grpc.insecure_channel(args.address)
    if bool(args.tls_cert_file) != bool(args.tls_key_file):
        sys.exit("error: INVALID_ARGUMENT: --tls-cert-file and --tls-key-file "
                 "go together (the client certificate and its key)")
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address",
                        default=os.environ.get("NNSERVE_ADDRESS", "localhost:50051"))
    parser.add_argument("--model", required=True)
    parser.add_argument("--version", type=int, default=0, help="0 = newest")
    parser.add_argument("--raw", action="store_true",
                        help="send the tensor as little-endian float32 bytes")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds")
    parser.add_argument("--csv", help="CSV file, one row per line")
    parser.add_argument("--stubs-dir", help="where generated stubs live")
    parser.add_argument("--tls-ca-file",
                        help="PEM CA certificates that issued the server's "
                             "certificate (TLS)")
    parser.add_argument("--tls-cert-file",
                        help="PEM client certificate (mutual TLS)")
    parser.add_argument("--tls-key-file",
                        help="PEM private key of --tls-cert-file")
    parser.add_argument("--tls-server-name",
                        help="name to verify in the server certificate "
                             "instead of the --address host")
    parser.add_argument("rows", nargs="*", help="comma-separated row values")
    args = parser.parse_args()

    pb, pb_grpc, health_pb, health_grpc = load_stubs(args.stubs_dir)
    rows = parse_rows(args)

    with open_channel(args) as channel:
        try:
            health = health_grpc.HealthStub(channel).Check(
                health_pb.HealthCheckRequest(service="nnserve.v1.Inference"),
                timeout=args.timeout)
            status = health_pb.HealthCheckResponse.ServingStatus.Name(health.status)
            print(f"health: {status}")
            if health.status != health_pb.HealthCheckResponse.SERVING:
                return 1

            stub = pb_grpc.InferenceStub(channel)
            info = stub.ModelInfo(
                pb.ModelInfoRequest(model=args.model, version=args.version),
                timeout=args.timeout)
            print(f"model: {info.name} version {info.version}: "
                  f"{info.input_name}[{info.input_size}] -> "
                  f"{info.output_name}[{info.output_size}], "
                  f"{info.total_parameters} parameters")

            request = pb.PredictRequest(model=args.model, version=args.version)
            request.input.shape.extend([len(rows), len(rows[0])])
            flat = [v for row in rows for v in row]
            if args.raw:
                request.input.raw = struct.pack(f"<{len(flat)}f", *flat)
            else:
                request.input.values.extend(flat)
            response = stub.Predict(request, timeout=args.timeout)
        except grpc.RpcError as e:
            print(f"error: {e.code().name}: {e.details()}", file=sys.stderr)
            return 1

    out = response.output
    n_rows, n_cols = (out.shape[0], out.shape[1]) if len(out.shape) == 2 else (1, out.shape[0])
    values = (struct.unpack(f"<{n_rows * n_cols}f", out.raw) if out.raw
              else list(out.values))
    for r in range(n_rows):
        row = values[r * n_cols:(r + 1) * n_cols]
        top = sorted(range(n_cols), key=lambda c: -row[c])[:3]
        top_text = "  ".join(f"{c}:{row[c]:.4f}" for c in top)
        if r < len(response.classes):
            label = response.labels[r] if r < len(response.labels) else ""
            print(f"row {r}: label {label} (class {response.classes[r]})  top: {top_text}")
        else:
            print(f"row {r}: {', '.join(f'{v:.6g}' for v in row)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
