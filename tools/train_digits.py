#!/usr/bin/python3
"""Trains the example `digits` model and writes it to the model repository.

Data: sklearn.datasets.load_digits (1,797 8x8 images of handwritten digits,
pixel values 0..16). Preprocessing: the model's input is the 64 pixels in
row-major order divided by 16, i.e. floats in [0, 1]. A stratified 25 %
held-out split (fixed seed) is never seen in training.

Model: sklearn MLPClassifier 64 -> 32 ReLU -> 10 softmax (Adam, fixed
random_state). Exported as nnserve model `digits` version 1:

    <repository>/digits/config.pbtxt          OUT_IN layout, labels "0".."9"
    <repository>/digits/1/model.safetensors   fc1.weight [32,64], fc1.bias,
                                              fc2.weight [10,32], fc2.bias (F32)
    <repository>/digits/sample_input.npy      8 held-out rows, float32 [8, 64]
    <repository>/digits/sample_labels.npy     their true digits, int64 [8]
    <repository>/digits/README.md             held-out accuracy and command

The export is verified before the script succeeds: the written config and
safetensors are read back and a NumPy forward pass must reproduce sklearn's
predict_proba on the held-out rows (max abs difference <= 1e-6) and its
accuracy. Run:  /usr/bin/python3 tools/train_digits.py [--repository DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

import numpy as np
import sklearn
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier

import model_repo
import reference

SEED = 0
TEST_FRACTION = 0.25
HIDDEN_UNITS = 32
MAX_ITER = 1000
SAMPLE_ROWS = 8
VERIFY_TOLERANCE = 1e-6
DEFAULT_REPOSITORY = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "models")


def load_split(seed: int = SEED):
    """(x_train, x_test, y_train, y_test): inputs are pixels / 16, float64."""
    digits = load_digits()
    x = digits.data / 16.0
    return train_test_split(x, digits.target, test_size=TEST_FRACTION,
                            stratify=digits.target, random_state=seed)


def train(x_train, y_train, seed: int = SEED) -> MLPClassifier:
    clf = MLPClassifier(hidden_layer_sizes=(HIDDEN_UNITS,), activation="relu",
                        solver="adam", alpha=1e-4, max_iter=MAX_ITER,
                        random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        clf.fit(x_train, y_train)
    if clf.out_activation_ != "softmax":
        raise RuntimeError(f"MLPClassifier output is {clf.out_activation_}; "
                           f"expected softmax")
    return clf


def model_def() -> model_repo.ModelDef:
    return model_repo.ModelDef(
        name="digits", input_name="pixels", input_size=64,
        output_name="digit", weight_layout="OUT_IN",
        labels=[str(d) for d in range(10)],
        layers=[
            model_repo.LayerDef("hidden", HIDDEN_UNITS, "RELU", "fc1.weight",
                                "fc1.bias"),
            model_repo.LayerDef("output", 10, "SOFTMAX", "fc2.weight",
                                "fc2.bias"),
        ])


def export_tensors(clf: MLPClassifier) -> dict[str, np.ndarray]:
    # sklearn's coefs_ are [in, out]; OUT_IN (PyTorch) wants [out, in].
    return {
        "fc1.weight": np.ascontiguousarray(clf.coefs_[0].T, dtype=np.float32),
        "fc1.bias": clf.intercepts_[0].astype(np.float32),
        "fc2.weight": np.ascontiguousarray(clf.coefs_[1].T, dtype=np.float32),
        "fc2.bias": clf.intercepts_[1].astype(np.float32),
    }


def readme(accuracy: float, n_test: int, correct: int, n_train: int,
           iterations: int, max_diff: float) -> str:
    return f"""# digits — example nnserve model

A 64 → 32 (ReLU) → 10 (softmax) MLP trained on scikit-learn's `load_digits`
(1,797 8×8 images of handwritten digits), written by `tools/train_digits.py`.

* **Input** `pixels`: 64 floats per row, the 8×8 image in row-major order
  **divided by 16** (`load_digits().data / 16`, values in [0, 1]).
* **Output** `digit`: 10 class probabilities; labels `"0"`…`"9"`.
* **Weights** `1/model.safetensors`: `fc1.weight` [32, 64], `fc1.bias` [32],
  `fc2.weight` [10, 32], `fc2.bias` [10], float32, `weight_layout: OUT_IN`.

## Held-out accuracy

**{accuracy * 100:.2f} %** ({correct} / {n_test}) on a stratified
{TEST_FRACTION:.0%} held-out split (`train_test_split(..., test_size={TEST_FRACTION},
stratify=y, random_state={SEED})`), trained on the other {n_train} images
(sklearn {sklearn.__version__} `MLPClassifier`, Adam, `random_state={SEED}`,
{iterations} iterations). The exported weights, read back and run through a
NumPy forward pass, reproduce sklearn's `predict_proba` on the held-out rows
to {max_diff:.1e} (max abs difference).

Reproduce (from the repository root; Debian's python3-sklearn, no downloads):

    /usr/bin/python3 tools/train_digits.py

## Samples

`sample_input.npy` (float32 [{SAMPLE_ROWS}, 64]) holds the first {SAMPLE_ROWS}
held-out rows, already divided by 16; `sample_labels.npy` (int64
[{SAMPLE_ROWS}]) their true digits. Try them with:

    nnserve run models/digits --input models/digits/sample_input.npy
    /usr/bin/python3 tools/reference.py models/digits --input models/digits/sample_input.npy
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repository", default=DEFAULT_REPOSITORY,
                        help="model repository to write digits/ into "
                             "(default: the source tree's models/)")
    args = parser.parse_args(argv)

    x_train, x_test, y_train, y_test = load_split()
    clf = train(x_train, y_train)
    accuracy = float(clf.score(x_test, y_test))
    correct = int(round(accuracy * len(y_test)))

    model = model_def()
    model_dir = model_repo.write_model(
        args.repository, model, export_tensors(clf), version=1,
        comments=["Written by tools/train_digits.py; see README.md.",
                  "Input: load_digits pixels (8x8, row-major) divided by 16."],
        metadata={"producer": "tools/train_digits.py",
                  "weight_layout": "OUT_IN"})

    # Verify the export through the files just written.
    ref = reference.load_model(model_dir, 1)
    probs = reference.forward(ref, x_test)
    max_diff = float(np.abs(probs - clf.predict_proba(x_test)).max())
    ref_accuracy = float(np.mean(np.argmax(probs, axis=1) == y_test))
    if max_diff > VERIFY_TOLERANCE or ref_accuracy != accuracy:
        print(f"error: exported model disagrees with sklearn: max |diff| "
              f"{max_diff:.3g} (expected <= {VERIFY_TOLERANCE}), accuracy "
              f"{ref_accuracy:.4f} vs {accuracy:.4f}", file=sys.stderr)
        return 1

    np.save(os.path.join(model_dir, "sample_input.npy"),
            x_test[:SAMPLE_ROWS].astype(np.float32))
    np.save(os.path.join(model_dir, "sample_labels.npy"),
            y_test[:SAMPLE_ROWS].astype(np.int64))
    with open(os.path.join(model_dir, "README.md"), "w",
              encoding="utf-8") as f:
        f.write(readme(accuracy, len(y_test), correct, len(y_train),
                       clf.n_iter_, max_diff))
    print(f"digits: held-out accuracy {accuracy * 100:.2f} % "
          f"({correct}/{len(y_test)}), {clf.n_iter_} iterations; export "
          f"verified (max |diff| vs predict_proba {max_diff:.2e})")
    print(f"wrote {model_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
