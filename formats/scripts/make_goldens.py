#!/usr/bin/env python3
"""Golden vectors for seldon-formats' quant blocks, produced by ggml itself.

Run with the reference venv (scripts/python-env.sh):

    VENV_PY=$(scripts/python-env.sh | tail -n1)
    "$VENV_PY" formats/scripts/make_goldens.py [--out DIR]

ggml is called through ctypes on the libggml-base.so that llama-cpp-python built
(llama_cpp/lib/), so the outputs are ggml's own bytes, not a re-implementation.
gguf-py is only a cross-check recorded in the manifest. The layout of the
output is the "golden-vector contract" described in formats/tests/golden/README.md.
Everything is deterministic: same versions in, same sha256s out.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import hashlib
import importlib.metadata
import importlib.util
import json
import math
import pathlib
import sys

import numpy as np

N = 4096  # test-quantize-fns' test_size = 32 * 128
RANDOM_BLOCKS = 64
# F32/F16/BF16 have block size 1; "64 blocks" of them would be too few values
# to exercise the conversions, so they get 64 * 32 values instead.
RANDOM_PLAIN_VALUES = 64 * 32
RANDOM_SEED = 0x5E1D0_601D

EXPECTED_VERSIONS = {"llama_cpp_python": "0.3.36", "gguf": "0.19.0"}

# test-quantize-fns.cpp's MAX_QUANTIZATION_TOTAL_* limits (vendored llama.cpp of
# llama-cpp-python 0.3.36). None where that test skips the type: it needs both a
# CPU from_float and a base to_float, which F32, Q8_1 and Q8_K lack.
MAX_TOTAL_ERROR = 0.002
MAX_TOTAL_ERROR_TERNARY = 0.01
MAX_TOTAL_ERROR_2BITS = 0.0075
MAX_TOTAL_ERROR_3BITS = 0.0040


class TypeSpec:
    """What the script expects ggml to report for one type, and where its scales live."""

    def __init__(self, name, ggml_id, traits_name, block_size, type_size,
                 f16_fields=(), f32_fields=(), max_total_error=MAX_TOTAL_ERROR):
        self.name = name
        self.ggml_id = ggml_id
        self.traits_name = traits_name
        self.block_size = block_size
        self.type_size = type_size
        # Byte offsets of the scale fields (d, dmin, m, s) inside one block,
        # from ggml-common.h; random.bin overwrites them with finite values.
        self.f16_fields = f16_fields
        self.f32_fields = f32_fields
        self.max_total_error = max_total_error


# enum ggml_type values and block layouts from the vendored ggml.h / ggml-common.h.
TYPES = [
    TypeSpec("F32", 0, "f32", 1, 4, max_total_error=None),
    TypeSpec("F16", 1, "f16", 1, 2),
    TypeSpec("BF16", 30, "bf16", 1, 2),
    TypeSpec("Q4_0", 2, "q4_0", 32, 18, f16_fields=(0,)),
    TypeSpec("Q4_1", 3, "q4_1", 32, 20, f16_fields=(0, 2)),
    TypeSpec("Q5_0", 6, "q5_0", 32, 22, f16_fields=(0,)),
    TypeSpec("Q5_1", 7, "q5_1", 32, 24, f16_fields=(0, 2)),
    TypeSpec("Q8_0", 8, "q8_0", 32, 34, f16_fields=(0,)),
    TypeSpec("Q8_1", 9, "q8_1", 32, 36, f16_fields=(0, 2), max_total_error=None),
    TypeSpec("Q2_K", 10, "q2_K", 256, 84, f16_fields=(80, 82),
             max_total_error=MAX_TOTAL_ERROR_2BITS),
    TypeSpec("Q3_K", 11, "q3_K", 256, 110, f16_fields=(108,),
             max_total_error=MAX_TOTAL_ERROR_3BITS),
    TypeSpec("Q4_K", 12, "q4_K", 256, 144, f16_fields=(0, 2)),
    TypeSpec("Q5_K", 13, "q5_K", 256, 176, f16_fields=(0, 2)),
    TypeSpec("Q6_K", 14, "q6_K", 256, 210, f16_fields=(208,)),
    TypeSpec("Q8_K", 15, "q8_K", 256, 292, f32_fields=(0,), max_total_error=None),
    TypeSpec("TQ1_0", 34, "tq1_0", 256, 54, f16_fields=(52,),
             max_total_error=MAX_TOTAL_ERROR_TERNARY),
    TypeSpec("TQ2_0", 35, "tq2_0", 256, 66, f16_fields=(64,),
             max_total_error=MAX_TOTAL_ERROR_TERNARY),
]

FloatPtr = ctypes.POINTER(ctypes.c_float)
# typedef void (*ggml_to_float_t)(const void * x, float * y, int64_t k);
ToFloat = ctypes.CFUNCTYPE(None, ctypes.c_void_p, FloatPtr, ctypes.c_int64)
# typedef void (*ggml_from_float_t)(const float * x, void * y, int64_t k);
FromFloat = ctypes.CFUNCTYPE(None, FloatPtr, ctypes.c_void_p, ctypes.c_int64)


class GgmlTypeTraits(ctypes.Structure):
    """struct ggml_type_traits from the vendored ggml.h, field for field."""

    _fields_ = [
        ("type_name", ctypes.c_char_p),
        ("blck_size", ctypes.c_int64),
        ("blck_size_interleave", ctypes.c_int64),
        ("type_size", ctypes.c_size_t),
        ("is_quantized", ctypes.c_bool),
        ("to_float", ctypes.c_void_p),
        ("from_float_ref", ctypes.c_void_p),
    ]


class Ggml:
    """The few libggml-base entry points the goldens need."""

    def __init__(self, lib_path: pathlib.Path):
        lib = ctypes.CDLL(str(lib_path))
        lib.ggml_get_type_traits.restype = ctypes.POINTER(GgmlTypeTraits)
        lib.ggml_get_type_traits.argtypes = [ctypes.c_int]
        lib.ggml_blck_size.restype = ctypes.c_int64
        lib.ggml_blck_size.argtypes = [ctypes.c_int]
        lib.ggml_type_size.restype = ctypes.c_size_t
        lib.ggml_type_size.argtypes = [ctypes.c_int]
        lib.ggml_quantize_requires_imatrix.restype = ctypes.c_bool
        lib.ggml_quantize_requires_imatrix.argtypes = [ctypes.c_int]
        lib.ggml_quantize_chunk.restype = ctypes.c_size_t
        lib.ggml_quantize_chunk.argtypes = [
            ctypes.c_int, FloatPtr, ctypes.c_void_p,
            ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, FloatPtr,
        ]
        # Q8_K's type traits carry neither function (the CPU backend owns
        # them), but ggml-base exports both row functions by name.
        lib.quantize_row_q8_K_ref.restype = None
        lib.quantize_row_q8_K_ref.argtypes = [FloatPtr, ctypes.c_void_p, ctypes.c_int64]
        lib.dequantize_row_q8_K.restype = None
        lib.dequantize_row_q8_K.argtypes = [ctypes.c_void_p, FloatPtr, ctypes.c_int64]
        self.lib = lib

    def traits(self, spec: TypeSpec) -> GgmlTypeTraits:
        """Reads the type traits and fails loudly if the struct layout is off."""
        t = self.lib.ggml_get_type_traits(spec.ggml_id).contents
        got = (t.type_name.decode() if t.type_name else None, t.blck_size, t.type_size)
        want = (spec.traits_name, spec.block_size, spec.type_size)
        if got != want:
            sys.exit(f"{spec.name}: ggml type traits read back {got}, expected {want}; "
                     "ggml_type_traits layout or enum values differ from this script")
        sizes = (self.lib.ggml_blck_size(spec.ggml_id), self.lib.ggml_type_size(spec.ggml_id))
        if sizes != (spec.block_size, spec.type_size):
            sys.exit(f"{spec.name}: ggml_blck_size/ggml_type_size = {sizes}")
        if self.lib.ggml_quantize_requires_imatrix(spec.ggml_id):
            sys.exit(f"{spec.name}: ggml says it needs an imatrix; goldens use none")
        return t

    def quantize(self, spec: TypeSpec, traits: GgmlTypeTraits, x: np.ndarray):
        """ggml's quantization of x; returns (bytes, name of the ggml function used)."""
        nbytes = len(x) // spec.block_size * spec.type_size
        dst = ctypes.create_string_buffer(nbytes)
        src = x.ctypes.data_as(FloatPtr)
        if spec.name == "Q8_1":
            FromFloat(traits.from_float_ref)(src, dst, len(x))
            used = "type_traits.from_float_ref (quantize_row_q8_1_ref)"
        elif spec.name == "Q8_K":
            self.lib.quantize_row_q8_K_ref(src, dst, len(x))
            used = "quantize_row_q8_K_ref"
        else:
            # One row of N: with no imatrix every quantizer works block by block,
            # so the row split does not change the bytes.
            written = self.lib.ggml_quantize_chunk(spec.ggml_id, src, dst, 0, 1, len(x), None)
            if written != nbytes:
                sys.exit(f"{spec.name}: ggml_quantize_chunk wrote {written} bytes, "
                         f"expected {nbytes}")
            used = "ggml_quantize_chunk(imatrix=NULL)"
        return dst.raw, used

    def to_float(self, spec: TypeSpec, traits: GgmlTypeTraits, data: bytes):
        """ggml's dequantization; returns (f32 array or None, name of what was used)."""
        n = len(data) // spec.type_size * spec.block_size
        out = np.zeros(n, dtype=np.float32)
        src = ctypes.create_string_buffer(data, len(data))
        dst = out.ctypes.data_as(FloatPtr)
        if spec.name == "F32":
            # ggml has no to_float for F32 (the data already is f32).
            return np.frombuffer(data, dtype="<f4").copy(), "identity (F32 has no to_float)"
        if spec.name == "Q8_K":
            self.lib.dequantize_row_q8_K(src, dst, n)
            return out, "dequantize_row_q8_K"
        if not traits.to_float:
            return None, None
        ToFloat(traits.to_float)(src, dst, n)
        return out, "type_traits.to_float"


