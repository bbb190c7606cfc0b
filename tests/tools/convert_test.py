"""Tests for tools/convert.py, driven through its command line."""

import importlib.util
import os
import pathlib
import subprocess
import sys
import tempfile
import unittest

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import model_config_proto  # noqa: E402
import reference  # noqa: E402
import safetensors_io  # noqa: E402

CONVERT = ROOT / "tools" / "convert.py"


def convert(*args):
    """Runs convert.py; returns (exit code, stdout + stderr)."""
    proc = subprocess.run([sys.executable, str(CONVERT), *map(str, args)],
                          capture_output=True, text=True)
    return proc.returncode, proc.stdout + proc.stderr


def manual_forward(x, layers):
    """x @ W^T + b per layer (W as [out, in]); activations by name."""
    for weight, bias, activation in layers:
        x = x @ weight.astype(np.float64).T
        if bias is not None:
            x = x + bias
        if activation == "relu":
            x = np.maximum(x, 0)
        elif activation == "tanh":
            x = np.tanh(x)
        elif activation == "softmax":
            e = np.exp(x - x.max(axis=1, keepdims=True))
            x = e / e.sum(axis=1, keepdims=True)
        elif activation.startswith("leaky_relu:"):
            # The config stores alpha as a float32.
            alpha = float(np.float32(activation.split(":")[1]))
            x = np.where(x > 0, x, alpha * x)
        else:
            raise AssertionError(activation)
    return x


class ConvertTestBase(unittest.TestCase):

    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory()
        self.tmp = pathlib.Path(self._tmp.name)
        self.repo = self.tmp / "repo"
        rng = np.random.default_rng(42)
        # A PyTorch-style state dict: nn.Linear weights are [out, in].
        self.torch_weights = {
            "net.0.weight": rng.normal(size=(16, 6)).astype(np.float32),
            "net.0.bias": rng.normal(size=16).astype(np.float32),
            "net.2.weight": rng.normal(size=(8, 16)).astype(np.float32),
            "net.2.bias": rng.normal(size=8).astype(np.float32),
            "head.weight": rng.normal(size=(3, 8)).astype(np.float32),
            "head.bias": rng.normal(size=3).astype(np.float32),
        }
        self.torch_npz = self.tmp / "torch.npz"
        np.savez(self.torch_npz, **self.torch_weights)
        # Keras get_weights(): kernels are [in, out]; saved positionally.
        self.keras_weights = [rng.normal(size=(6, 12)),
                              rng.normal(size=12),
                              rng.normal(size=(12, 4))]  # No bias.
        self.keras_npz = self.tmp / "keras.npz"
        np.savez(self.keras_npz, *self.keras_weights)
        self.x = rng.normal(size=(5, 6))

    def tearDown(self):
        self._tmp.cleanup()

    def config(self, name):
        return model_config_proto.read_config(
            str(self.repo / name / "config.pbtxt"))


