"""Writes model directories in the nnserve model repository format.

    <repository>/<model-name>/config.pbtxt          nnserve.v1.ModelConfig
    <repository>/<model-name>/<version>/model.safetensors   (all tensors)
                                      or <tensor-name>.npy  (one per tensor)

`ModelDef` describes a dense model the way config.pbtxt does (see
proto/nnserve/v1/model_config.proto); `render_config` turns it into protobuf
text format and `write_model` writes config and weights after checking what
nnserve checks at load: valid names, weight/bias shapes that chain from the
input through every layer for the declared layout, finite values, labels that
match the output width. Errors are ValueError naming the tensor or field, what
was found and what was expected. Used by train_digits.py, make_mlp784.py and
convert.py; NumPy only.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil

import numpy as np

import safetensors_io

ACTIVATIONS = ("IDENTITY", "RELU", "LEAKY_RELU", "ELU", "SIGMOID", "TANH",
               "GELU", "SOFTMAX")
LAYOUTS = ("OUT_IN", "IN_OUT")
PRECISIONS = ("FP32", "BF16", "INT8")  # config.pbtxt `precision`
# File dtypes a model can be written in, and how each is stored.
DTYPES = ("f32", "f16", "bf16")
FORMATS = ("safetensors", "npy")

_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_TENSOR_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


def is_valid_model_name(name: str) -> bool:
    return bool(_MODEL_NAME.fullmatch(name))


def is_valid_tensor_name(name: str) -> bool:
    return bool(_TENSOR_NAME.fullmatch(name)) and name not in (".", "..")


@dataclasses.dataclass
class LayerDef:
    name: str
    units: int
    activation: str  # One of ACTIVATIONS.
    weight: str  # Tensor name of the weight matrix.
    bias: str = ""  # Tensor name of the bias vector; "" = no bias.
    alpha: float | None = None  # LEAKY_RELU / ELU only.


@dataclasses.dataclass
class ModelDef:
    name: str
    input_name: str
    input_size: int
    output_name: str
    layers: list[LayerDef]
    weight_layout: str = "OUT_IN"  # One of LAYOUTS.
    labels: list[str] = dataclasses.field(default_factory=list)
    precision: str = "FP32"  # One of PRECISIONS; written unless FP32.
    max_precision_deviation: float = 0.0  # Written when > 0.


def _quote(text: str) -> str:
    """A protobuf text-format string literal (UTF-8 kept, controls escaped)."""
    out = []
    for ch in text:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\{ord(ch):03o}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def render_config(model: ModelDef, comments: list[str] = ()) -> str:
    """config.pbtxt text for `model`, with optional leading # comments."""
    lines = [f"# {c}" if c else "#" for c in comments]
    lines.append(f"name: {_quote(model.name)}")
    lines.append(f"input {{ name: {_quote(model.input_name)} "
                 f"size: {model.input_size} }}")
    output = f"output {{ name: {_quote(model.output_name)} " \
             f"size: {model.layers[-1].units}"
    if model.labels:
        output += " labels: [" + ", ".join(_quote(l) for l in model.labels) \
                  + "]"
    lines.append(output + " }")
    lines.append(f"weight_layout: {model.weight_layout}")
    for layer in model.layers:
        text = (f"layers {{ name: {_quote(layer.name)} units: {layer.units} "
                f"activation: {layer.activation}")
        if layer.alpha is not None:
            text += f" alpha: {layer.alpha!r}"
        text += f" weight: {_quote(layer.weight)}"
        if layer.bias:
            text += f" bias: {_quote(layer.bias)}"
        lines.append(text + " }")
    if model.precision != "FP32":
        lines.append(f"precision: {model.precision}")
    if model.max_precision_deviation > 0:
        lines.append(f"max_precision_deviation: "
                     f"{model.max_precision_deviation!r}")
    return "\n".join(lines) + "\n"


def expected_weight_shape(layout: str, units: int, fan_in: int) -> tuple:
    return (units, fan_in) if layout == "OUT_IN" else (fan_in, units)


