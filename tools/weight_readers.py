"""Reads trained dense-network weights for convert.py, in file order.

Each reader returns [(tensor name, NumPy array)] in the order the layers
were saved, which is what convert.py's pairing rule walks:
  .npz          np.savez archive order (np.savez keeps argument order)
  .pt / .pth    a PyTorch state dict or module (needs `torch`)
  .h5           Keras 2 save_weights / model.save files (their layer_names
                order) or Keras 3 .weights.h5 (layers/<name>/vars/<i>,
                layers sorted by name with numbers compared numerically);
                needs `h5py`
Problems raise ConvertError with a message saying what was wrong and how to
export the weights to .npz instead. Stateless.
"""

from __future__ import annotations

import re

import numpy as np


class ConvertError(Exception):
    """A problem with the inputs or arguments; the message says what."""


def read_npz(path: str) -> list[tuple[str, np.ndarray]]:
    with np.load(path, allow_pickle=False) as archive:
        return [(name, np.asarray(archive[name])) for name in archive.files]


def read_torch(path: str) -> list[tuple[str, np.ndarray]]:
    try:
        import torch  # type: ignore
    except ImportError as e:
        raise ConvertError(
            f"{path}: reading a PyTorch file needs `torch`, which is not "
            f"importable here ({e}); export the state dict to .npz instead: "
            f"np.savez('weights.npz', **{{k: v.numpy() for k, v in "
            f"model.state_dict().items()}})") from None
    try:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except TypeError:  # PyTorch < 1.13 has no weights_only.
            obj = torch.load(path, map_location="cpu")
    except Exception as e:  # torch raises many types for unreadable files.
        raise ConvertError(f"{path}: torch.load failed ({e}); expected a "
                           f"saved state dict (torch.save(model.state_dict()"
                           f", path))") from None
    if hasattr(obj, "state_dict"):
        obj = obj.state_dict()
    if not isinstance(obj, dict):
        raise ConvertError(f"{path}: holds a {type(obj).__name__}; expected a "
                           f"state dict (name -> tensor) or an nn.Module")
    return [(k, v.detach().cpu().float().numpy() if hasattr(v, "detach")
             else np.asarray(v)) for k, v in obj.items()]


def _natural_key(text: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def read_keras_h5(path: str) -> list[tuple[str, np.ndarray]]:
    try:
        import h5py  # type: ignore
    except ImportError as e:
        raise ConvertError(
            f"{path}: reading Keras .h5 needs `h5py`, which is not importable "
            f"here ({e}) (Debian: python3-h5py); or save the weights to .npz "
            f"instead: np.savez('weights.npz', *model.get_weights())") from None

    def text(value) -> str:
        return value.decode("utf-8") if isinstance(value, bytes) else str(value)

    out = []
    with h5py.File(path, "r") as f:
        root = f["model_weights"] if "model_weights" in f else f
        # Keras 3 names the group "layers"; Keras 2.13+ saving_lib files
        # used "_layer_checkpoint_dependencies" for the same structure.
        keras3_key = next((k for k in ("layers",
                                       "_layer_checkpoint_dependencies")
                           if k in root), None)
        if "layer_names" in root.attrs:  # Keras 2: ordered layer list.
            for layer in (text(n) for n in root.attrs["layer_names"]):
                group = root[layer]
                for weight in (text(n) for n in group.attrs["weight_names"]):
                    short = weight.split("/")[-1].split(":")[0]
                    out.append((f"{layer}.{short}", np.asarray(group[weight])))
        elif keras3_key in root:  # Keras 3: layers/<name>/vars/<i>.
            layers_group = root[keras3_key]
            for layer in sorted(layers_group.keys(), key=_natural_key):
                group = layers_group[layer]
                if "vars" not in group:
                    continue
                variables = group["vars"]
                for index in sorted(variables.keys(), key=int):
                    short = {"0": "kernel", "1": "bias"}.get(index,
                                                             f"var{index}")
                    out.append((f"{layer}.{short}",
                                np.asarray(variables[index])))
        else:
            raise ConvertError(f"{path}: no Keras weights found; expected a "
                               f"'layer_names' attribute (Keras 2) or a "
                               f"'layers' group (Keras 3 .weights.h5)")
    return out


def read_weights(path: str, framework: str) -> list[tuple[str, np.ndarray]]:
    lower = path.lower()
    if lower.endswith(".npz"):
        return read_npz(path)
    if lower.endswith((".pt", ".pth")):
        if framework != "pytorch":
            raise ConvertError(f"{path} is a PyTorch file; expected "
                               f"--framework pytorch, got {framework}")
        return read_torch(path)
    if lower.endswith(".h5"):
        if framework != "keras":
            raise ConvertError(f"{path} is a Keras file; expected --framework"
                               f" keras, got {framework}")
        return read_keras_h5(path)
    raise ConvertError(f"{path}: unknown weight file type; expected .npz, "
                       f".pt/.pth or .h5")
