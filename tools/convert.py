#!/usr/bin/python3
"""Converts trained dense-network weights into an nnserve model directory.

    /usr/bin/python3 tools/convert.py WEIGHTS --name NAME --framework F \\
        --activations relu,relu,softmax [--input-name pixels] \\
        [--output-name probs] [--labels a,b,c | --labels @labels.txt] \\
        [--version 1] [--dtype f32|f16|bf16] [--format safetensors|npy] \\
        [--layer-names h1,h2,out] [--precision fp32|bf16|int8] \\
        [--max-precision-deviation 0.02] [--force] REPOSITORY

writes REPOSITORY/NAME/config.pbtxt and REPOSITORY/NAME/VERSION/ weights.
A tool for preparing models, never needed at run time.

Inputs
  .npz   the universal route, from any framework:
           PyTorch: np.savez(f, **{k: v.numpy() for k, v in
                                   model.state_dict().items()})
           Keras:   np.savez(f, *model.get_weights())
         Tensors are taken in the order they are stored in the archive
         (np.savez keeps argument order).
  .pt / .pth   a PyTorch state dict (or a whole module); needs `torch`.
  .h5 / .weights.h5   Keras weights (Keras 2 save_weights / model.save, or
         Keras 3 .weights.h5); needs `h5py`. Keras 2 files list their layer
         order; for Keras 3 files, layers are ordered by name with numbers
         compared numerically (dense, dense_1, ..., dense_10), which matches
         Keras' automatic names: convert custom-named models via .npz.

Layout (--framework): pytorch -> OUT_IN, weights [out, in] (nn.Linear);
keras and numpy -> IN_OUT, weights [in, out] (Dense kernel, x @ W).
Tensors are stored as given; config.pbtxt records the layout.

Pairing rule: walking the tensors in order, every 2-D tensor starts a new
layer (its weight matrix); a 1-D tensor directly after it is that layer's
bias; a 2-D tensor directly after another makes the first a layer without
bias. Anything else (a 1-D tensor with no weight before it, 0-D or >2-D
tensors such as BatchNorm buffers or convolutions) is refused, naming it.
Layer widths come from the weights; consecutive layers must chain (each
layer's input width equals the previous layer's units) and biases must have
the layer's width. NaN/Inf values, and values that overflow the chosen
--dtype, are refused. Tensor names are kept (characters outside
[A-Za-z0-9_.-] become '_'); layer names default to the weight name without
its last '.suffix' (fc1.weight -> fc1), else layerN.

Activations: identity (alias linear), relu, leaky_relu, elu, sigmoid, tanh,
gelu (erf form), softmax; leaky_relu:0.2 / elu:0.5 set alpha. One per layer.

Precision: --precision bf16|int8 writes `precision: BF16|INT8` into
config.pbtxt, so nnserve runs the model's forward passes in that precision
(the weights are still stored as --dtype; nnserve converts them at load).
--max-precision-deviation D writes `max_precision_deviation: D`: nnserve then
refuses to load the model if any layer's output deviates from FP32 by more
than D (relative L2) on the load-time probe batch. See engine/README.md.
"""

from __future__ import annotations

import argparse
import os
import re
import sys

import numpy as np

import model_repo
import reference
import safetensors_io
from weight_readers import ConvertError, read_weights

FRAMEWORK_LAYOUTS = {"pytorch": "OUT_IN", "keras": "IN_OUT", "numpy": "IN_OUT"}
ACTIVATION_ALIASES = {
    "identity": "IDENTITY", "linear": "IDENTITY", "none": "IDENTITY",
    "relu": "RELU", "leaky_relu": "LEAKY_RELU", "leakyrelu": "LEAKY_RELU",
    "elu": "ELU", "sigmoid": "SIGMOID", "logistic": "SIGMOID",
    "tanh": "TANH", "gelu": "GELU", "softmax": "SOFTMAX",
}


def sanitize(name: str) -> str:
    clean = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
    if not clean or clean[0] in ".-":
        clean = "_" + clean
    return clean[:128]