def validate(model: ModelDef, tensors: dict[str, np.ndarray]) -> None:
    """Checks `model` against itself and `tensors`, as nnserve does at load."""
    if not is_valid_model_name(model.name):
        raise ValueError(f"model name {model.name!r} is invalid; expected "
                         f"[A-Za-z0-9][A-Za-z0-9_.-]{{0,63}}")
    if not model.input_name or not model.output_name:
        raise ValueError("input and output names must be non-empty")
    if model.input_size <= 0:
        raise ValueError(f"input size is {model.input_size}; expected > 0")
    if model.weight_layout not in LAYOUTS:
        raise ValueError(f"weight layout {model.weight_layout!r}; expected one"
                         f" of {', '.join(LAYOUTS)}")
    if model.precision not in PRECISIONS:
        raise ValueError(f"precision {model.precision!r}; expected one of "
                         f"{', '.join(PRECISIONS)}")
    if not (model.max_precision_deviation >= 0
            and np.isfinite(model.max_precision_deviation)):
        raise ValueError(f"max_precision_deviation is "
                         f"{model.max_precision_deviation}; expected a finite "
                         f"value >= 0 (0 = no limit)")
    if not model.layers:
        raise ValueError("the model has no layers; expected at least one")
    seen_layers = set()
    referenced = []
    fan_in, source = model.input_size, f"input '{model.input_name}'"
    for layer in model.layers:
        where = f"layer '{layer.name}'"
        if not layer.name or layer.name in seen_layers:
            raise ValueError(f"layer name {layer.name!r} is empty or repeated;"
                             f" expected unique non-empty names")
        seen_layers.add(layer.name)
        if layer.activation not in ACTIVATIONS:
            raise ValueError(f"{where}: activation {layer.activation!r}; "
                             f"expected one of {', '.join(ACTIVATIONS)}")
        if layer.alpha is not None and layer.activation not in ("LEAKY_RELU",
                                                                "ELU"):
            raise ValueError(f"{where}: alpha is only allowed for LEAKY_RELU "
                             f"and ELU, not {layer.activation}")
        if layer.units <= 0:
            raise ValueError(f"{where}: units is {layer.units}; expected > 0")
        expected = {layer.weight: expected_weight_shape(
            model.weight_layout, layer.units, fan_in)}
        if layer.bias:
            expected[layer.bias] = (layer.units,)
        for name, shape in expected.items():
            if not is_valid_tensor_name(name):
                raise ValueError(f"{where}: tensor name {name!r} is invalid; "
                                 f"expected [A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}}")
            if name in referenced:
                raise ValueError(f"{where}: tensor '{name}' is used twice; "
                                 f"expected one tensor per weight and bias")
            referenced.append(name)
            if name not in tensors:
                raise ValueError(f"{where}: tensor '{name}' is missing")
            found = tuple(np.shape(tensors[name]))
            if found != shape:
                detail = (f"{model.weight_layout}: "
                          f"{'[units, in]' if model.weight_layout == 'OUT_IN' else '[in, units]'}"
                          f"; in = {fan_in} from {source}")
                raise ValueError(f"{where}: tensor '{name}' has shape "
                                 f"{list(found)}, expected {list(shape)} "
                                 f"({detail if name == layer.weight else 'bias: [units]'})")
            check_finite(name, tensors[name])
        fan_in, source = layer.units, where
    extra = sorted(set(tensors) - set(referenced))
    if extra:
        raise ValueError(f"tensors {extra} are not referenced by any layer; "
                         f"expected only the layers' weights and biases")
    if model.labels and len(model.labels) != fan_in:
        raise ValueError(f"{len(model.labels)} labels for {fan_in} output "
                         f"units; expected one label per unit")


def check_finite(name: str, array: np.ndarray) -> None:
    """Raises ValueError naming the first NaN/Inf in `array`, if any."""
    values = np.asarray(array)
    if values.dtype.kind != "f":
        return
    bad = ~np.isfinite(values)
    if bad.any():
        flat = int(np.flatnonzero(bad.ravel())[0])
        raise ValueError(f"tensor '{name}' has {int(bad.sum())} non-finite "
                         f"values (first at flat index {flat}: "
                         f"{values.ravel()[flat]}); expected finite numbers")


