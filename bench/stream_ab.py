#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A/B of the worker's data path on the GPU machine, one run, alternating.

For each workload of bench/gpu_bench.py (same records, same packing) it runs
`numafeed bench` under every configuration of the worker's data path, in
turn, --reps times:

  window   NUMAFEED_STREAM=0: decode the whole shuffle window, then copy
           its records into the batch slots (the path before 2026-11-27)
  stream   NUMAFEED_STREAM=1 NUMAFEED_NT=0: each block copied into its
           slots as soon as it is verified and decoded
  stream+nt  as stream, with non-temporal stores into the slots

each with io_uring and with mmap, and measures the ceilings in the same run
(pinned H2D of one batch, bare zstd decode at the same thread count).
Prints one line per run and a summary (median of the reps); writes JSON.
Asserts nothing.

  python3 bench/stream_ab.py --bin build/release --work /tmp/nfb --json out.json
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gpu_bench  # noqa: E402  (workloads, record generator)

CONFIGS = {
    "window": {"NUMAFEED_STREAM": "0", "NUMAFEED_NT": "0"},
    "stream": {"NUMAFEED_STREAM": "1", "NUMAFEED_NT": "0"},
    "stream+nt": {"NUMAFEED_STREAM": "1", "NUMAFEED_NT": "1"},
}
# epochs per workload: about a second of loading each at the earlier rates
EPOCHS = {"tokens-zstd": 5, "images-raw": 20, "images-zstd1": 8, "small-zstd": 6}


def run(nf, ds, batch, threads, epochs, env, extra=()):
    cmd = [nf, "bench", ds, "--gpus", "0", "--epochs", str(epochs), "--batch-size", str(batch),
           "--threads", str(threads), *extra]
    e = dict(os.environ, **env)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=e).stdout
    m = re.search(r"total: .* in ([0-9.]+) s: ([0-9.]+) GB/s", out)
    st = re.search(r"pool 0 stages[^\n]*", out)
    return {"gbps": float(m.group(2)), "seconds": float(m.group(1)),
            "stages": st.group(0) if st else "", "env": env, "command": " ".join(cmd)}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--threads", default="14")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--only")
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--io", default="io_uring,mmap")
    ap.add_argument("--host", action="store_true", help="host mode (no GPU copy)")
    ap.add_argument("--json")
    a = ap.parse_args()
    nf = os.path.join(a.bin, "src/cli/numafeed")
    ceil = os.path.join(a.bin, "bench/gpu_ceiling")
    os.makedirs(a.work, exist_ok=True)
    res = {"date": time.strftime("%Y-%m-%d %H:%M"), "cpus": os.cpu_count(), "workloads": []}
    for name, field, rb, batch, codec, level, n in gpu_bench.WORKLOADS:
        if a.only and name not in a.only.split(","):
            continue
        ds = gpu_bench.prepare(nf, a.work, name, field, rb, codec, level, n)
        w = {"name": name, "batch": batch, "runs": [], "ceilings": {}}
        if not a.host:
            w["ceilings"]["h2d_gbps"] = float(subprocess.run(
                [ceil, "h2d", str(rb * batch), "2"], check=True, capture_output=True,
                text=True).stdout.split()[-1])
        for t in [int(x) for x in a.threads.split(",")]:
            if codec == "zstd":
                w["ceilings"][f"zstd_{t}"] = float(subprocess.run(
                    [ceil, "zstd", ds, str(t), "2"], check=True, capture_output=True,
                    text=True).stdout.split()[5])
            for rep in range(a.reps):
                for c in a.configs.split(","):
                    for io in a.io.split(","):
                        r = run(nf, ds, batch, t, EPOCHS[name], CONFIGS[c],
                                ["--io", io] + (["--device", "cpu"] if a.host else []))
                        r.update(config=c, io=io, threads=t, rep=rep)
                        w["runs"].append(r)
                        print(f"{name} t{t} {c:10s} {io:8s} rep{rep}: {r['gbps']:7.2f} GB/s  "
                              f"{r['stages']}", flush=True)
        print(f"== {name}: ceilings {w['ceilings']}")
        for t in [int(x) for x in a.threads.split(",")]:
            for c in a.configs.split(","):
                for io in a.io.split(","):
                    g = [r["gbps"] for r in w["runs"]
                         if r["config"] == c and r["io"] == io and r["threads"] == t]
                    print(f"   t{t} {c:10s} {io:8s} median {statistics.median(g):7.2f} GB/s "
                          f"(runs {', '.join(f'{x:.2f}' for x in g)})")
        sys.stdout.flush()
        res["workloads"].append(w)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
