"""Deterministic writers: JSON, .npy, sha256 and the manifest."""

from __future__ import annotations

import hashlib
import json
import pathlib

import numpy as np

FORMAT_VERSION = 1


def sha256_file(path: pathlib.Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _dumps(obj, indent: int) -> str:
    """JSON with two-space indentation, but lists of scalars on one line."""
    pad = "  " * indent
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [f'{pad}  {json.dumps(k, ensure_ascii=False)}: {_dumps(v, indent + 1)}' for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, list) and any(isinstance(v, (dict, list)) for v in obj):
        items = [f"{pad}  {_dumps(v, indent + 1)}" for v in obj]
        return "[\n" + ",\n".join(items) + "\n" + pad + "]"
    return json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(", ", ": "))


def write_json(path: pathlib.Path, obj) -> None:
    """Keys in insertion order, floats as Python's shortest round-trip repr, no
    NaN: the same object always gives the same bytes.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_dumps(obj, 0) + "\n", encoding="utf-8")


def write_npy(path: pathlib.Path, arr: np.ndarray, dtype) -> dict:
    """Writes a C-order .npy (format 1.0) and returns its description for a case file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    a = np.ascontiguousarray(arr, dtype=dtype)
    with open(path, "wb") as f:
        np.lib.format.write_array(f, a, version=(1, 0), allow_pickle=False)
    return {"dtype": np.dtype(dtype).name, "shape": list(a.shape)}


def manifest(root: pathlib.Path, header: dict, skip: set[str]) -> dict:
    """Every file under root (but the skipped ones) with its size and sha256, sorted by path."""
    files = []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_file() and rel not in skip:
            files.append({"path": rel, "bytes": p.stat().st_size, "sha256": sha256_file(p)})
    out = dict(header)
    out["format_version"] = FORMAT_VERSION
    out["files"] = files
    out["total_bytes"] = sum(f["bytes"] for f in files)
    return out