def find_libggml_base() -> pathlib.Path:
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("llama_cpp is not installed here: run with the venv from scripts/python-env.sh")
    lib = pathlib.Path(list(spec.submodule_search_locations)[0]) / "lib" / "libggml-base.so"
    if not lib.is_file():
        sys.exit(f"{lib} not found")
    return lib


def generate_data(n: int) -> np.ndarray:
    """test-quantize-fns' generate_data(0.0, n, dst), reproduced to the bit.

    The C is `dst[i] = 0.1 + 2*cosf(i + offset)`: cosf of a float, doubled in
    float (exact), added to the double 0.1, rounded once to float. cosf is
    called from the C library so its last bit is the one ggml's test sees.
    """
    libm = ctypes.CDLL(ctypes.util.find_library("m"))
    libm.cosf.restype = ctypes.c_float
    libm.cosf.argtypes = [ctypes.c_float]
    out = np.empty(n, dtype=np.float32)
    for i in range(n):
        c = libm.cosf(float(np.float32(i)))  # exact f32 value as a Python float
        out[i] = np.float32(0.1 + float(np.float32(2.0) * np.float32(c)))
    return out


def ggml_array_rmse(a: np.ndarray, b: np.ndarray) -> float:
    """test-quantize-fns' array_rmse, operation for operation.

    Note ggml's definition: sqrtf(sum of squares) / n, not sqrt(sum / n). The
    difference is taken in float, squared and summed in double in index order,
    then the sum is rounded to float for sqrtf and divided by (float) n.
    """
    total = 0.0
    for d in (a.astype(np.float32) - b.astype(np.float32)).tolist():
        total += d * d
    return float(np.float32(math.sqrt(float(np.float32(total)))) / np.float32(len(a)))


