"""Parses config.pbtxt with the real schema, proto/nnserve/v1/model_config.proto.

The Python message class is generated on first use, per process, into a
temporary directory (generated code is never committed) by the `protoc`
binary (protobuf-compiler, already a build dependency). Needs
python3-protobuf. Used by reference.py and the
tests to read configs exactly as the C++ server's text-format parser does
(unknown fields and enum values are errors).
"""

from __future__ import annotations

import atexit
import importlib
import os
import shutil
import subprocess
import sys
import tempfile

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROTO_ROOT = os.path.join(REPO_ROOT, "proto")
PROTO_FILE = "nnserve/v1/model_config.proto"

_module = None


def _run_protoc(out_dir: str) -> None:
    # Debian's python3-grpc-tools bundles protoc 3.6, which rejects proto3
    # `optional` (LayerConfig.alpha): only protoc >= 3.15 will do.
    binary = shutil.which("protoc")
    if binary is None:
        raise RuntimeError("reading config.pbtxt needs the protoc compiler "
                           "(Debian: protobuf-compiler)")
    subprocess.run([binary, f"-I{PROTO_ROOT}", f"--python_out={out_dir}",
                    os.path.join(PROTO_ROOT, PROTO_FILE)], check=True)


def model_config_pb2():
    """The generated nnserve.v1 model_config_pb2 module."""
    global _module
    if _module is None:
        out_dir = tempfile.mkdtemp(prefix="nnserve-proto-")
        atexit.register(shutil.rmtree, out_dir, True)
        _run_protoc(out_dir)
        sys.path.insert(0, out_dir)
        try:
            _module = importlib.import_module("nnserve.v1.model_config_pb2")
        finally:
            sys.path.remove(out_dir)
    return _module


def parse_config(text: str, source: str = "config.pbtxt"):
    """Parses config text into nnserve.v1.ModelConfig; ValueError on errors."""
    from google.protobuf import text_format
    config = model_config_pb2().ModelConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as e:
        raise ValueError(f"{source}: {e}") from None
    return config


def read_config(path: str):
    with open(path, encoding="utf-8") as f:
        return parse_config(f.read(), path)


def activation_name(value: int) -> str:
    return model_config_pb2().Activation.Name(value)


def layout_name(value: int) -> str:
    return model_config_pb2().WeightLayout.Name(value)
