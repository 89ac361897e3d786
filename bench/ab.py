#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A/B: two or more builds of `numafeed bench` on the same datasets,
alternating run by run, so that a change (a refactor, a guard) is compared
with what it replaced under the same machine state.

Each round runs every label once per (workload, io) in a rotating order;
the JSON has every run, the summary the mean, min and max per label.

  python3 bench/ab.py --build before=/tmp/old/numafeed --build after=build/release/src/cli/numafeed \\
      --work /tmp/nfab --rounds 5 [--workloads tokens-zstd,images-raw,images-zstd1] [--io auto,mmap]
      [--host] [--threads 2] [--epochs 3] [--json out.json]

Workloads are bench/gpu_bench.py's (generated and packed with the first
build's `numafeed pack`). --host runs every build with --host (the CPU
path; the only one on a machine without a GPU).
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
import gpu_bench  # noqa: E402  (the workloads and their generator)


def drop_caches():
    """Evict the page cache (root only); False where the kernel refuses."""
    r = subprocess.run(["sh", "-c", "sync && echo 3 > /proc/sys/vm/drop_caches"],
                       capture_output=True)
    return r.returncode == 0


def run(binary, ds, batch, threads, epochs, io, host, gpus, cold=False):
    if cold and not drop_caches():
        raise SystemExit("--cold: cannot drop the page cache here (needs root)")
    cmd = [binary, "bench", ds, "--epochs", str(epochs), "--batch-size", str(batch),
           "--threads", str(threads)]
    if io:
        cmd += ["--io", io]
    cmd += ["--host"] if host else ["--gpus", gpus]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    m = re.search(r"([0-9.]+) GB/s", out[out.find("total"):] if "total" in out else out)
    io_used = re.search(r"\bio ([a-z_]+)", out)
    return float(m.group(1)), " ".join(cmd), io_used.group(1) if io_used else ""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", action="append", required=True, help="LABEL=PATH to numafeed")
    ap.add_argument("--work", required=True)
    ap.add_argument("--workloads", default="tokens-zstd,images-raw,images-zstd1")
    ap.add_argument("--io", default="", help="comma list of --io values ('' = the default)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--records", type=float, default=0.25,
                    help="fraction of gpu_bench's record counts (default 0.25)")
    ap.add_argument("--host", action="store_true")
    ap.add_argument("--gpus", default="0")
    ap.add_argument("--cold", action="store_true",
                    help="drop the page cache before every run (root): data read cold")
    ap.add_argument("--ceiling", help="gpu_ceiling binary: pinned H2D of one batch per workload")
    ap.add_argument("--json")
    a = ap.parse_args()
    builds = [b.split("=", 1) for b in a.build]
    os.makedirs(a.work, exist_ok=True)
    wanted = a.workloads.split(",")
    ios = a.io.split(",") if a.io else [""]
    runs, ceilings = [], {}
    for name, field, rb, batch, codec, level, n in gpu_bench.WORKLOADS:
        if name not in wanted:
            continue
        ds = gpu_bench.prepare(builds[0][1], a.work, name, field, rb, codec, level,
                               max(1, int(n * a.records)))
        for io in ios:
            for r in range(a.rounds):
                order = builds[r % len(builds):] + builds[:r % len(builds)]
                for label, binary in order:
                    gbps, cmd, used = run(binary, ds, batch, a.threads, a.epochs, io, a.host,
                                          a.gpus, a.cold)
                    runs.append(dict(workload=name, io=io or "default", label=label, round=r,
                                     gbps=gbps, io_used=used, command=cmd))
                    print(f"{name:12s} io={io or 'default':8s} {label:8s} round {r}: "
                          f"{gbps:.3f} GB/s ({used})", flush=True)
        if a.ceiling:
            out = subprocess.run([a.ceiling, "h2d", str(rb * batch)], check=True,
                                 capture_output=True, text=True).stdout
            ceilings[name] = float(re.search(r"gbps ([0-9.]+)", out).group(1))
            print(f"{name:12s} pinned H2D of one batch: {ceilings[name]:.2f} GB/s", flush=True)
    summary = []
    for name in wanted:
        for io in ios:
            for label, _ in builds:
                v = [x["gbps"] for x in runs if x["workload"] == name and
                     x["io"] == (io or "default") and x["label"] == label]
                if v:
                    h2d = ceilings.get(name)
                    summary.append(dict(workload=name, io=io or "default", label=label,
                                        mean=statistics.mean(v), min=min(v), max=max(v), n=len(v),
                                        h2d=h2d, of_h2d=statistics.mean(v) / h2d if h2d else None))
    print("\nworkload      io        label     mean GB/s  min     max     x pinned H2D")
    for s in summary:
        print(f"{s['workload']:12s}  {s['io']:8s}  {s['label']:8s}  {s['mean']:8.3f}  "
              f"{s['min']:6.3f}  {s['max']:6.3f}  "
              + (f"{s['of_h2d']:.3f}" if s["of_h2d"] else "-"))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(dict(date=time.strftime("%Y-%m-%d %H:%M"), machine=gpu_bench.machine(),
                           command=" ".join(sys.argv), threads=a.threads, epochs=a.epochs,
                           rounds=a.rounds, host=a.host, cold=a.cold, ceilings=ceilings,
                           runs=runs, summary=summary), f, indent=1)


if __name__ == "__main__":
    main()