def random_bytes(spec: TypeSpec, rng: np.random.Generator) -> bytes:
    """64 random blocks whose scale fields are finite, so outputs stay finite."""
    if spec.block_size == 1:
        bits = {"F32": (np.uint32, 23, 0xFF), "F16": (np.uint16, 10, 0x1F),
                "BF16": (np.uint16, 7, 0xFF)}
        dtype, shift, emax = bits[spec.name]
        v = rng.integers(0, np.iinfo(dtype).max, size=RANDOM_PLAIN_VALUES,
                         dtype=dtype, endpoint=True)
        # An all-ones exponent is Inf/NaN: drop its lowest bit, keeping the sign
        # and mantissa, so every class of finite value (subnormals too) survives.
        inf_nan = ((v >> shift) & emax) == emax
        v[inf_nan] &= dtype(~(1 << shift) & np.iinfo(dtype).max)
        return v.astype(np.dtype(dtype).newbyteorder("<")).tobytes()
    blocks = rng.integers(0, 255, size=(RANDOM_BLOCKS, spec.type_size),
                          dtype=np.uint8, endpoint=True)
    for off in spec.f16_fields:
        d = rng.uniform(-2.0, 2.0, size=RANDOM_BLOCKS).astype("<f2")
        blocks[:, off:off + 2] = d.view(np.uint8).reshape(RANDOM_BLOCKS, 2)
    for off in spec.f32_fields:
        d = rng.uniform(-2.0, 2.0, size=RANDOM_BLOCKS).astype("<f4")
        blocks[:, off:off + 4] = d.view(np.uint8).reshape(RANDOM_BLOCKS, 4)
    return blocks.tobytes()


