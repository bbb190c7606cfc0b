#!/usr/bin/python3
"""Writes the `mlp-784` example model: 784 -> 512 ReLU -> 512 ReLU -> 10 softmax.

MNIST-shaped but NOT trained: fixed-seed random weights for benchmarks and
load tests (its outputs carry no meaning). Initialisation: He normal
(std sqrt(2 / fan_in)) for the two ReLU layers, Glorot uniform
(+-sqrt(6 / (fan_in + fan_out))) for the softmax layer, biases normal with
std 0.01 so the bias path is exercised. Weights are float32, OUT_IN layout
(fc1.weight [512, 784] ...), one model.safetensors (~2.6 MB).

Deterministic: NumPy's PCG64 generator with a fixed seed, and a writer that
emits the same bytes for the same tensors, so running twice gives identical
files. Also writes sample_input.npy (4 rows of uniform [0, 1) floats).

    /usr/bin/python3 tools/make_mlp784.py [--repository DIR]
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

import model_repo
import reference

SEED = 784
SIZES = (784, 512, 512, 10)
SAMPLE_ROWS = 4
DEFAULT_REPOSITORY = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "models")


def make_tensors(seed: int = SEED) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    tensors = {}
    last = len(SIZES) - 2
    for i, (fan_in, units) in enumerate(zip(SIZES[:-1], SIZES[1:])):
        if i < last:  # ReLU layers: He normal.
            weight = rng.normal(0.0, np.sqrt(2.0 / fan_in), (units, fan_in))
        else:  # Softmax layer: Glorot uniform.
            limit = np.sqrt(6.0 / (fan_in + units))
            weight = rng.uniform(-limit, limit, (units, fan_in))
        tensors[f"fc{i + 1}.weight"] = weight.astype(np.float32)
        tensors[f"fc{i + 1}.bias"] = rng.normal(0.0, 0.01,
                                                units).astype(np.float32)
    return tensors


def model_def() -> model_repo.ModelDef:
    layers = []
    for i, units in enumerate(SIZES[1:]):
        last = i == len(SIZES) - 2
        layers.append(model_repo.LayerDef(
            name="output" if last else f"hidden{i + 1}", units=units,
            activation="SOFTMAX" if last else "RELU",
            weight=f"fc{i + 1}.weight", bias=f"fc{i + 1}.bias"))
    return model_repo.ModelDef(name="mlp-784", input_name="pixels",
                               input_size=SIZES[0], output_name="probs",
                               weight_layout="OUT_IN", layers=layers)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repository", default=DEFAULT_REPOSITORY,
                        help="model repository to write mlp-784/ into "
                             "(default: the source tree's models/)")
    args = parser.parse_args(argv)
    tensors = make_tensors()
    model_dir = model_repo.write_model(
        args.repository, model_def(), tensors, version=1,
        comments=["Written by tools/make_mlp784.py: fixed-seed RANDOM weights",
                  "(not trained), for benchmarks and load tests."],
        metadata={"producer": "tools/make_mlp784.py",
                  "weight_layout": "OUT_IN", "seed": str(SEED)})
    sample = np.random.default_rng(SEED + 1).random(
        (SAMPLE_ROWS, SIZES[0])).astype(np.float32)
    np.save(os.path.join(model_dir, "sample_input.npy"), sample)

    # Read the files back and check they hold exactly what was generated.
    ref = reference.load_model(model_dir, 1)
    for i, layer in enumerate(ref.layers):
        if not (np.array_equal(layer.weight, tensors[f"fc{i + 1}.weight"]) and
                np.array_equal(layer.bias, tensors[f"fc{i + 1}.bias"])):
            print(f"error: layer '{layer.name}' read back differs from what "
                  f"was written", file=sys.stderr)
            return 1
    params = sum(t.size for t in tensors.values())
    size = os.path.getsize(os.path.join(model_dir, "1", "model.safetensors"))
    print(f"mlp-784: {params} parameters, model.safetensors {size} bytes; "
          f"sample output argmax {np.argmax(reference.forward(ref, sample), 1)}")
    print(f"wrote {model_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
