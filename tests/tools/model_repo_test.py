"""Tests for tools/model_repo.py (config rendering, validation, writing) and
tools/reference.py (activations, loading, command line)."""

import math
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
import model_repo  # noqa: E402
import reference  # noqa: E402


def two_layer(layout="OUT_IN", labels=()):
    return model_repo.ModelDef(
        name="m", input_name="x", input_size=3, output_name="y",
        weight_layout=layout, labels=list(labels),
        layers=[model_repo.LayerDef("h", 4, "LEAKY_RELU", "w1", "b1",
                                    alpha=0.25),
                model_repo.LayerDef("o", 2, "SOFTMAX", "w2")])


def tensors(layout="OUT_IN"):
    rng = np.random.default_rng(7)
    w1, w2 = rng.normal(size=(4, 3)), rng.normal(size=(2, 4))
    if layout == "IN_OUT":
        w1, w2 = w1.T, w2.T
    return {"w1": w1.astype(np.float32), "b1": np.ones(4, np.float32),
            "w2": w2.astype(np.float32)}


class RenderConfigTest(unittest.TestCase):

    def test_parses_with_the_real_schema(self):
        labels = ['say "hi"', "back\\slash", "naïve ✓"]
        model = two_layer(labels=labels[:2])
        text = model_repo.render_config(model, comments=["generated"])
        self.assertTrue(text.startswith("# generated\n"))
        config = model_config_proto.parse_config(text)
        self.assertEqual(config.name, "m")
        self.assertEqual(list(config.output.labels), labels[:2])
        self.assertEqual(config.output.size, 2)
        self.assertEqual(config.layers[0].alpha, 0.25)
        self.assertFalse(config.layers[1].HasField("alpha"))
        self.assertEqual(config.layers[1].bias, "")
        model.labels = [labels[2], "x"]
        config = model_config_proto.parse_config(
            model_repo.render_config(model))
        self.assertEqual(config.output.labels[0], labels[2])

    def test_unknown_fields_are_errors_in_the_parser(self):
        with self.assertRaisesRegex(ValueError, r"cfg.pbtxt.*SWISH"):
            model_config_proto.parse_config(
                'name: "m" layers { activation: SWISH }', "cfg.pbtxt")


class ValidateTest(unittest.TestCase):

    def assert_invalid(self, model, named, *fragments):
        with self.assertRaises(ValueError) as ctx:
            model_repo.validate(model, named)
        for fragment in fragments:
            self.assertIn(fragment, str(ctx.exception))

    def test_valid_in_both_layouts(self):
        model_repo.validate(two_layer(), tensors())
        model_repo.validate(two_layer("IN_OUT"), tensors("IN_OUT"))

    def test_shape_mismatch_names_layer_tensor_and_expectation(self):
        self.assert_invalid(two_layer("IN_OUT"), tensors("OUT_IN"),
                            "layer 'h'", "'w1' has shape [4, 3]",
                            "expected [3, 4]", "IN_OUT: [in, units]")
        bad = tensors()
        bad["w2"] = np.ones((2, 5), np.float32)
        self.assert_invalid(two_layer(), bad, "'w2' has shape [2, 5]",
                            "expected [2, 4]", "in = 4 from layer 'h'")

    def test_missing_extra_and_non_finite(self):
        t = tensors()
        del t["b1"]
        self.assert_invalid(two_layer(), t, "'b1' is missing")
        t = tensors()
        t["stray"] = np.ones(1)
        self.assert_invalid(two_layer(), t, "['stray']", "not referenced")
        t = tensors()
        t["w2"][1, 1] = np.inf
        self.assert_invalid(two_layer(), t, "'w2'", "flat index 5", "inf")

    def test_names_labels_alpha(self):
        model = two_layer(labels=["a", "b", "c"])
        self.assert_invalid(model, tensors(), "3 labels for 2 output units")
        model = two_layer()
        model.name = "-bad"
        self.assert_invalid(model, tensors(), "model name '-bad'")
        model = two_layer()
        model.layers[1].weight = "../w2"
        self.assert_invalid(model, tensors(), "tensor name '../w2'")
        model = two_layer()
        model.layers[1].alpha = 0.5
        self.assert_invalid(model, tensors(), "alpha is only allowed")
        model = two_layer()
        model.layers[1].name = "h"
        self.assert_invalid(model, tensors(), "'h' is empty or repeated")