def pair_layers(entries, layout: str):
    """[(weight_name, weight, bias_name or None, bias or None)] in order."""
    layers = []
    for name, array in entries:
        if array.ndim == 2:
            layers.append([name, array, None, None])
        elif array.ndim == 1 and layers and layers[-1][2] is None:
            layers[-1][2], layers[-1][3] = name, array
        else:
            what = "a 1-D tensor with no weight matrix before it" \
                if array.ndim == 1 else f"a {array.ndim}-D tensor"
            raise ConvertError(
                f"tensor '{name}' (shape {list(array.shape)}) is {what}; "
                f"expected 2-D weight matrices, each optionally followed by "
                f"its 1-D bias (dense layers only)")
    if not layers:
        raise ConvertError("no 2-D weight matrices found; expected at least "
                           "one dense layer")
    fan_in = None
    for index, (w_name, weight, b_name, bias) in enumerate(layers):
        units, inputs = (weight.shape if layout == "OUT_IN" else
                         weight.shape[::-1])
        shape_rule = "[out, in]" if layout == "OUT_IN" else "[in, out]"
        if fan_in is not None and inputs != fan_in:
            prev = layers[index - 1][0]
            raise ConvertError(
                f"weight '{w_name}' has shape {list(weight.shape)} "
                f"({layout}: {shape_rule}), so its input width is {inputs}; "
                f"expected {fan_in}, the units of the previous weight "
                f"'{prev}' (check --framework: it sets the layout)")
        if bias is not None and bias.shape[0] != units:
            raise ConvertError(
                f"bias '{b_name}' has {bias.shape[0]} values; expected {units}"
                f", the units of weight '{w_name}' {list(weight.shape)} "
                f"({layout}: {shape_rule}; check --framework)")
        fan_in = units
    return [tuple(layer) for layer in layers]


def parse_activations(text: str) -> list[tuple[str, float | None]]:
    result = []
    for item in text.split(","):
        name, _, alpha_text = item.strip().partition(":")
        key = name.strip().lower()
        if key not in ACTIVATION_ALIASES:
            raise ConvertError(
                f"activation {name.strip()!r} is unknown; expected one of "
                f"{', '.join(sorted(ACTIVATION_ALIASES))}")
        activation = ACTIVATION_ALIASES[key]
        alpha = None
        if alpha_text:
            if activation not in ("LEAKY_RELU", "ELU"):
                raise ConvertError(f"activation {item.strip()!r}: only "
                                   f"leaky_relu and elu take an alpha")
            try:
                alpha = float(alpha_text)
            except ValueError:
                raise ConvertError(f"activation {item.strip()!r}: alpha "
                                   f"{alpha_text!r} is not a number") from None
        result.append((activation, alpha))
    return result


def parse_labels(text: str | None) -> list[str]:
    if not text:
        return []
    if text.startswith("@"):
        with open(text[1:], encoding="utf-8") as f:
            return [line.rstrip("\r\n") for line in f if line.strip()]
    return [label.strip() for label in text.split(",")]


def layer_name(weight_name: str, index: int) -> str:
    stem = weight_name.rsplit(".", 1)[0] if "." in weight_name else ""
    return stem or f"layer{index + 1}"


