"""One reference case: llama.cpp's logits and greedy run, the f64 reference, the files."""

from __future__ import annotations

import collections
import pathlib
from dataclasses import dataclass, field

import numpy as np

from . import ggml as ggml_mod
from . import llamacpp
from . import output
from .reference import HParams, Reference, distances, log_softmax

N_GREEDY = 32
TOP_K = 20


@dataclass
class Adapter:
    """A LoRA adapter applied to a case, with the user scale llama.cpp gets."""

    path: pathlib.Path
    rel: str
    scale: float


@dataclass
class CaseSpec:
    """What to run and where to write it.

    model_rel is the model's path relative to the output root, or its file
    name inside the models directory when model_in == "models_dir".
    """

    name: str
    kind: str  # "tiny", "lora" or "smollm2"
    type_name: str
    model_path: pathlib.Path
    model_rel: str
    model_in: str  # "root" or "models_dir"
    prompt: str
    parse_special: bool
    add_special: bool = True
    adapters: list[Adapter] = field(default_factory=list)
    compact: bool = False  # top-k log-probs + LSE instead of full logits


def tensor_type_counts(reader) -> dict[str, int]:
    counts = collections.Counter(ggml_mod.tensor_types(reader).values())
    return dict(sorted(counts.items()))


def _write_logits(root: pathlib.Path, case_dir: str, logits: np.ndarray, compact: bool) -> dict:
    if not compact:
        rel = f"{case_dir}/logits.npy"
        desc = output.write_npy(root / rel, logits, np.float32)
        return {"logits": {"file": rel, **desc}}
    z = logits.astype(np.float64)
    lp = log_softmax(z)
    m = z.max(axis=-1)
    lse = m + np.log(np.exp(z - m[:, None]).sum(axis=-1))
    # Stable sort of the negated logits: among equal logits the lower id comes first.
    ids = np.argsort(-logits, axis=-1, kind="stable")[:, :TOP_K]
    rows = np.arange(logits.shape[0])[:, None]
    files = {}
    for key, arr, dt in (
        ("topk_ids", ids, np.int32),
        ("topk_logprobs", lp[rows, ids], np.float32),
        ("lse", lse, np.float32),
    ):
        rel = f"{case_dir}/{key}.npy"
        files[key] = {"file": rel, **output.write_npy(root / rel, arr, dt)}
    files["k"] = TOP_K
    return {"topk": files}


_LAST_REFERENCE: dict = {}


def _reference(path: pathlib.Path, sha256: str, ggml: ggml_mod.Ggml):
    """The f64 reference for a model file, kept for the next case of the same file
    (SmolLM2's prompts share one: expanding it takes seconds)."""
    if sha256 not in _LAST_REFERENCE:
        _LAST_REFERENCE.clear()
        reader, weights = ggml_mod.load_tensors(path, ggml)
        _LAST_REFERENCE[sha256] = (reader, Reference(HParams.from_reader(reader), weights))
    return _LAST_REFERENCE[sha256]


def run(spec: CaseSpec, root: pathlib.Path, case_dir: str, ggml: ggml_mod.Ggml) -> dict:
    """Runs one case, writes <root>/<case_dir>/ and returns its case.json content."""
    model = llamacpp.Model(spec.model_path)
    try:
        tokens = model.tokenize(spec.prompt, spec.add_special, spec.parse_special)
        loras = [(model.lora(a.path), a.scale) for a in spec.adapters]
        logits, greedy, margins = llamacpp.run_case(model, tokens, N_GREEDY, loras)
        n_vocab = model.n_vocab
    finally:
        model.close()

    model_sha256 = output.sha256_file(spec.model_path)
    reader, ref = _reference(spec.model_path, model_sha256, ggml)
    if spec.adapters:
        ref = Reference(ref.hp, ref.w)
    for a in spec.adapters:
        areader, atensors = ggml_mod.load_tensors(a.path, ggml)
        alpha = float(ggml_mod.field_value(areader, "adapter.lora.alpha"))
        ref.merge_lora(atensors, alpha, a.scale)
    dist = distances(logits, ref.forward(tokens))

    case = {
        "name": spec.name,
        "kind": spec.kind,
        "arch": ggml_mod.field_value(reader, "general.architecture"),
        "type": spec.type_name,
        "model": spec.model_rel,
        "model_in": spec.model_in,
        "model_sha256": model_sha256,
        "tensor_types": tensor_type_counts(reader),
        "n_vocab": n_vocab,
        "prompt": {
            "text": spec.prompt,
            "add_special": spec.add_special,
            "parse_special": spec.parse_special,
        },
        "tokens": tokens,
        "n_tokens": len(tokens),
        "adapters": [{"path": a.rel, "scale": a.scale} for a in spec.adapters],
        "greedy": {
            "tokens": greedy,
            "margins": margins,
            "min_margin": min(margins),
        },
        "f64_reference": dist,
        "settings": llamacpp.CONTEXT_SETTINGS,
    }
    case.update(_write_logits(root, case_dir, logits, spec.compact))
    output.write_json(root / case_dir / "case.json", case)
    return case
