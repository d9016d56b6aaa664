"""ggml's own dequantizers (libggml-base from llama-cpp-python) and GGUF tensor loading.

The float64 reference forward pass must start from exactly the weights llama.cpp
multiplies by, so quantized tensors are expanded by ggml's to_float, not by a
re-implementation.
"""

from __future__ import annotations

import ctypes
import pathlib

import gguf
import llama_cpp
import numpy as np

_FloatPtr = ctypes.POINTER(ctypes.c_float)
_ToFloat = ctypes.CFUNCTYPE(None, ctypes.c_void_p, _FloatPtr, ctypes.c_int64)


class _TypeTraits(ctypes.Structure):
    # struct ggml_type_traits (ggml.h of the vendored ggml 0.25.3), leading fields.
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
    """The libggml-base entry points the references use."""

    def __init__(self):
        lib_dir = pathlib.Path(llama_cpp.__file__).parent / "lib"
        self.lib = ctypes.CDLL(str(lib_dir / "libggml-base.so"))
        self.lib.ggml_get_type_traits.restype = ctypes.POINTER(_TypeTraits)
        self.lib.ggml_get_type_traits.argtypes = [ctypes.c_int]
        self.lib.ggml_version.restype = ctypes.c_char_p
        self.lib.ggml_commit.restype = ctypes.c_char_p

    def version(self) -> str:
        return self.lib.ggml_version().decode()

    def commit(self) -> str:
        return self.lib.ggml_commit().decode()

    def dequantize(self, raw: np.ndarray, type_id: int, n: int) -> np.ndarray:
        """Expands n values of a quantized ggml type to float32 with ggml's to_float."""
        traits = self.lib.ggml_get_type_traits(type_id).contents
        if not traits.to_float:
            raise ValueError(f"ggml type {type_id} has no to_float")
        src = np.ascontiguousarray(raw).view(np.uint8)
        need = n // traits.blck_size * traits.type_size
        if n % traits.blck_size or src.size < need:
            raise ValueError(f"{src.size} bytes cannot hold {n} values of type {type_id}")
        out = np.empty(n, dtype=np.float32)
        _ToFloat(traits.to_float)(src.ctypes.data, out.ctypes.data_as(_FloatPtr), n)
        return out


def load_tensors(path: pathlib.Path, ggml: Ggml) -> tuple[gguf.GGUFReader, dict[str, np.ndarray]]:
    """Every tensor of a GGUF file, expanded to float32 (exact for every ggml type's
    dequantized values), in numpy order (reversed ggml ne)."""
    reader = gguf.GGUFReader(str(path))
    out: dict[str, np.ndarray] = {}
    for t in reader.tensors:
        ne = [int(x) for x in t.shape]
        n = int(np.prod(ne))
        ttype = int(t.tensor_type)
        if ttype == gguf.GGMLQuantizationType.F32:
            vals = np.asarray(t.data, dtype=np.float32).reshape(-1)
        elif ttype == gguf.GGMLQuantizationType.F16:
            vals = np.asarray(t.data).view(np.float16).reshape(-1).astype(np.float32)
        else:
            vals = ggml.dequantize(np.asarray(t.data), ttype, n)
        out[t.name] = vals.reshape(list(reversed(ne)))
    return reader, out


def tensor_types(reader: gguf.GGUFReader) -> dict[str, str]:
    """ggml type name per tensor, as llama.cpp's quantizer chose them."""
    return {t.name: gguf.GGMLQuantizationType(int(t.tensor_type)).name for t in reader.tensors}


def field_value(reader: gguf.GGUFReader, key: str, default=None):
    """A scalar or string metadata value, or default when absent."""
    f = reader.get_field(key)
    if f is None:
        return default
    return f.contents()
