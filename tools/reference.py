#!/usr/bin/python3
"""NumPy reference forward pass for an nnserve model directory.

Reads <model_dir>/config.pbtxt (with the real schema, via
model_config_proto.py) and one version's weights (model.safetensors or
<tensor>.npy), converts every tensor to float32 as nnserve does at load
(F16/BF16/F64 files included), canonicalises weights to [units, in] and runs
the layers in float64. This is the oracle the tests compare `nnserve run`
against, and a way for users to check a converted model:

    /usr/bin/python3 tools/reference.py models/digits \
        --input models/digits/sample_input.npy [--output probs.npy]

It does not re-validate the model; use `nnserve inspect` for that.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys

import numpy as np

import model_config_proto
import safetensors_io

_DEFAULT_ALPHA = {"LEAKY_RELU": 0.01, "ELU": 1.0}


@dataclasses.dataclass
class RefLayer:
    name: str
    activation: str
    alpha: float
    weight: np.ndarray  # [units, in], float32 values.
    bias: np.ndarray | None  # [units], float32 values.


@dataclasses.dataclass
class RefModel:
    config: object  # nnserve.v1.ModelConfig
    version: int
    layers: list[RefLayer]


def versions(model_dir: str) -> list[int]:
    found = [int(e) for e in os.listdir(model_dir)
             if e.isdigit() and int(e) > 0 and
             os.path.isdir(os.path.join(model_dir, e))]
    return sorted(found)


def read_tensors(version_dir: str, names: list[str]) -> dict[str, np.ndarray]:
    """The named tensors of one version directory, as float32."""
    st_path = os.path.join(version_dir, "model.safetensors")
    if os.path.exists(st_path):
        content = safetensors_io.load_file(st_path).tensors
        return {n: content[n].astype(np.float32) for n in names}
    return {n: np.load(os.path.join(version_dir, n + ".npy"),
                       allow_pickle=False).astype(np.float32) for n in names}


def load_model(model_dir: str, version: int = 0) -> RefModel:
    """Loads `version` (0 = the highest) of the model in `model_dir`."""
    config = model_config_proto.read_config(
        os.path.join(model_dir, "config.pbtxt"))
    if version == 0:
        available = versions(model_dir)
        if not available:
            raise ValueError(f"{model_dir}: no version directories")
        version = available[-1]
    names = []
    for layer in config.layers:
        names.append(layer.weight)
        if layer.bias:
            names.append(layer.bias)
    tensors = read_tensors(os.path.join(model_dir, str(version)), names)
    in_out = model_config_proto.layout_name(config.weight_layout) == "IN_OUT"
    layers = []
    for layer in config.layers:
        activation = model_config_proto.activation_name(layer.activation)
        alpha = layer.alpha if layer.HasField("alpha") else \
            _DEFAULT_ALPHA.get(activation, 0.0)
        weight = tensors[layer.weight]
        layers.append(RefLayer(
            name=layer.name, activation=activation, alpha=float(alpha),
            weight=weight.T.copy() if in_out else weight,
            bias=tensors[layer.bias] if layer.bias else None))
    return RefModel(config=config, version=version, layers=layers)


def activate(name: str, x: np.ndarray, alpha: float = 0.0) -> np.ndarray:
    """Applies a config activation to float64 rows `x`."""
    if name == "IDENTITY":
        return x
    if name == "RELU":
        return np.maximum(x, 0.0)
    if name == "LEAKY_RELU":
        return np.where(x > 0, x, alpha * x)
    if name == "ELU":
        return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0.0)))
    if name == "SIGMOID":
        return 0.5 * (1.0 + np.tanh(0.5 * x))
    if name == "TANH":
        return np.tanh(x)
    if name == "GELU":
        erf = np.vectorize(math.erf, otypes=[np.float64])
        return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))
    if name == "SOFTMAX":
        shifted = np.exp(x - x.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)
    raise ValueError(f"activation {name!r} is not supported")


def forward(model: RefModel, inputs: np.ndarray) -> np.ndarray:
    """Runs float64 rows [batch, input size] (1-D = one row) through."""
    x = np.atleast_2d(np.asarray(inputs, dtype=np.float64))
    for layer in model.layers:
        x = x @ layer.weight.astype(np.float64).T
        if layer.bias is not None:
            x = x + layer.bias.astype(np.float64)
        x = activate(layer.activation, x, layer.alpha)
    return x


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir")
    parser.add_argument("--input", required=True,
                        help=".npy of float rows [batch, input size]")
    parser.add_argument("--output", help="write the outputs here (.npy f32)")
    parser.add_argument("--version", type=int, default=0,
                        help="model version (default: the highest)")
    args = parser.parse_args(argv)
    try:
        model = load_model(args.model_dir, args.version)
        x = np.load(args.input, allow_pickle=False)
        y = forward(model, x)
    except (OSError, ValueError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if args.output:
        np.save(args.output, y.astype(np.float32))
    labels = list(model.config.output.labels)
    np.set_printoptions(precision=6, suppress=True, linewidth=120)
    for i, row in enumerate(y):
        best = int(np.argmax(row))
        tag = f"  -> {labels[best]}" if labels else f"  -> argmax {best}"
        print(f"row {i}: {row}{tag}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
