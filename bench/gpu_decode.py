#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""decode cpu vs decode gpu, and both against nvCOMP's bare decode, one run.

For each zstd workload of gpu_bench.py (generated and packed by its
generator, page cache warmed), on one GPU:
  * `numafeed bench --decode cpu` and `--decode gpu` at each --threads:
    delivered GB/s (record bytes reaching the GPU), and for gpu the GPU time
    a batch cost (decode, verify, gather);
  * `nvcomp_ceiling` at each --blocks-per-call: nvCOMP's bare batched decode
    of the same blocks already on the GPU, the most any loader could get
    from it; numafeed's ratio is to the best of them;
  * with --gpu-step-us N: both decodes again beside a synthetic training
    step of N us on the default stream (bench --gpu-step-us), for the step
    time each leaves the model and the throughput it still delivers.
Asserts nothing; prints a table and writes JSON.

  python3 bench/gpu_decode.py --bin build/release --nvcomp /path/to/wheel \\
      --work /tmp/nfd [--workloads tokens-zstd,images-zstd1] [--threads 4,14] \\
      [--blocks-per-call 512,4096] [--gpu-step-us 2000] [--records 0.25] [--json out.json]
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gpu_bench  # noqa: E402  (the workloads and their generator)


def numafeed(nf, ds, batch, threads, decode, epochs, gpu_step_us=0):
    cmd = [nf, "bench", ds, "--gpus", "0", "--cuda-context", "--epochs", str(epochs),
           "--batch-size", str(batch), "--threads", str(threads), "--decode", decode]
    if gpu_step_us:
        cmd += ["--gpu-step-us", str(gpu_step_us)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    r = dict(decode=decode, threads=threads, gpu_step_us=gpu_step_us, command=" ".join(cmd))
    if p.returncode:
        r["error"] = (p.stderr or p.stdout).strip().splitlines()[-1:]
        return r
    out = p.stdout
    r["gbps"] = float(re.search(r"total: .* ([0-9.]+) GB/s", out).group(1))
    m = re.search(r"decode gpu: ([0-9.]+) us of GPU time per batch", out)
    r["gpu_us_per_batch"] = float(m.group(1)) if m else None
    m = re.search(r"GPU step of [0-9]+ us: ([0-9.]+) us per step", out)
    r["step_us"] = float(m.group(1)) if m else None
    m = re.search(r"([0-9.]+) cores busy", out)
    r["cores"] = float(m.group(1)) if m else None
    return r


def ceiling(tool, ds, per, secs, lib):
    cmd = [tool, ds, str(per), str(secs)] + (["--lib", lib] if lib else [])
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode:
        return dict(blocks=per, error=(p.stderr or p.stdout).strip().splitlines()[-1:])
    m = re.search(r"ceiling nvcomp blocks [0-9]+ gbps ([0-9.a-z]+)", p.stdout)
    return dict(blocks=per, gbps=float(m.group(1)), command=" ".join(cmd))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default="build/release", help="the build directory")
    ap.add_argument("--nvcomp", help="nvCOMP's library or the unpacked wheel "
                    "(default: $NUMAFEED_NVCOMP)")
    ap.add_argument("--work", required=True)
    ap.add_argument("--workloads", default="tokens-zstd,images-zstd1")
    ap.add_argument("--threads", default="4,14")
    ap.add_argument("--blocks-per-call", default="512,4096")
    ap.add_argument("--gpu-step-us", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--records", type=float, default=0.25,
                    help="fraction of gpu_bench's record counts (default 0.25)")
    ap.add_argument("--ceiling-seconds", type=float, default=2)
    ap.add_argument("--json")
    a = ap.parse_args()
    if a.nvcomp:
        os.environ["NUMAFEED_NVCOMP"] = a.nvcomp
    lib = os.environ.get("NUMAFEED_NVCOMP")
    nf = os.path.join(a.bin, "src/cli/numafeed")
    tool = os.path.join(a.bin, "bench/nvcomp_ceiling")
    os.makedirs(a.work, exist_ok=True)
    wanted = a.workloads.split(",")
    results = []
    for name, field, rb, batch, codec, level, n in gpu_bench.WORKLOADS:
        if name not in wanted:
            continue
        ds = gpu_bench.prepare(nf, a.work, name, field, rb, codec, level,
                               max(1, int(n * a.records)))
        w = dict(workload=name, batch=batch, record_bytes=rb, runs=[], ceilings=[])
        for per in [int(x) for x in a.blocks_per_call.split(",")]:
            c = ceiling(tool, ds, per, a.ceiling_seconds, lib)
            w["ceilings"].append(c)
            print(f"{name:13s} nvCOMP ceiling, {per:5d} blocks per call: "
                  f"{c.get('gbps', c.get('error'))} GB/s", flush=True)
        best = max([c["gbps"] for c in w["ceilings"] if "gbps" in c] or [0])
        steps = [0] + ([a.gpu_step_us] if a.gpu_step_us else [])
        for t in [int(x) for x in a.threads.split(",")]:
            for step in steps:
                for decode in ("cpu", "gpu"):
                    r = numafeed(nf, ds, batch, t, decode, a.epochs, step)
                    r["of_ceiling"] = r["gbps"] / best if best and "gbps" in r else None
                    w["runs"].append(r)
                    if "error" in r:
                        print(f"{name:13s} decode {decode} threads {t:2d}: {r['error']}",
                              flush=True)
                        continue
                    extra = ""
                    if r["gpu_us_per_batch"] is not None:
                        extra += f", GPU {r['gpu_us_per_batch']:.1f} us/batch"
                    if r["step_us"] is not None:
                        extra += f", step {r['step_us']:.0f} us (of {step})"
                    ratio = f", {r['of_ceiling']:.2f} of nvCOMP's best" if r["of_ceiling"] else ""
                    print(f"{name:13s} decode {decode} threads {t:2d}: {r['gbps']:7.2f} GB/s"
                          f"{ratio}{extra}, {r['cores']} cores", flush=True)
        results.append(w)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(dict(date=time.strftime("%Y-%m-%d %H:%M"), machine=gpu_bench.machine(),
                           command=" ".join(sys.argv), nvcomp=lib, results=results), f, indent=1)


if __name__ == "__main__":
    main()