def gguf_py_check(spec: TypeSpec, x: np.ndarray, quant: bytes,
                  dequants: list[tuple[bytes, np.ndarray]]):
    """Whether gguf-py reproduces ggml's bytes; None where it lacks the function."""
    from gguf import GGMLQuantizationType, quants

    qtype = GGMLQuantizationType[spec.name]
    try:
        q_same = np.asarray(quants.quantize(x, qtype)).tobytes() == quant
    except NotImplementedError:
        q_same = None
    if not dequants:
        return q_same, None
    try:
        dq_same = all(
            np.asarray(quants.dequantize(np.frombuffer(raw, dtype=np.uint8), qtype),
                       dtype=np.float32).tobytes() == want.tobytes()
            for raw, want in dequants
        )
    except NotImplementedError:
        dq_same = None
    return q_same, dq_same


def write(path: pathlib.Path, data: bytes, files: dict) -> None:
    path.write_bytes(data)
    files[path.name] = hashlib.sha256(data).hexdigest()


def main() -> None:
    root = pathlib.Path(__file__).resolve().parents[1]
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=pathlib.Path, default=root / "tests" / "golden")
    args = parser.parse_args()

    versions = {
        "llama_cpp_python": importlib.metadata.version("llama_cpp_python"),
        "gguf": importlib.metadata.version("gguf"),
    }
    if versions != EXPECTED_VERSIONS:
        sys.exit(f"versions {versions} differ from the pinned {EXPECTED_VERSIONS}: "
                 "re-run scripts/python-env.sh")

    ggml = Ggml(find_libggml_base())
    x = generate_data(N)
    x_bytes = x.astype("<f4").tobytes()

    manifest_types = {}
    for spec in TYPES:
        traits = ggml.traits(spec)
        out = args.out / spec.name
        out.mkdir(parents=True, exist_ok=True)
        for stale in ("dequant.f32", "random.bin", "random_dequant.f32"):
            (out / stale).unlink(missing_ok=True)
        files = {}
        write(out / "input.f32", x_bytes, files)
        quant, quantizer = ggml.quantize(spec, traits, x)
        write(out / "quant.bin", quant, files)

        entry = {
            "ggml_type_id": spec.ggml_id,
            "block_size": spec.block_size,
            "type_size": spec.type_size,
            "quantizer": quantizer,
        }
        dequant, dequantizer = ggml.to_float(spec, traits, quant)
        entry["dequantizer"] = dequantizer
        dequants = []
        if dequant is None:
            entry["ggml_total_rmse"] = None
            entry["note"] = ("ggml has no to_float for this type: dequant.f32, random.bin "
                             "and random_dequant.f32 are omitted")
        else:
            write(out / "dequant.f32", dequant.astype("<f4").tobytes(), files)
            entry["ggml_total_rmse"] = ggml_array_rmse(dequant, x)
            rng = np.random.default_rng([RANDOM_SEED, spec.ggml_id])
            raw = random_bytes(spec, rng)
            write(out / "random.bin", raw, files)
            rdq, _ = ggml.to_float(spec, traits, raw)
            if not np.all(np.isfinite(rdq)):
                sys.exit(f"{spec.name}: random_dequant has non-finite values")
            write(out / "random_dequant.f32", rdq.astype("<f4").tobytes(), files)
            dequants = [(quant, dequant), (raw, rdq)]
        entry["ggml_max_total_error"] = spec.max_total_error
        q_same, dq_same = gguf_py_check(spec, x, quant, dequants)
        entry["gguf_py_quant_identical"] = q_same
        entry["gguf_py_dequant_identical"] = dq_same
        entry["files"] = files
        manifest_types[spec.name] = entry
        print(f"{spec.name:6} rmse={entry['ggml_total_rmse']} "
              f"gguf-py quant={q_same} dequant={dq_same}", file=sys.stderr)

    manifest = {
        "ggml": versions,
        "n": N,
        "input": "x[i] = 0.1 + 2*cosf(i), f32 (test-quantize-fns generate_data, offset 0)",
        "ggml_total_rmse_definition": (
            "test-quantize-fns array_rmse(dequant.f32, input.f32) = "
            "sqrtf(sum((double)(a[i]-b[i])^2)) / n"),
        "random_seed": RANDOM_SEED,
        "types": manifest_types,
    }
    text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    (args.out / "manifest.json").write_text(text)


if __name__ == "__main__":
    main()
