#!/usr/bin/env python3
"""The decode table of bench/RESULTS.md from `seldon-bench kernels --json` files.

Usage: bench/scripts/decode_table.py FILE.json [FILE.json ...] [--shape 2048x6144]

For each weight type, the matvec (1 column) at SHAPE: the median over the files
of the time, GB/s and ratio to that run's copy ceiling, with the range of the
ratio. Several files (separate processes) because on a software rasterizer the
same binary's timings move by up to 2x from one process to the next.
"""
import json
import statistics
import sys


def main() -> None:
    args = sys.argv[1:]
    shape = "2048x6144"
    if "--shape" in args:
        i = args.index("--shape")
        shape = args[i + 1]
        del args[i : i + 2]
    if not args:
        sys.exit(__doc__)
    runs = [json.load(open(path)) for path in args]
    rows: dict[tuple[str, str], list[dict]] = {}
    ceilings = []
    for run in runs:
        for r in run:
            if r["kernel"] == "copy":
                ceilings.append(r["gbps"])
            elif r["shape"] == shape and r["kernel"] in ("matvec", "matvec_split", "matvec_rows", "matvec_q8_dot4") and r.get("n_cols", 1) == 1:
                rows.setdefault((r["kernel"], r["type"]), []).append(r)
    print(f"copy ceiling: median {statistics.median(ceilings):.2f} GB/s over {len(ceilings)} runs "
          f"(range {min(ceilings):.2f}-{max(ceilings):.2f})\n")
    print("| kernel | type | median us | GB/s | of copy (median) | of copy (range) |")
    print("|---|---|---:|---:|---:|---|")
    for (kernel, ty), rs in rows.items():
        ratios = [r["ceiling_ratio"] for r in rs]
        print(f"| {kernel} | {ty} | {statistics.median(r['median_us'] for r in rs):.0f} | "
              f"{statistics.median(r['gbps'] for r in rs):.2f} | {statistics.median(ratios):.2f} | "
              f"{min(ratios):.2f}-{max(ratios):.2f} |")


if __name__ == "__main__":
    main()