class WriteModelTest(unittest.TestCase):

    def test_switching_format_leaves_no_stale_files(self):
        with tempfile.TemporaryDirectory() as repo:
            model_repo.write_model(repo, two_layer(), tensors(),
                                   file_format="npy")
            self.assertEqual(sorted(os.listdir(os.path.join(repo, "m", "1"))),
                             ["b1.npy", "w1.npy", "w2.npy"])
            model_repo.write_model(repo, two_layer(), tensors())
            self.assertEqual(os.listdir(os.path.join(repo, "m", "1")),
                             ["model.safetensors"])
            self.assertEqual(sorted(os.listdir(os.path.join(repo, "m"))),
                             ["1", "config.pbtxt"])

    def test_invalid_model_writes_nothing(self):
        with tempfile.TemporaryDirectory() as repo:
            bad = tensors()
            bad["w1"][0, 0] = np.nan
            with self.assertRaises(ValueError):
                model_repo.write_model(repo, two_layer(), bad)
            self.assertEqual(os.listdir(repo), [])


class ReferenceTest(unittest.TestCase):

    def test_activations_at_known_points(self):
        x = np.array([[-2.0, 0.0, 1.0]])
        act = reference.activate
        np.testing.assert_allclose(act("RELU", x), [[0, 0, 1]])
        np.testing.assert_allclose(act("LEAKY_RELU", x, 0.1), [[-0.2, 0, 1]])
        np.testing.assert_allclose(act("ELU", x, 1.0),
                                   [[math.exp(-2) - 1, 0, 1]], rtol=1e-15)
        np.testing.assert_allclose(act("SIGMOID", x),
                                   [[1 / (1 + math.exp(2)), 0.5,
                                     1 / (1 + math.exp(-1))]], rtol=1e-15)
        # GELU(1) = Phi(1) = 0.8413447460685429.
        np.testing.assert_allclose(act("GELU", x)[0, 2], 0.8413447460685429,
                                   rtol=1e-15)
        e = np.exp([-2.0, 0.0, 1.0])
        np.testing.assert_allclose(act("SOFTMAX", x), [e / e.sum()],
                                   rtol=1e-15)

    def test_layouts_and_dtypes_give_the_same_forward(self):
        x = np.random.default_rng(1).normal(size=(5, 3))
        with tempfile.TemporaryDirectory() as repo:
            model_repo.write_model(repo, two_layer(), tensors(), version=1)
            out_in = reference.forward(reference.load_model(
                os.path.join(repo, "m"), 1), x)
            model_repo.write_model(repo, two_layer("IN_OUT"),
                                   tensors("IN_OUT"), version=2)
            in_out = reference.forward(reference.load_model(
                os.path.join(repo, "m")), x)  # 0 = highest = 2.
            np.testing.assert_allclose(in_out, out_in, rtol=1e-15)
            w = tensors()
            h = x @ w["w1"].T.astype(np.float64) + 1.0
            h = np.where(h > 0, h, 0.25 * h)
            z = h @ w["w2"].T.astype(np.float64)
            e = np.exp(z - z.max(axis=1, keepdims=True))
            np.testing.assert_allclose(out_in, e / e.sum(1, keepdims=True),
                                       rtol=1e-12)

    def test_command_line(self):
        with tempfile.TemporaryDirectory() as tmp:
            out_path = os.path.join(tmp, "y.npy")
            proc = subprocess.run(
                [sys.executable, str(ROOT / "tools" / "reference.py"),
                 str(ROOT / "models" / "digits"), "--input",
                 str(ROOT / "models" / "digits" / "sample_input.npy"),
                 "--output", out_path], capture_output=True, text=True)
            self.assertEqual(proc.returncode, 0, proc.stderr)
            y = np.load(out_path)
        labels = np.load(ROOT / "models" / "digits" / "sample_labels.npy")
        self.assertEqual((y.dtype, y.shape), (np.float32, (8, 10)))
        np.testing.assert_array_equal(y.argmax(axis=1), labels)
        self.assertIn("row 7: ", proc.stdout)
        self.assertIn(f"-> {labels[7]}", proc.stdout)


if __name__ == "__main__":
    unittest.main()