def cast_for_file(name: str, array: np.ndarray, dtype: str) -> np.ndarray:
    """The array as it will be stored for `dtype` (f32/f16; bf16 stays f32 and
    is rounded by the safetensors writer). Refuses values the dtype cannot
    represent (overflow to Inf)."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype {dtype!r}; expected one of {', '.join(DTYPES)}")
    if dtype == "f16":
        with np.errstate(over="ignore"):
            out = np.asarray(array, dtype=np.float32).astype(np.float16)
        if not np.isfinite(out).all():
            peak = float(np.abs(np.asarray(array, np.float64)).max())
            raise ValueError(f"tensor '{name}' has values up to {peak:g}, "
                             f"beyond float16's range (65504); expected "
                             f"--dtype f32 or bf16 for this model")
        return out
    out = np.asarray(array, dtype=np.float32)
    if dtype == "bf16":
        widened = safetensors_io.bf16_bits_to_float32(
            safetensors_io.float32_to_bf16_bits(out))
        if not np.isfinite(widened).all():
            raise ValueError(f"tensor '{name}' overflows bfloat16; expected "
                             f"--dtype f32")
    check_finite(name, out)
    return out


def write_model(repository: str, model: ModelDef,
                tensors: dict[str, np.ndarray], *, version: int = 1,
                file_format: str = "safetensors", dtype: str = "f32",
                comments: list[str] = (), metadata: dict[str, str] | None = None,
                replace_config: bool = True) -> str:
    """Validates and writes config.pbtxt and one version's weights.

    Returns the model directory. The version directory is replaced as a
    whole (stale weight files would make it invalid). An existing
    config.pbtxt that differs is only overwritten when `replace_config`,
    since all versions of a model share it.
    """
    validate(model, tensors)
    if version <= 0:
        raise ValueError(f"version is {version}; expected a positive integer")
    if file_format not in FORMATS:
        raise ValueError(f"format {file_format!r}; expected one of "
                         f"{', '.join(FORMATS)}")
    if file_format == "npy" and dtype == "bf16":
        raise ValueError("bf16 needs --format safetensors: .npy has no "
                         "bfloat16 dtype (nnserve reads <f4, <f8, <f2 .npy)")
    stored = {n: cast_for_file(n, a, dtype) for n, a in tensors.items()}
    model_dir = os.path.join(repository, model.name)
    config_path = os.path.join(model_dir, "config.pbtxt")
    config_text = render_config(model, comments)
    if os.path.exists(config_path) and not replace_config:
        with open(config_path, encoding="utf-8") as f:
            if _strip_comments(f.read()) != _strip_comments(config_text):
                raise ValueError(
                    f"{config_path} exists and describes a different model "
                    f"(all versions share it); expected the same layers, "
                    f"names and labels, or --force to replace it")
    version_dir = os.path.join(model_dir, str(version))
    staging = os.path.join(model_dir, f".{version}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(staging)
    try:
        if file_format == "safetensors":
            dtypes = {n: "BF16" for n in stored} if dtype == "bf16" else None
            safetensors_io.save_file(os.path.join(staging, "model.safetensors"),
                                     stored, metadata=metadata, dtypes=dtypes)
        else:
            for name, array in stored.items():
                np.save(os.path.join(staging, name + ".npy"),
                        np.ascontiguousarray(array))
        shutil.rmtree(version_dir, ignore_errors=True)
        os.replace(staging, version_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    tmp_config = config_path + ".tmp"
    with open(tmp_config, "w", encoding="utf-8") as f:
        f.write(config_text)
    os.replace(tmp_config, config_path)
    return model_dir


def _strip_comments(text: str) -> str:
    return "\n".join(line for line in text.splitlines()
                     if not line.lstrip().startswith("#"))