class PytorchLayoutTest(ConvertTestBase):

    def test_safetensors_f32(self):
        code, out = convert(self.torch_npz, self.repo, "--name", "clf",
                            "--framework", "pytorch", "--activations",
                            "relu,tanh,softmax", "--input-name", "features",
                            "--output-name", "species", "--labels",
                            "setosa,versicolor,virginica")
        self.assertEqual(code, 0, out)
        config = self.config("clf")
        self.assertEqual(config.name, "clf")
        self.assertEqual((config.input.name, config.input.size),
                         ("features", 6))
        self.assertEqual(config.output.name, "species")
        self.assertEqual(config.output.size, 3)
        self.assertEqual(list(config.output.labels),
                         ["setosa", "versicolor", "virginica"])
        self.assertEqual(model_config_proto.layout_name(config.weight_layout),
                         "OUT_IN")
        self.assertEqual(
            [(l.name, l.units, model_config_proto.activation_name(
                l.activation), l.weight, l.bias) for l in config.layers],
            [("net.0", 16, "RELU", "net.0.weight", "net.0.bias"),
             ("net.2", 8, "TANH", "net.2.weight", "net.2.bias"),
             ("head", 3, "SOFTMAX", "head.weight", "head.bias")])
        self.assertEqual(os.listdir(self.repo / "clf" / "1"),
                         ["model.safetensors"])
        content = safetensors_io.load_file(
            self.repo / "clf" / "1" / "model.safetensors")
        self.assertEqual(set(content.dtypes.values()), {"F32"})
        self.assertEqual(set(content.tensors), set(self.torch_weights))
        for name, array in self.torch_weights.items():
            np.testing.assert_array_equal(content.tensors[name], array)
        # The reference forward over the written model equals a forward over
        # the original arrays.
        w = self.torch_weights
        expected = manual_forward(self.x, [
            (w["net.0.weight"], w["net.0.bias"], "relu"),
            (w["net.2.weight"], w["net.2.bias"], "tanh"),
            (w["head.weight"], w["head.bias"], "softmax")])
        got = reference.forward(reference.load_model(str(self.repo / "clf")),
                                self.x)
        np.testing.assert_allclose(got, expected, rtol=1e-12)

    def test_npy_f16(self):
        code, out = convert(self.torch_npz, self.repo, "--name", "half",
                            "--framework", "pytorch", "--activations",
                            "relu,relu,softmax", "--format", "npy", "--dtype",
                            "f16", "--version", "3")
        self.assertEqual(code, 0, out)
        files = sorted(os.listdir(self.repo / "half" / "3"))
        self.assertEqual(files, sorted(n + ".npy" for n in self.torch_weights))
        for name, array in self.torch_weights.items():
            stored = np.load(self.repo / "half" / "3" / (name + ".npy"))
            self.assertEqual(stored.dtype, np.dtype("<f2"), name)
            np.testing.assert_array_equal(stored, array.astype(np.float16))

    def test_layer_names_option(self):
        code, out = convert(self.torch_npz, self.repo, "--name", "n",
                            "--framework", "pytorch", "--activations",
                            "relu,relu,softmax", "--layer-names", "a,b,c")
        self.assertEqual(code, 0, out)
        self.assertEqual([l.name for l in self.config("n").layers],
                         ["a", "b", "c"])


class KerasLayoutTest(ConvertTestBase):

    def check_keras_model(self, name, version, transform):
        config = self.config(name)
        self.assertEqual(model_config_proto.layout_name(config.weight_layout),
                         "IN_OUT")
        self.assertEqual(config.input.size, 6)
        layers = [(l.name, l.units, model_config_proto.activation_name(
            l.activation), l.weight, l.bias) for l in config.layers]
        self.assertEqual(layers, [
            ("layer1", 12, "LEAKY_RELU", "arr_0", "arr_1"),
            ("layer2", 4, "SOFTMAX", "arr_2", "")])
        self.assertAlmostEqual(config.layers[0].alpha, 0.2, places=6)
        self.assertFalse(config.layers[1].HasField("alpha"))
        model = reference.load_model(str(self.repo / name), version)
        k = [transform(a) for a in self.keras_weights]
        expected = manual_forward(self.x, [(k[0].T, k[1], "leaky_relu:0.2"),
                                           (k[2].T, None, "softmax")])
        np.testing.assert_allclose(reference.forward(model, self.x), expected,
                                   rtol=1e-12)

    def test_npy_f32(self):
        code, out = convert(self.keras_npz, self.repo, "--name", "k",
                            "--framework", "keras", "--activations",
                            "leaky_relu:0.2,softmax", "--format", "npy")
        self.assertEqual(code, 0, out)
        self.assertEqual(sorted(os.listdir(self.repo / "k" / "1")),
                         ["arr_0.npy", "arr_1.npy", "arr_2.npy"])
        stored = np.load(self.repo / "k" / "1" / "arr_0.npy")
        self.assertEqual((stored.dtype, stored.shape), (np.dtype("<f4"),
                                                        (6, 12)))
        self.check_keras_model("k", 1, lambda a: a.astype(np.float32))

    def test_safetensors_bf16_numpy_framework(self):
        code, out = convert(self.keras_npz, self.repo, "--name", "b",
                            "--framework", "numpy", "--activations",
                            "leaky_relu:0.2,softmax", "--dtype", "bf16")
        self.assertEqual(code, 0, out)
        content = safetensors_io.load_file(
            self.repo / "b" / "1" / "model.safetensors")
        self.assertEqual(content.dtypes, {"arr_0": "BF16", "arr_1": "BF16",
                                          "arr_2": "BF16"})
        self.assertEqual(content.metadata["weight_layout"], "IN_OUT")

        def bf16(a):
            return safetensors_io.bf16_bits_to_float32(
                safetensors_io.float32_to_bf16_bits(a.astype(np.float32)))
        np.testing.assert_array_equal(content.tensors["arr_0"],
                                      bf16(self.keras_weights[0]))
        self.check_keras_model("b", 1, bf16)

    def test_second_version_keeps_config(self):
        args = ["--name", "k", "--framework", "keras", "--activations",
                "leaky_relu:0.2,softmax"]
        self.assertEqual(convert(self.keras_npz, self.repo, *args)[0], 0)
        code, out = convert(self.keras_npz, self.repo, *args, "--version", "2")
        self.assertEqual(code, 0, out)
        self.assertEqual(reference.versions(str(self.repo / "k")), [1, 2])
        self.check_keras_model("k", 2, lambda a: a.astype(np.float32))


