#!/usr/bin/env python3
"""llama.cpp's CPU tokens/s on a GGUF file, measured as llama-bench does.

pp<N>: one llama_decode of N prompt tokens from an empty KV cache.
tg<M>: M one-token llama_decode calls from an empty KV cache.
Each is run once to warm up, then --reps times; the median is reported.
The tokens are the same deterministic ids `seldon-bench model` uses
(token i = (1 + 7919 * i) mod n_vocab), so both engines see the same work.

Runs with the reference venv (scripts/python-env.sh):
    VENV_PY=$(scripts/python-env.sh | tail -n1)
    $VENV_PY bench/scripts/llama_cpp_tps.py -m MODEL.gguf [-p 128] [-n 64] [-t 2] [--reps 3]
Prints one JSON object on stdout (llama-bench's test names: pp128, tg64).
"""

import argparse
import ctypes
import json
import os
import platform
import statistics
import sys
import time

import llama_cpp as lc


def bench_tokens(n: int, n_vocab: int) -> list[int]:
    return [(1 + 7919 * i) % n_vocab for i in range(n)]


class Context:
    def __init__(self, model, n_ctx: int, n_batch: int, n_threads: int):
        params = lc.llama_context_default_params()
        params.n_ctx = n_ctx
        params.n_batch = n_batch
        params.n_ubatch = n_batch
        params.n_seq_max = 1
        params.n_threads = n_threads
        params.n_threads_batch = n_threads
        params.no_perf = True
        self.ptr = lc.llama_init_from_model(model, params)
        if not self.ptr:
            raise RuntimeError("llama_init_from_model failed")

    def clear(self) -> None:
        lc.llama_memory_clear(lc.llama_get_memory(self.ptr), True)

    def decode(self, tokens: list[int], pos0: int) -> None:
        n = len(tokens)
        batch = lc.llama_batch_init(n, 0, 1)
        try:
            batch.n_tokens = n
            for i, t in enumerate(tokens):
                batch.token[i] = t
                batch.pos[i] = pos0 + i
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = 0
                batch.logits[i] = 1 if i == n - 1 else 0
            rc = lc.llama_decode(self.ptr, batch)
            if rc != 0:
                raise RuntimeError(f"llama_decode failed ({rc})")
        finally:
            lc.llama_batch_free(batch)
        # Reading the logits waits for the work, as seldon's readback does.
        lc.llama_get_logits_ith(self.ptr, n - 1)

    def close(self) -> None:
        lc.llama_free(self.ptr)


def pp_once(ctx: Context, tokens: list[int]) -> float:
    ctx.clear()
    start = time.perf_counter()
    ctx.decode(tokens, 0)
    return time.perf_counter() - start


def tg_once(ctx: Context, tokens: list[int]) -> float:
    ctx.clear()
    start = time.perf_counter()
    for i, t in enumerate(tokens):
        ctx.decode([t], i)
    return time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-m", "--model", required=True)
    ap.add_argument("-p", "--n-prompt", type=int, default=128)
    ap.add_argument("-n", "--n-gen", type=int, default=64)
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    if min(args.n_prompt, args.n_gen, args.threads, args.reps) < 1:
        ap.error("counts must be at least 1")

    lc.llama_backend_init()
    mparams = lc.llama_model_default_params()
    mparams.n_gpu_layers = 0
    model = lc.llama_model_load_from_file(args.model.encode(), mparams)
    if not model:
        print(f"llama.cpp cannot load {args.model}", file=sys.stderr)
        return 1
    n_vocab = lc.llama_vocab_n_tokens(lc.llama_model_get_vocab(model))
    n_ctx = max(args.n_prompt, args.n_gen) + 16
    ctx = Context(model, n_ctx, max(args.n_prompt, 1), args.threads)

    results = {}
    for name, run, n in [
        (f"pp{args.n_prompt}", pp_once, args.n_prompt),
        (f"tg{args.n_gen}", tg_once, args.n_gen),
    ]:
        tokens = bench_tokens(n, n_vocab)
        run(ctx, tokens)  # warm-up
        secs = [run(ctx, tokens) for _ in range(args.reps)]
        tps = [n / s for s in secs]
        results[name] = {
            "n_tokens": n,
            "samples_s": secs,
            "samples_ts": tps,
            "median_ts": statistics.median(tps),
        }
        print(f"{name}: {statistics.median(tps):.1f} t/s (samples {', '.join(f'{x:.1f}' for x in tps)})",
              file=sys.stderr)
    ctx.close()
    lc.llama_model_free(model)

    print(json.dumps({
        "engine": "llama.cpp (CPU) via llama-cpp-python",
        "llama_cpp_python": lc.__version__,
        "model": os.path.basename(args.model),
        "n_threads": args.threads,
        "reps": args.reps,
        "cpu": platform.processor() or platform.machine(),
        "results": results,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
