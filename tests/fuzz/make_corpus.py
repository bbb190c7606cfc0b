#!/usr/bin/python3
"""Writes the seed corpora of the fuzz harnesses into tests/fuzz/corpus/.

Run from anywhere: /usr/bin/python3 tests/fuzz/make_corpus.py
Each harness gets a handful of small valid inputs and interesting invalid
ones (every file < 4 kB). The generated files are committed; re-running
rewrites them identically (no randomness). Files whose names start with
"regression-" are findings kept as seeds; this script never touches them.
"""
import json
import os
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def write(harness, name, data):
    directory = os.path.join(ROOT, harness)
    os.makedirs(directory, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    assert len(data) < 4096, (harness, name, len(data))
    with open(os.path.join(directory, name), "wb") as f:
        f.write(data)


# ---- npy ---------------------------------------------------------------
def npy(descr, shape, data, fortran=False, major=1, dict_text=None):
    if dict_text is None:
        shape_text = "(%s)" % (
            "%d," % shape[0] if len(shape) == 1 else ", ".join(map(str, shape)))
        dict_text = "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }" % (
            descr, "True" if fortran else "False", shape_text)
    length_bytes = 2 if major == 1 else 4
    header = dict_text
    while (8 + length_bytes + len(header) + 1) % 64:
        header += " "
    header += "\n"
    prefix = b"\x93NUMPY" + bytes([major, 0])
    prefix += len(header).to_bytes(length_bytes, "little")
    return prefix + header.encode() + data


def f4(*values):
    return struct.pack("<%df" % len(values), *values)


write("npy", "f4_2x3_v1.npy", npy("<f4", (2, 3), f4(1, 2, 3, 4, 5, 6)))
write("npy", "f8_1x2_v2.npy",
      npy("<f8", (1, 2), struct.pack("<2d", 0.25, -1e3), major=2))
write("npy", "f2_3_v3.npy",
      npy("<f2", (3,), struct.pack("<3H", 0x3C00, 0xC000, 0x0001), major=3))
write("npy", "f4_fortran_2x3.npy",
      npy("<f4", (2, 3), f4(1, 4, 2, 5, 3, 6), fortran=True))
write("npy", "f4_3d.npy", npy("<f4", (1, 2, 2), f4(1, 2, 3, 4)))
write("npy", "f4_scalar.npy", npy("<f4", (), f4(7), dict_text=(
    "{'descr': '<f4', 'fortran_order': False, 'shape': (), }")))
write("npy", "f4_empty_0x3.npy", npy("<f4", (0, 3), b""))
write("npy", "f4_nan_inf.npy",
      npy("<f4", (3,), f4(float("nan"), float("inf"), -0.0)))
write("npy", "f8_out_of_f32_range.npy",
      npy("<f8", (1,), struct.pack("<d", 1e300)))
write("npy", "wrapping_shape.npy", npy("<f4", (4294967296, 4294967296), b""))
write("npy", "huge_shape_truncated.npy", npy("<f4", (1 << 30, 1024), f4(1, 2)))
write("npy", "big_endian.npy", npy(">f4", (2,), struct.pack(">2f", 1, 2)))
write("npy", "int_dtype.npy", npy("<i4", (2,), struct.pack("<2i", 1, 2)))
write("npy", "double_quotes.npy", npy("<f4", (1,), f4(3), dict_text=(
    '{"descr": "<f4", "fortran_order": False, "shape": (1,)}')))
write("npy", "bad_header.npy", npy("<f4", (1,), f4(3), dict_text=(
    "{'descr': '<f4', 'fortran_order': False, 'shape': (1L, -2), "
    "'extra': 1}")))
write("npy", "truncated_preamble.npy", b"\x93NUMPY\x01\x00\x40")

# ---- safetensors -------------------------------------------------------
def safetensors(entries, metadata=None, pad=True):
    """entries: list of (name, dtype, shape, raw bytes)."""
    header = {}
    data = b""
    for name, dtype, shape, raw in entries:
        header[name] = {"dtype": dtype, "shape": list(shape),
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    if metadata is not None:
        header["__metadata__"] = metadata
    text = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + data


write("safetensors", "f32_two_tensors.safetensors", safetensors([
    ("fc.bias", "F32", (2,), f4(0.5, -0.5)),
    ("fc.weight", "F32", (2, 3), f4(1, 2, 3, 4, 5, 6))],
    metadata={"format": "pt"}))
write("safetensors", "f64.safetensors",
      safetensors([("w", "F64", (2,), struct.pack("<2d", 1.5, -2.0))]))
write("safetensors", "f16.safetensors",
      safetensors([("w", "F16", (2,), struct.pack("<2H", 0x3C00, 0x7C00))]))
write("safetensors", "bf16.safetensors",
      safetensors([("w", "BF16", (1, 2), struct.pack("<2H", 0x3F80, 0xFFC0))]))
write("safetensors", "empty_tensor.safetensors",
      safetensors([("e", "F32", (0, 4), b""), ("s", "F32", (), f4(1))]))
write("safetensors", "empty_header.safetensors", safetensors([]))
overlap = safetensors([("a", "F32", (1,), f4(1)), ("b", "F32", (1,), f4(2))])
write("safetensors", "overlap.safetensors", overlap.replace(
    b'"data_offsets":[4,8]', b'"data_offsets":[0,4]'))
write("safetensors", "wrong_size.safetensors",
      safetensors([("a", "F32", (3,), f4(1, 2))]))
write("safetensors", "unsupported_dtype.safetensors",
      safetensors([("a", "I8", (2,), b"\x01\x02")]))
write("safetensors", "huge_length.safetensors",
      struct.pack("<Q", 1 << 62) + b"{}")
write("safetensors", "not_json.safetensors",
      struct.pack("<Q", 6) + b'{"a":[')
write("safetensors", "overflow_shape.safetensors", safetensors([
    ("a", "F32", (1 << 62, 1 << 62), b"")]))

# ---- csv ---------------------------------------------------------------
write("csv", "simple.csv", "1,2,3\n4,5,6\n")
write("csv", "dialect.csv",
      "\ufeff# comment\r\n +1, 2.5 ,-3e-2\r\n\n\t.5,-0,3.\r\n  # indented\n7,8,9")
write("csv", "one_value.csv", "42")
write("csv", "subnormal_and_max.csv", "1e-45,1e-40,3.4028234e38,-1e-60\n")
write("csv", "ragged.csv", "1,2,3\n4,5\n")
write("csv", "not_a_number.csv", "1,abc\n")
write("csv", "empty_field.csv", "1,,2\n")
write("csv", "nan_inf.csv", "nan,inf,-infinity\n")
write("csv", "overflow.csv", "1e39,1e400\n")
write("csv", "header.csv", "a,b\n1,2\n")
write("csv", "empty.csv", "")
write("csv", "only_comments.csv", "# x\n\n#y\n")
write("csv", "hex_and_signs.csv", "0x1p3,+-1,++2,+\n")

# ---- model_config ------------------------------------------------------
write("model_config", "digits.pbtxt", """name: "digits"
input { name: "pixels" size: 64 }
output { name: "digit" size: 10 labels: ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"] }
weight_layout: OUT_IN
layers { name: "hidden" units: 32 activation: RELU weight: "fc1.weight" bias: "fc1.bias" }
layers { name: "output" units: 10 activation: SOFTMAX weight: "fc2.weight" bias: "fc2.bias" }
""")
write("model_config", "policy_precision.pbtxt", """# comment
name: "m.v-2"
input { name: "x" size: 3 }
output { name: "y" size: 2 }
weight_layout: IN_OUT
precision: BF16
max_precision_deviation: 0.05
version_policy { specific { versions: [1, 3] } }
layers { name: "a" units: 4 activation: LEAKY_RELU alpha: 0.2 weight: "a.w" }
layers { name: "b" units: 2 activation: ELU weight: "b.w" bias: "b.b" }
""")
write("model_config", "latest_int8.pbtxt", """name: "q"
input { name: "x" size: 2 }
output { name: "y" size: 1 }
precision: INT8
version_policy { latest { num_versions: 2 } }
layers { name: "l" units: 1 activation: SIGMOID weight: "w" }
""")
write("model_config", "all_activations.pbtxt", "name: \"act\"\n"
      "input { name: \"x\" size: 2 }\noutput { name: \"y\" size: 2 }\n" + "".join(
          'layers { name: "l%d" units: 2 activation: %s weight: "w%d" }\n'
          % (i, a, i) for i, a in enumerate(
              ["IDENTITY", "RELU", "TANH", "GELU", "SIGMOID", "SOFTMAX"])))
write("model_config", "unknown_activation.pbtxt",
      'name: "x"\ninput { name: "x" size: 2 }\noutput { name: "y" size: 1 }\n'
      'layers { name: "l" units: 1 activation: SWISH weight: "w" }\n')
write("model_config", "size_mismatch.pbtxt",
      'name: "x"\ninput { name: "x" size: 2 }\noutput { name: "y" size: 3 }\n'
      'layers { name: "l" units: 1 weight: "w" }\n')
write("model_config", "bad_names.pbtxt",
      'name: "../etc"\ninput { name: "x" size: 2 }\noutput { name: "y" size: 1 }\n'
      'layers { name: "l" units: 1 weight: "../w" }\n')
write("model_config", "empty_policy.pbtxt",
      'name: "x"\ninput { name: "x" size: 1 }\noutput { name: "y" size: 1 }\n'
      'version_policy { specific { } }\nlayers { name: "l" units: 1 weight: "w" }\n')
write("model_config", "syntax_error.pbtxt", 'name: "x"\ninput { size: }\n')
write("model_config", "huge_sizes.pbtxt",
      'name: "x"\ninput { name: "x" size: 9223372036854775807 }\n'
      'output { name: "y" size: -1 }\nlayers { name: "l" units: 2147483648 weight: "w" }\n')


# ---- request (nnserve.v1.PredictRequest wire format) -------------------
def varint(n):
    n &= (1 << 64) - 1
    out = b""
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out += bytes([byte | 0x80])
        else:
            return out + bytes([byte])


def field(number, wire_type, payload):
    key = varint(number << 3 | wire_type)
    if wire_type == 0:
        return key + varint(payload)
    return key + varint(len(payload)) + payload


def tensor(shape, values=None, raw=None):
    out = b"".join(field(1, 0, d) for d in shape)
    if values is not None:
        out += field(2, 2, f4(*values))
    if raw is not None:
        out += field(3, 2, raw)
    return out


def request(tensor_bytes, model="fuzz", version=0):
    return field(1, 2, model.encode()) + field(2, 0, version) + field(
        3, 2, tensor_bytes)


write("request", "values_2x4", request(tensor((2, 4), values=range(8))))
write("request", "raw_1x4", request(tensor((1, 4), raw=f4(1, 2, 3, 4)), version=1))
write("request", "one_dim", request(tensor((4,), values=(1, 2, 3, 4))))
write("request", "wrong_features", request(tensor((1, 3), values=(1, 2, 3))))
write("request", "both_fields", request(tensor((1, 4), values=(1, 2, 3, 4),
                                                raw=f4(1, 2, 3, 4))))
write("request", "nan", request(tensor((1, 4), values=(1, float("nan"), 3, 4))))
write("request", "too_many_rows", request(tensor((65, 4), raw=f4(*[0.0] * 260))))
write("request", "zero_rows", request(tensor((0, 4))))
write("request", "negative_dims", request(tensor((-1, -4), values=(1, 2, 3, 4))))
write("request", "huge_dims", request(tensor((1 << 62, 4), raw=f4(1, 2, 3, 4))))
write("request", "rank3", request(tensor((1, 1, 4), values=(1, 2, 3, 4))))
write("request", "raw_short", request(tensor((2, 4), raw=f4(1, 2, 3))))
write("request", "empty", b"")


# ---- rest_json (2-byte little-endian json_size, then the infer body) ----
def rest(body, binary=b""):
    """0xFFFF (all JSON) unless binary tensor data follows the JSON."""
    body = body.encode() if isinstance(body, str) else body
    split = len(body) if binary else 0xFFFF
    return struct.pack("<H", split) + body + binary


def rest_input(name, shape, datatype, data=None, binary_size=None):
    tensor = {"name": name, "shape": shape, "datatype": datatype}
    if data is not None:
        tensor["data"] = data
    if binary_size is not None:
        tensor["parameters"] = {"binary_data_size": binary_size}
    return tensor


def infer(inputs, **extra):
    return json.dumps(dict(inputs=inputs, **extra), separators=(",", ":"))


write("rest_json", "fp32_flat", rest(infer(
    [rest_input("x", [2, 3], "FP32", [1, 2.5, -3, 0.1, 1e-45, 3.4028235e38])],
    id="r1")))
write("rest_json", "fp32_nested", rest(infer(
    [rest_input("x", [2, 3], "FP32", [[1, 2, 3], [4, 5, 6]])])))
write("rest_json", "fp64_flat", rest(infer(
    [rest_input("x", [3], "FP64", [1e300, -0.0, 5e-324])])))
write("rest_json", "fp16_nested", rest(infer(
    [rest_input("x", [1, 2, 2], "FP16", [[[65504, 1e-8], [65520, -0.5]]])])))
write("rest_json", "bf16_flat", rest(infer(
    [rest_input("x", [1, 3], "BF16", [1.00390625, -3e38, 7])])))
write("rest_json", "scalar_and_empty", rest(infer(
    [rest_input("s", [], "FP32", [5]), rest_input("e", [0, 3], "FP32", [])])))
write("rest_json", "int32_no_data", rest(infer(
    [rest_input("x", [2], "INT32", [1, 2])])))
write("rest_json", "unicode_id_outputs", rest(infer(
    [rest_input("x", [1, 2], "FP32", [[0.5, 0.25]])],
    id="\u00e9\U0001F600\\\"\n", parameters={"priority": 1},
    outputs=[{"name": "digit", "parameters": {"classification": 3}},
             {"name": "hidden", "parameters": {"binary_data": True}}])))
write("rest_json", "binary_fp32", rest(infer(
    [rest_input("x", [2], "FP32", binary_size=8)],
    parameters={"binary_data_output": True}), f4(1.5, float("nan"))))
write("rest_json", "binary_mixed", rest(infer(
    [rest_input("a", [1, 2], "FP16", binary_size=4),
     rest_input("b", [2], "FP32", [float(1), float(2)]),
     rest_input("c", [1], "BYTES", binary_size=7)],
    outputs=[{"name": "a", "parameters": {"binary_data": True}}, {"name": "b"}]),
    struct.pack("<2H", 0x3C00, 0x7C00) + struct.pack("<I", 3) + b"abc"))
write("rest_json", "binary_too_short", rest(infer(
    [rest_input("x", [2], "FP32", binary_size=16)]), f4(1, 2)))
write("rest_json", "binary_unclaimed", rest(infer(
    [rest_input("x", [1], "FP32", [1])]), f4(1)))
write("rest_json", "binary_and_data", rest(infer(
    [rest_input("x", [1], "FP32", [1], binary_size=4)]), f4(1)))
write("rest_json", "shape_mismatch", rest(infer(
    [rest_input("x", [2, 2], "FP32", [[1, 2], [3]]),
     rest_input("y", [1, -2], "FP32", [1])])))
write("rest_json", "wrong_types", rest(
    '{"id":7,"inputs":[{"name":"x","shape":[1],"datatype":"FP32",'
    '"data":["1"]}],"outputs":[{"name":"y","parameters":'
    '{"classification":"3","binary_data":1}}]}'))
write("rest_json", "huge_values", rest(
    '{"inputs":[{"name":"x","shape":[3],"datatype":"FP32",'
    '"data":[1e39,-1e300,18446744073709551615]}]}'))
write("rest_json", "truncated", rest('{"inputs":[{"name":"x","shape":[1'))
write("rest_json", "route_infer", "/v2/models/digits/versions/1/infer/")
write("rest_json", "route_load", "/v2/repository/models/m/load")
write("rest_json", "repository_index", '{"ready": true}')