class ConvertErrorTest(ConvertTestBase):

    def assert_fails(self, args, *fragments, npz=None):
        code, out = convert(npz or self.torch_npz, self.repo, *args)
        self.assertEqual(code, 1, out)
        for fragment in fragments:
            self.assertIn(fragment, out)
        return out

    def base(self, name="m", activations="relu,relu,softmax"):
        return ["--name", name, "--framework", "pytorch", "--activations",
                activations]

    def test_nan_and_inf_are_refused(self):
        bad = dict(self.torch_weights)
        bad["net.2.weight"] = bad["net.2.weight"].copy()
        bad["net.2.weight"][1, 3] = np.nan
        np.savez(self.tmp / "nan.npz", **bad)
        self.assert_fails(self.base(), "tensor 'net.2.weight'", "non-finite",
                          "flat index 19", npz=self.tmp / "nan.npz")
        bad["net.2.weight"][1, 3] = np.inf
        np.savez(self.tmp / "inf.npz", **bad)
        self.assert_fails(self.base(), "'net.2.weight'", "inf",
                          npz=self.tmp / "inf.npz")
        self.assertFalse((self.repo / "m").exists())

    def test_wrong_framework_breaks_the_chain(self):
        out = self.assert_fails(["--name", "m", "--framework", "keras",
                                 "--activations", "relu,relu,softmax"],
                                "net.0", "check --framework")
        self.assertIn("expected", out)

    def test_layers_that_do_not_chain(self):
        bad = dict(self.torch_weights)
        bad["net.2.weight"] = np.ones((8, 15), np.float32)
        np.savez(self.tmp / "chain.npz", **bad)
        self.assert_fails(self.base(), "'net.2.weight' has shape [8, 15]",
                          "input width is 15; expected 16",
                          npz=self.tmp / "chain.npz")

    def test_activation_count_and_names(self):
        self.assert_fails(self.base(activations="relu,softmax"),
                          "2 activations for 3 layers",
                          "net.0.weight [16, 6]")
        self.assert_fails(self.base(activations="relu,swish,softmax"),
                          "'swish' is unknown", "leaky_relu")
        self.assert_fails(self.base(activations="relu:0.5,relu,softmax"),
                          "only leaky_relu and elu take an alpha")

    def test_labels_must_match_output_width(self):
        self.assert_fails(self.base() + ["--labels", "a,b"],
                          "2 labels for 3 output units")

    def test_bf16_needs_safetensors(self):
        self.assert_fails(self.base() + ["--format", "npy", "--dtype", "bf16"],
                          "bf16 needs --format safetensors")

    def test_f16_overflow(self):
        big = dict(self.torch_weights)
        big["head.bias"] = np.array([1e5, 0, 0], np.float32)
        np.savez(self.tmp / "big.npz", **big)
        self.assert_fails(self.base() + ["--dtype", "f16"], "'head.bias'",
                          "float16's range", npz=self.tmp / "big.npz")

    def test_unpairable_tensors(self):
        np.savez(self.tmp / "bn.npz", **{
            "fc.weight": np.ones((2, 3)), "fc.bias": np.ones(2),
            "bn.running_mean": np.ones(2)})
        self.assert_fails(self.base(activations="relu"), "'bn.running_mean'",
                          "no weight matrix before it",
                          npz=self.tmp / "bn.npz")
        np.savez(self.tmp / "conv.npz", **{"conv.weight": np.ones((2, 3, 3))})
        self.assert_fails(self.base(activations="relu"), "'conv.weight'",
                          "3-D tensor", npz=self.tmp / "conv.npz")
        np.savez(self.tmp / "ints.npz", **{"fc.weight": np.ones((2, 3), int)})
        self.assert_fails(self.base(activations="relu"), "dtype int64",
                          npz=self.tmp / "ints.npz")

    def test_existing_version_and_different_config(self):
        self.assertEqual(convert(self.torch_npz, self.repo, *self.base())[0], 0)
        self.assert_fails(self.base(), "already exists", "--force")
        self.assert_fails(self.base(activations="relu,tanh,softmax") +
                          ["--version", "2"], "describes a different model")
        self.assertEqual(reference.versions(str(self.repo / "m")), [1])
        code, out = convert(self.torch_npz, self.repo, *self.base(
            activations="relu,tanh,softmax"), "--force")
        self.assertEqual(code, 0, out)
        self.assertEqual(model_config_proto.activation_name(
            self.config("m").layers[1].activation), "TANH")

    def test_invalid_model_name(self):
        self.assert_fails(self.base(name="../evil"), "--name '../evil'")

    @unittest.skipIf(importlib.util.find_spec("torch") is not None,
                     "torch is installed: the .pt route works")
    def test_pt_without_torch_says_how_to_export(self):
        path = self.tmp / "model.pt"
        path.write_bytes(b"not read")
        self.assert_fails(self.base(), "needs `torch`", "np.savez", npz=path)

    @unittest.skipIf(importlib.util.find_spec("h5py") is not None,
                     "h5py is installed: the .h5 route works")
    def test_h5_without_h5py_says_how_to_export(self):
        path = self.tmp / "model.weights.h5"
        path.write_bytes(b"not read")
        self.assert_fails(["--name", "m", "--framework", "keras",
                           "--activations", "relu"], "needs `h5py`",
                          "get_weights", npz=path)