def build(entries, args) -> tuple[model_repo.ModelDef, dict[str, np.ndarray]]:
    layout = FRAMEWORK_LAYOUTS[args.framework]
    renamed = {}
    for name, array in entries:
        clean = sanitize(name)
        if clean in renamed:
            raise ConvertError(f"tensor names '{name}' and another both become"
                               f" '{clean}'; expected distinct names")
        renamed[clean] = name
    entries = [(sanitize(n), a) for n, a in entries]
    for name, array in entries:
        if array.dtype.kind != "f":
            raise ConvertError(f"tensor '{renamed[name]}' has dtype "
                               f"{array.dtype}; expected floating point weights")
        try:
            model_repo.check_finite(name, array)
        except ValueError as e:
            raise ConvertError(str(e)) from None
    layers = pair_layers(entries, layout)
    activations = parse_activations(args.activations)
    if len(activations) != len(layers):
        found = ", ".join(f"{w} {list(a.shape)}" for w, a, _, _ in layers)
        raise ConvertError(f"--activations lists {len(activations)} "
                           f"activations for {len(layers)} layers; expected "
                           f"one per layer (layers found: {found})")
    names = [layer_name(w, i) for i, (w, _, _, _) in enumerate(layers)]
    if args.layer_names:
        names = [n.strip() for n in args.layer_names.split(",")]
        if len(names) != len(layers):
            raise ConvertError(f"--layer-names lists {len(names)} names for "
                               f"{len(layers)} layers; expected one per layer")
    elif len(set(names)) != len(names):
        names = [f"layer{i + 1}" for i in range(len(layers))]
    tensors = {}
    defs = []
    for (w_name, weight, b_name, bias), name, (act, alpha) in zip(
            layers, names, activations):
        tensors[w_name] = weight
        if b_name is not None:
            tensors[b_name] = bias
        units = weight.shape[0] if layout == "OUT_IN" else weight.shape[1]
        defs.append(model_repo.LayerDef(name=name, units=int(units),
                                        activation=act, weight=w_name,
                                        bias=b_name or "", alpha=alpha))
    first = layers[0][1]
    input_size = first.shape[1] if layout == "OUT_IN" else first.shape[0]
    model = model_repo.ModelDef(
        name=args.name, input_name=args.input_name, input_size=int(input_size),
        output_name=args.output_name, layers=defs, weight_layout=layout,
        labels=parse_labels(args.labels), precision=args.precision.upper(),
        max_precision_deviation=args.max_precision_deviation)
    return model, tensors


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n\n".join(__doc__.split("\n\n")[2:]))
    parser.add_argument("weights", help=".npz, .pt/.pth or .h5 weight file")
    parser.add_argument("repository", help="model repository directory")
    parser.add_argument("--name", required=True, help="model name")
    parser.add_argument("--framework", required=True,
                        choices=sorted(FRAMEWORK_LAYOUTS),
                        help="sets the weight layout: pytorch = OUT_IN "
                             "[out, in]; keras, numpy = IN_OUT [in, out]")
    parser.add_argument("--activations", required=True,
                        help="one per layer, e.g. relu,relu,softmax")
    parser.add_argument("--input-name", default="input")
    parser.add_argument("--output-name", default="output")
    parser.add_argument("--labels", help="comma-separated class labels, or "
                                         "@FILE with one label per line")
    parser.add_argument("--layer-names", help="comma-separated layer names")
    parser.add_argument("--version", type=int, default=1)
    parser.add_argument("--dtype", choices=model_repo.DTYPES, default="f32")
    parser.add_argument("--format", choices=model_repo.FORMATS,
                        default="safetensors", dest="file_format")
    parser.add_argument("--precision", default="fp32",
                        choices=[p.lower() for p in model_repo.PRECISIONS],
                        help="arithmetic nnserve runs the model in (config "
                             "`precision`); weights stay as --dtype")
    parser.add_argument("--max-precision-deviation", type=float, default=0.0,
                        help="largest relative L2 deviation from FP32 of any "
                             "layer's output nnserve accepts at load "
                             "(0 = no limit)")
    parser.add_argument("--force", action="store_true",
                        help="replace an existing version directory and a "
                             "config.pbtxt that describes a different model")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if not model_repo.is_valid_model_name(args.name):
            raise ConvertError(f"--name {args.name!r} is invalid; expected "
                               f"[A-Za-z0-9][A-Za-z0-9_.-]{{0,63}}")
        version_dir = os.path.join(args.repository, args.name,
                                   str(args.version))
        if os.path.exists(version_dir) and not args.force:
            raise ConvertError(f"{version_dir} already exists; expected a new "
                               f"--version, or --force to replace it")
        entries = read_weights(args.weights, args.framework)
        model, tensors = build(entries, args)
        model_dir = model_repo.write_model(
            args.repository, model, tensors, version=args.version,
            file_format=args.file_format, dtype=args.dtype,
            comments=[f"Written by tools/convert.py from "
                      f"{os.path.basename(args.weights)} "
                      f"(--framework {args.framework})."],
            metadata={"producer": "tools/convert.py",
                      "source": os.path.basename(args.weights),
                      "weight_layout": model.weight_layout},
            replace_config=args.force)
        # Read back what was written and check it is what was meant.
        written = reference.load_model(model_dir, args.version)
        for layer, ref_layer in zip(model.layers, written.layers):
            expected = model_repo.cast_for_file(
                layer.weight, tensors[layer.weight], args.dtype)
            if model.weight_layout == "IN_OUT":
                expected = expected.T
            if not np.array_equal(ref_layer.weight,
                                  _as_stored(expected, args.dtype)):
                raise ConvertError(f"{model_dir}: weight '{layer.weight}' "
                                   f"read back differs from what was written")
    except (ConvertError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {model_dir}/config.pbtxt and {args.version}/ "
          f"({args.file_format}, {args.dtype}, {model.weight_layout}"
          f"{', precision ' + model.precision if model.precision != 'FP32' else ''})")
    fan_in = model.input_size
    for layer in model.layers:
        bias = f" + bias '{layer.bias}'" if layer.bias else ""
        print(f"  {layer.name}: {fan_in} -> {layer.units} {layer.activation}"
              f"  weight '{layer.weight}'{bias}")
        fan_in = layer.units
    return 0


def _as_stored(array: np.ndarray, dtype: str) -> np.ndarray:
    """float32 values as a reader sees them after storing with `dtype`."""
    if dtype == "bf16":
        return safetensors_io.bf16_bits_to_float32(
            safetensors_io.float32_to_bf16_bits(array))
    return np.asarray(array, dtype=np.float32)


if __name__ == "__main__":
    sys.exit(main())
