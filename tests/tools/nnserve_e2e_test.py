"""End-to-end: the real `nnserve` binary (NNSERVE_BIN, set by CMake from
$<TARGET_FILE:nnserve>) runs the example models and models written by
tools/convert.py; its outputs must match the NumPy reference forward pass
(tools/reference.py) to 1e-5 relative. Also checks that `nnserve inspect`
and `nnserve run` reject a bad model with a message naming the problem.

Relative error: every element must satisfy |got - ref| <= 1e-5 * |ref| +
1e-7 (the 1e-7 absolute floor covers outputs near zero, where relative
error is meaningless). The reference runs in float64 on the float32 values
nnserve loads (F16/BF16 files widened exactly), so the difference measures
nnserve's float32 arithmetic only.
"""

import os
import pathlib
import subprocess
import sys
import tempfile
import unittest

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import model_repo  # noqa: E402
import reference  # noqa: E402

NNSERVE = os.environ.get("NNSERVE_BIN", "")
RTOL, ATOL = 1e-5, 1e-7


def run(*args, stdin=None):
    proc = subprocess.run([NNSERVE, *map(str, args)], input=stdin,
                          capture_output=True, text=True, timeout=120)
    return proc.returncode, proc.stdout, proc.stderr


@unittest.skipUnless(NNSERVE, "NNSERVE_BIN is not set (CTest sets it to the "
                              "nnserve binary)")
class NnserveRunTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        if not os.access(NNSERVE, os.X_OK):
            raise AssertionError(f"NNSERVE_BIN={NNSERVE} is not an executable;"
                                 f" build the nnserve target first")

    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory()
        self.tmp = pathlib.Path(self._tmp.name)

    def tearDown(self):
        self._tmp.cleanup()

    def run_and_compare(self, model_dir, x, version=0):
        """Runs nnserve on x; returns (outputs, stdout) after comparing."""
        x_path = self.tmp / "x.npy"
        y_path = self.tmp / "y.npy"
        np.save(x_path, x.astype(np.float32))
        args = ["run", model_dir, "--input", x_path, "--output", y_path]
        if version:
            args += ["--version", version]
        code, out, err = run(*args)
        self.assertEqual(code, 0, f"nnserve run failed: {err}")
        got = np.load(y_path)
        ref = reference.forward(reference.load_model(str(model_dir), version),
                                x.astype(np.float32))
        self.assertEqual(got.dtype, np.float32)
        self.assertEqual(got.shape, ref.shape)
        np.testing.assert_allclose(got, ref, rtol=RTOL, atol=ATOL,
                                   err_msg=str(model_dir))
        self.assertEqual(len([l for l in out.splitlines()
                              if l.startswith("row ")]), len(x))
        return got, out

    def test_digits_samples(self):
        x = np.load(ROOT / "models" / "digits" / "sample_input.npy")
        labels = np.load(ROOT / "models" / "digits" / "sample_labels.npy")
        got, out = self.run_and_compare(ROOT / "models" / "digits", x)
        np.testing.assert_array_equal(np.argmax(got, axis=1), labels)
        for i, label in enumerate(labels):
            self.assertRegex(out, rf"row {i}: .* label={label} ")

    def test_digits_csv_on_stdin_matches_npy(self):
        x = np.load(ROOT / "models" / "digits" / "sample_input.npy")[:3]
        csv = "\n".join(",".join(repr(float(v)) for v in row)
                        for row in x) + "\n"
        code, out, err = run("run", ROOT / "models" / "digits", "--output",
                             self.tmp / "csv.npy", stdin=csv)
        self.assertEqual(code, 0, err)
        ref = reference.forward(
            reference.load_model(str(ROOT / "models" / "digits")), x)
        np.testing.assert_allclose(np.load(self.tmp / "csv.npy"), ref,
                                   rtol=RTOL, atol=ATOL)

    def test_mlp784(self):
        x = np.load(ROOT / "models" / "mlp-784" / "sample_input.npy")
        self.run_and_compare(ROOT / "models" / "mlp-784", x)
        batch = np.random.default_rng(3).random((64, 784))
        self.run_and_compare(ROOT / "models" / "mlp-784", batch)

    def convert(self, npz, *args):
        proc = subprocess.run(
            [sys.executable, str(ROOT / "tools" / "convert.py"), npz,
             self.tmp / "repo", *map(str, args)],
            capture_output=True, text=True)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)

    def test_converted_models_every_activation_layout_format_dtype(self):
        rng = np.random.default_rng(11)
        widths = [12, 20, 16, 16, 14, 18, 10, 9, 5]
        activations = ("relu,leaky_relu:0.1,elu:0.7,sigmoid,tanh,gelu,"
                       "identity,softmax")
        # PyTorch layout: [out, in]; Keras/NumPy layout: [in, out].
        torch_state = {}
        keras_list = []
        for i, (fan_in, units) in enumerate(zip(widths[:-1], widths[1:])):
            w = rng.normal(0, 1.5 / np.sqrt(fan_in), (units, fan_in))
            b = rng.normal(0, 0.3, units)
            torch_state[f"l{i}.weight"] = w.astype(np.float32)
            torch_state[f"l{i}.bias"] = b.astype(np.float32)
            keras_list += [w.T, b]
        np.savez(self.tmp / "torch.npz", **torch_state)
        np.savez(self.tmp / "keras.npz", *keras_list)
        x = rng.normal(0, 1.0, (7, widths[0]))
        cases = [
            ("pt-st-f32", "torch.npz", "pytorch", "safetensors", "f32"),
            ("pt-npy-f16", "torch.npz", "pytorch", "npy", "f16"),
            ("keras-npy-f32", "keras.npz", "keras", "npy", "f32"),
            ("np-st-bf16", "keras.npz", "numpy", "safetensors", "bf16"),
            ("keras-st-f16", "keras.npz", "keras", "safetensors", "f16"),
        ]
        outputs = {}
        for name, npz, framework, file_format, dtype in cases:
            with self.subTest(model=name):
                self.convert(self.tmp / npz, "--name", name, "--framework",
                             framework, "--activations", activations,
                             "--format", file_format, "--dtype", dtype)
                outputs[name], _ = self.run_and_compare(
                    self.tmp / "repo" / name, x)
        # Same weights in both layouts and formats give the same outputs.
        np.testing.assert_allclose(outputs["pt-st-f32"],
                                   outputs["keras-npy-f32"], rtol=1e-5,
                                   atol=1e-7)

    def test_inspect_describes_digits(self):
        code, out, err = run("inspect", ROOT / "models" / "digits")
        self.assertEqual(code, 0, err)
        for fragment in ("hidden", "output", "RELU", "SOFTMAX", "2410"):
            self.assertIn(fragment, out)

    def write_bad_model(self, name, weight):
        model = model_repo.ModelDef(
            name=name, input_name="x", input_size=3, output_name="y",
            layers=[model_repo.LayerDef("only", 2, "SOFTMAX", "w", "b")])
        model_dir = self.tmp / "repo" / name
        (model_dir / "1").mkdir(parents=True)
        (model_dir / "config.pbtxt").write_text(model_repo.render_config(model))
        np.save(model_dir / "1" / "w.npy", weight)
        np.save(model_dir / "1" / "b.npy", np.zeros(2, np.float32))
        return model_dir

    def test_bad_models_are_rejected_with_the_reason(self):
        nan = np.ones((2, 3), np.float32)
        nan[1, 2] = np.nan
        model_dir = self.write_bad_model("nan", nan)
        for command in (["inspect", model_dir],
                        ["run", model_dir, "--input", "-"]):
            code, out, err = run(*command, stdin="1,2,3\n")
            self.assertNotEqual(code, 0, command)
            self.assertIn("'w'", err)
        model_dir = self.write_bad_model("shape", np.ones((2, 4), np.float32))
        code, out, err = run("inspect", model_dir)
        self.assertNotEqual(code, 0)
        self.assertIn("[2, 4]", err)
        self.assertIn("[2, 3]", err)

    def test_wrong_input_width_is_rejected(self):
        np.save(self.tmp / "x.npy", np.ones((2, 63), np.float32))
        code, out, err = run("run", ROOT / "models" / "digits", "--input",
                             self.tmp / "x.npy")
        self.assertNotEqual(code, 0)
        self.assertIn("64", err)
        self.assertIn("63", err)


if __name__ == "__main__":
    unittest.main()