@unittest.skipIf(importlib.util.find_spec("h5py") is None,
                 "h5py is not installed (Debian: python3-h5py)")
class KerasH5Test(ConvertTestBase):

    def test_keras2_save_weights_layout(self):
        import h5py
        path = self.tmp / "model.h5"
        kernel0, bias0, kernel1 = self.keras_weights
        with h5py.File(path, "w") as f:
            # Keras 2 save_weights: an ordered layer list; 'dense_10' would
            # sort before 'dense_2', so the order must come from the list.
            f.attrs["layer_names"] = [b"dense_2", b"dropout", b"dense_10"]
            g = f.create_group("dense_2")
            g.attrs["weight_names"] = [b"dense_2/kernel:0", b"dense_2/bias:0"]
            g["dense_2/kernel:0"] = kernel0
            g["dense_2/bias:0"] = bias0
            f.create_group("dropout").attrs["weight_names"] = []
            g = f.create_group("dense_10")
            g.attrs["weight_names"] = [b"dense_10/kernel:0"]
            g["dense_10/kernel:0"] = kernel1
        code, out = convert(path, self.repo, "--name", "h", "--framework",
                            "keras", "--activations", "leaky_relu:0.2,softmax")
        self.assertEqual(code, 0, out)
        config = self.config("h")
        self.assertEqual([(l.name, l.weight, l.bias) for l in config.layers],
                         [("dense_2", "dense_2.kernel", "dense_2.bias"),
                          ("dense_10", "dense_10.kernel", "")])

    def test_keras3_weights_h5_layout(self):
        import h5py
        path = self.tmp / "model.weights.h5"
        kernel0, bias0, kernel1 = self.keras_weights
        with h5py.File(path, "w") as f:
            # Keras 3: layers/<name>/vars/<index>; no stored order, so layers
            # sort by name with numbers compared numerically.
            f.create_group("layers/dense_10/vars")["0"] = kernel1
            f.create_group("layers/dropout_1/vars")
            f.create_group("layers/dense_2/vars")["0"] = kernel0
            f["layers/dense_2/vars"]["1"] = bias0
            f.create_group("optimizer/vars")["0"] = np.zeros(1)
        code, out = convert(path, self.repo, "--name", "h", "--framework",
                            "keras", "--activations", "leaky_relu:0.2,softmax")
        self.assertEqual(code, 0, out)
        config = self.config("h")
        self.assertEqual([(l.name, l.weight, l.bias) for l in config.layers],
                         [("dense_2", "dense_2.kernel", "dense_2.bias"),
                          ("dense_10", "dense_10.kernel", "")])
        model = reference.load_model(str(self.repo / "h"))
        expected = manual_forward(self.x, [
            (kernel0.astype(np.float32).T, bias0.astype(np.float32),
             "leaky_relu:0.2"),
            (kernel1.astype(np.float32).T, None, "softmax")])
        np.testing.assert_allclose(reference.forward(model, self.x), expected,
                                   rtol=1e-12)


