"""Tests for tools/safetensors_io.py: layout, round trips, BF16/F16, errors."""

import json
import os
import pathlib
import struct
import sys
import tempfile
import unittest

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tools"))
import safetensors_io as st  # noqa: E402


def split(data: bytes):
    """(header dict, data region) of safetensors bytes, parsed by hand."""
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + n]), data[8 + n:], n


def build(header: dict, body: bytes) -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + body


class LayoutTest(unittest.TestCase):

    def test_header_is_padded_sorted_and_offsets_follow_name_order(self):
        tensors = {"b": np.arange(3, dtype=np.float32),
                   "a": np.ones((2, 2), dtype=np.float64)}
        data = st.serialize(tensors, metadata={"k": "v"})
        header, body, n = split(data)
        self.assertEqual(n % 8, 0)
        self.assertTrue(data[8:8 + n].decode().endswith(("}", " ")))
        self.assertEqual(list(header), ["__metadata__", "a", "b"])
        self.assertEqual(header["__metadata__"], {"k": "v"})
        self.assertEqual(header["a"], {"dtype": "F64", "shape": [2, 2],
                                       "data_offsets": [0, 32]})
        self.assertEqual(header["b"], {"dtype": "F32", "shape": [3],
                                       "data_offsets": [32, 44]})
        self.assertEqual(len(body), 44)
        self.assertEqual(body[32:44], np.arange(3, dtype="<f4").tobytes())

    def test_same_tensors_give_same_bytes(self):
        rng = np.random.default_rng(5)
        t = {"w": rng.normal(size=(4, 5)).astype(np.float32),
             "b": rng.normal(size=4).astype(np.float32)}
        self.assertEqual(st.serialize(t), st.serialize(dict(reversed(
            list(t.items())))))

    def test_reads_a_file_written_by_hand_in_another_order(self):
        w = np.array([[1.5, -2.0], [3.25, 4.0]], dtype="<f4")
        b = np.array([0.5, -0.5], dtype="<f2")
        header = {"w": {"dtype": "F32", "shape": [2, 2],
                        "data_offsets": [4, 20]},
                  "b": {"dtype": "F16", "shape": [2], "data_offsets": [0, 4]},
                  "__metadata__": {"format": "pt"}}
        content = st.deserialize(build(header, b.tobytes() + w.tobytes()))
        np.testing.assert_array_equal(content.tensors["w"], w)
        np.testing.assert_array_equal(content.tensors["b"], b)
        self.assertEqual(content.dtypes, {"w": "F32", "b": "F16"})
        self.assertEqual(content.metadata, {"format": "pt"})


class RoundTripTest(unittest.TestCase):

    def test_every_dtype_and_odd_shapes(self):
        rng = np.random.default_rng(0)
        tensors = {
            "f64": rng.normal(size=(3, 2)),
            "f32": rng.normal(size=(2, 3, 4)).astype(np.float32),
            "f16": rng.normal(size=(5,)).astype(np.float16),
            "i64": np.arange(-3, 3, dtype=np.int64),
            "i8": np.array([-128, 0, 127], dtype=np.int8),
            "u8": np.arange(4, dtype=np.uint8),
            "flag": np.array([True, False]),
            "scalar": np.float32(2.5),
            "empty": np.zeros((0, 3), dtype=np.float32),
        }
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "m.safetensors")
            st.save_file(path, tensors, metadata={"producer": "test"})
            content = st.load_file(path)
        self.assertEqual(set(content.tensors), set(tensors))
        for name, array in tensors.items():
            got = content.tensors[name]
            self.assertEqual(got.shape, np.shape(array), name)
            self.assertEqual(got.dtype, np.asarray(array).dtype, name)
            np.testing.assert_array_equal(got, array, name)
        self.assertEqual(content.dtypes["f16"], "F16")
        self.assertEqual(content.dtypes["flag"], "BOOL")
        self.assertEqual(content.metadata, {"producer": "test"})

    def test_f16_and_bf16_requested_on_write(self):
        values = np.array([[1.0, -0.3333333, 1e-3], [250.7, 3.0e38, -0.0]],
                          dtype=np.float32)
        data = st.serialize({"h": values[:, :1], "b": values},
                            dtypes={"h": "F16", "b": "BF16"})
        header, body, _ = split(data)
        self.assertEqual(header["b"]["dtype"], "BF16")
        self.assertEqual(header["b"]["data_offsets"], [0, 12])
        content = st.deserialize(data)
        self.assertEqual(content.dtypes, {"h": "F16", "b": "BF16"})
        np.testing.assert_array_equal(content.tensors["h"],
                                      values[:, :1].astype(np.float16))
        got = content.tensors["b"]
        self.assertEqual(got.dtype, np.float32)
        # BF16 keeps 8 significant bits: unit roundoff 2^-8.
        np.testing.assert_allclose(got, values, rtol=2.0 ** -8)
        self.assertFalse(np.array_equal(got, values))  # It did round.


