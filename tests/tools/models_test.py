"""Tests for the committed example models (models/) and the tools that made
them: the digits model's held-out accuracy and reproducibility, mlp-784's
determinism, and that every config parses with the real schema."""

import os
import pathlib
import re
import sys
import tempfile
import unittest

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import make_mlp784  # noqa: E402
import model_config_proto  # noqa: E402
import reference  # noqa: E402
import safetensors_io  # noqa: E402
import train_digits  # noqa: E402

MODELS = ROOT / "models"
DIGITS = MODELS / "digits"
MLP784 = MODELS / "mlp-784"


class DigitsModelTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.x_train, cls.x_test, cls.y_train, cls.y_test = \
            train_digits.load_split()
        cls.model = reference.load_model(str(DIGITS))

    def test_config(self):
        config = model_config_proto.read_config(str(DIGITS / "config.pbtxt"))
        self.assertEqual(config.name, "digits")
        self.assertEqual((config.input.name, config.input.size),
                         ("pixels", 64))
        self.assertEqual(config.output.name, "digit")
        self.assertEqual(list(config.output.labels),
                         [str(d) for d in range(10)])
        self.assertEqual(model_config_proto.layout_name(config.weight_layout),
                         "OUT_IN")
        layers = [(l.name, l.units, model_config_proto.activation_name(
            l.activation), l.weight, l.bias) for l in config.layers]
        self.assertEqual(layers, [
            ("hidden", 32, "RELU", "fc1.weight", "fc1.bias"),
            ("output", 10, "SOFTMAX", "fc2.weight", "fc2.bias")])

    def test_weights_file(self):
        content = safetensors_io.load_file(DIGITS / "1" / "model.safetensors")
        shapes = {n: t.shape for n, t in content.tensors.items()}
        self.assertEqual(shapes, {"fc1.weight": (32, 64), "fc1.bias": (32,),
                                  "fc2.weight": (10, 32), "fc2.bias": (10,)})
        self.assertEqual(set(content.dtypes.values()), {"F32"})
        self.assertEqual(sorted(os.listdir(DIGITS / "1")),
                         ["model.safetensors"])

    def test_held_out_accuracy_matches_readme(self):
        probs = reference.forward(self.model, self.x_test)
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-12)
        accuracy = float(np.mean(np.argmax(probs, axis=1) == self.y_test))
        self.assertGreaterEqual(accuracy, 0.95)
        readme = (DIGITS / "README.md").read_text(encoding="utf-8")
        stated = re.search(r"\*\*([0-9.]+) %\*\* \((\d+) / (\d+)\)", readme)
        self.assertIsNotNone(stated, "README states no accuracy")
        self.assertAlmostEqual(float(stated.group(1)), accuracy * 100,
                               places=2)
        self.assertEqual(int(stated.group(3)), len(self.y_test))

    def test_samples_are_held_out_rows(self):
        x = np.load(DIGITS / "sample_input.npy")
        y = np.load(DIGITS / "sample_labels.npy")
        self.assertEqual((x.dtype, x.shape), (np.float32, (8, 64)))
        self.assertEqual(y.shape, (8,))
        np.testing.assert_array_equal(x, self.x_test[:8].astype(np.float32))
        np.testing.assert_array_equal(y, self.y_test[:8])
        self.assertTrue((x >= 0).all() and (x <= 1).all())

    def test_training_is_reproducible(self):
        # Retrains (about 3 s) into a scratch repository. Weights are compared
        # with a tolerance so that a different BLAS's last bits do not matter;
        # a script that is not deterministic differs by far more.
        with tempfile.TemporaryDirectory() as tmp:
            with open(os.devnull, "w") as quiet:
                stdout, sys.stdout = sys.stdout, quiet
                try:
                    code = train_digits.main(["--repository", tmp])
                finally:
                    sys.stdout = stdout
            self.assertEqual(code, 0)
            again = safetensors_io.load_file(
                os.path.join(tmp, "digits", "1", "model.safetensors"))
            committed = safetensors_io.load_file(
                DIGITS / "1" / "model.safetensors")
            for name, tensor in committed.tensors.items():
                np.testing.assert_allclose(again.tensors[name], tensor,
                                           rtol=0, atol=1e-5, err_msg=name)
            self.assertEqual(
                (pathlib.Path(tmp) / "digits" / "config.pbtxt").read_text(),
                (DIGITS / "config.pbtxt").read_text())


class Mlp784ModelTest(unittest.TestCase):

    def test_committed_bytes_equal_a_fresh_generation(self):
        with tempfile.TemporaryDirectory() as tmp:
            with open(os.devnull, "w") as quiet:
                stdout, sys.stdout = sys.stdout, quiet
                try:
                    code = make_mlp784.main(["--repository", tmp])
                finally:
                    sys.stdout = stdout
            self.assertEqual(code, 0)
            for rel in ("config.pbtxt", "1/model.safetensors",
                        "sample_input.npy"):
                fresh = (pathlib.Path(tmp) / "mlp-784" / rel).read_bytes()
                self.assertEqual(fresh, (MLP784 / rel).read_bytes(), rel)

    def test_architecture_and_scale(self):
        model = reference.load_model(str(MLP784))
        self.assertEqual([(l.weight.shape, l.activation) for l in model.layers],
                         [((512, 784), "RELU"), ((512, 512), "RELU"),
                          ((10, 512), "SOFTMAX")])
        # He init: std sqrt(2 / fan_in) for the ReLU layers.
        for layer, fan_in in zip(model.layers[:2], (784, 512)):
            self.assertAlmostEqual(float(layer.weight.std()),
                                   np.sqrt(2.0 / fan_in), delta=0.002)
        size = (MLP784 / "1" / "model.safetensors").stat().st_size
        params = 784 * 512 + 512 + 512 * 512 + 512 + 512 * 10 + 10
        self.assertGreater(size, params * 4)
        self.assertLess(size, params * 4 + 1024)
        x = np.load(MLP784 / "sample_input.npy")
        self.assertEqual((x.dtype, x.shape), (np.float32, (4, 784)))
        probs = reference.forward(model, x)
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-12)


class RepositoryTest(unittest.TestCase):

    def test_every_model_dir_is_consistent(self):
        names = sorted(p.name for p in MODELS.iterdir() if p.is_dir())
        self.assertIn("digits", names)
        self.assertIn("mlp-784", names)
        for name in names:
            config = model_config_proto.read_config(
                str(MODELS / name / "config.pbtxt"))
            self.assertEqual(config.name, name)
            self.assertEqual(reference.versions(str(MODELS / name)), [1])


if __name__ == "__main__":
    unittest.main()