class PrecisionOptionTest(ConvertTestBase):

    def convert_torch(self, name, *extra):
        return convert(self.torch_npz, self.repo, "--name", name,
                       "--framework", "pytorch", "--activations",
                       "relu,tanh,softmax", *extra)

    def test_default_writes_no_precision_line(self):
        code, out = self.convert_torch("plain")
        self.assertEqual(code, 0, out)
        text = (self.repo / "plain" / "config.pbtxt").read_text()
        self.assertNotIn("precision", text)
        self.assertEqual(self.config("plain").precision, 0)  # FP32

    def test_precision_and_limit_reach_the_config(self):
        code, out = self.convert_torch("q", "--precision", "int8",
                                       "--max-precision-deviation", "0.05")
        self.assertEqual(code, 0, out)
        self.assertIn("precision INT8", out)
        config = self.config("q")
        pb2 = model_config_proto.model_config_pb2()
        self.assertEqual(pb2.Precision.Name(config.precision), "INT8")
        self.assertAlmostEqual(config.max_precision_deviation, 0.05, places=6)
        # Weights are stored as --dtype (f32), unchanged by the precision.
        content = safetensors_io.load_file(
            self.repo / "q" / "1" / "model.safetensors")
        self.assertEqual(set(content.dtypes.values()), {"F32"})
        np.testing.assert_array_equal(content.tensors["head.weight"],
                                      self.torch_weights["head.weight"])
        code, out = self.convert_torch("b", "--precision", "bf16")
        self.assertEqual(code, 0, out)
        self.assertEqual(pb2.Precision.Name(self.config("b").precision),
                         "BF16")

    def test_bad_values_are_refused(self):
        code, out = self.convert_torch("x", "--precision", "fp16")
        self.assertEqual(code, 2, out)
        self.assertIn("invalid choice: 'fp16'", out)
        code, out = self.convert_torch("x", "--max-precision-deviation",
                                       "-1")
        self.assertEqual(code, 1, out)
        self.assertIn("max_precision_deviation is -1.0; expected a finite "
                      "value >= 0", out)
        self.assertFalse((self.repo / "x").exists())


if __name__ == "__main__":
    unittest.main()