class Bf16Test(unittest.TestCase):

    def bits(self, *values):
        return list(st.float32_to_bf16_bits(np.array(values, np.float32)))

    def test_exact_values(self):
        self.assertEqual(self.bits(1.0, -2.0, 0.0, 0.5),
                         [0x3F80, 0xC000, 0x0000, 0x3F00])

    def test_round_to_nearest_even(self):
        # 1 + 2^-8 is halfway between 0x3F80 and 0x3F81: ties go to even.
        # 1 + 3 * 2^-8 is halfway between 0x3F81 and 0x3F82: to even again.
        # 1 + 2^-8 + 2^-20 is just above halfway: rounds up.
        self.assertEqual(self.bits(1 + 2 ** -8, 1 + 3 * 2 ** -8,
                                   1 + 2 ** -8 + 2 ** -20),
                         [0x3F80, 0x3F82, 0x3F81])

    def test_specials(self):
        out = st.bf16_bits_to_float32(st.float32_to_bf16_bits(
            np.array([np.inf, -np.inf, np.nan, 3.4028235e38], np.float32)))
        self.assertEqual(out[0], np.inf)
        self.assertEqual(out[1], -np.inf)
        self.assertTrue(np.isnan(out[2]))
        self.assertEqual(out[3], np.inf)  # Beyond bf16's largest finite.

    def test_widening_is_exact(self):
        bits = np.arange(0, 0x7F80, 97, dtype=np.uint16)
        again = st.float32_to_bf16_bits(st.bf16_bits_to_float32(bits))
        np.testing.assert_array_equal(again, bits)


class ReaderErrorTest(unittest.TestCase):

    def good(self):
        return st.serialize({"w": np.zeros((2, 2), np.float32),
                             "b": np.zeros(2, np.float32)})

    def assert_error(self, data, *patterns):
        with self.assertRaises(ValueError) as ctx:
            st.deserialize(data, "models/x/1/model.safetensors")
        message = str(ctx.exception)
        self.assertIn("models/x/1/model.safetensors", message)
        for pattern in patterns:
            self.assertRegex(message, pattern)

    def test_truncated(self):
        self.assert_error(b"\x10\x00", r"2 bytes; expected at least 8")
        data = self.good()
        self.assert_error(data[:-1], r"tensor 'w'.*outside")

    def test_header_length_too_large(self):
        self.assert_error(struct.pack("<Q", 1 << 40) + b"{}",
                          r"header length is \d+ bytes; expected at most")

    def test_not_json(self):
        self.assert_error(struct.pack("<Q", 4) + b"{x: ", r"not valid .*JSON")
        self.assert_error(build([1, 2], b""), r"expected a JSON object")

    def test_unknown_dtype(self):
        header = {"w": {"dtype": "F8", "shape": [1], "data_offsets": [0, 1]}}
        self.assert_error(build(header, b"\0"), r"tensor 'w'.*\"F8\".*BF16")

    def test_size_mismatch(self):
        header = {"w": {"dtype": "F32", "shape": [2, 3],
                        "data_offsets": [0, 20]}}
        self.assert_error(build(header, bytes(20)),
                          r"tensor 'w'.*20 bytes; expected 24")

    def test_bad_shape_and_missing_key(self):
        header = {"w": {"dtype": "F32", "shape": [-1],
                        "data_offsets": [0, 4]}}
        self.assert_error(build(header, bytes(4)), r"'w': shape.*non-negative")
        header = {"w": {"dtype": "F32", "shape": [1]}}
        self.assert_error(build(header, bytes(4)), r"'w'.*data_offsets")

    def test_hole_and_overlap(self):
        header = {"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                  "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}}
        self.assert_error(build(header, bytes(12)), r"'b'.*hole of 4 bytes")
        header["b"]["data_offsets"] = [2, 6]
        self.assert_error(build(header, bytes(6)), r"'b'.*overlaps")

    def test_trailing_bytes(self):
        self.assert_error(self.good() + b"\0" * 4,
                          r"cover 24 bytes of the 28-byte data region")

    def test_bad_metadata(self):
        header = {"__metadata__": {"n": 1}}
        self.assert_error(build(header, b""), r"__metadata__.*string values")


class WriterErrorTest(unittest.TestCase):

    def test_refuses_float_as_int_and_unknown_dtypes(self):
        with self.assertRaisesRegex(ValueError, r"'w'.*float.*as I32"):
            st.serialize({"w": np.ones(2)}, dtypes={"w": "I32"})
        with self.assertRaisesRegex(ValueError, r"'w'.*unknown.*'F8'"):
            st.serialize({"w": np.ones(2)}, dtypes={"w": "F8"})
        with self.assertRaisesRegex(ValueError, r"not being written.*'x'"):
            st.serialize({"w": np.ones(2)}, dtypes={"x": "F16"})

    def test_refuses_non_string_metadata_and_reserved_name(self):
        with self.assertRaisesRegex(ValueError, r"metadata entry 'n'"):
            st.serialize({}, metadata={"n": 3})
        with self.assertRaisesRegex(ValueError, r"__metadata__"):
            st.serialize({"__metadata__": np.ones(1)})


if __name__ == "__main__":
    unittest.main()
