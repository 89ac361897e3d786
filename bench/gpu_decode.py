#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""decode cpu vs decode gpu, and both against nvCOMP's bare decode, one run.

For each zstd workload of gpu_bench.py (generated and packed by its
generator, page cache warmed), on one GPU:
  * `numafeed bench --decode cpu` at each --threads (default shuffle
    window) and `--decode gpu` at each --threads and each --windows (a
    shuffle window of that many blocks' records, 0: the default; a unit is
    one nvCOMP call, so this sets the blocks per call; --ring units gives
    it a ring that holds the workers' units; each of --copies: the stored
    blocks read into the workers' staging, or copied by the GPU from the
    page-locked page cache): delivered GB/s
    (record bytes reaching the GPU), cores busy, and for gpu the GPU time a
    batch cost (decode, verify, gather);
  * `nvcomp_ceiling` at each --blocks-per-call and each window's blocks:
    nvCOMP's bare batched decode of the same blocks already on the GPU;
    each gpu run's ratio is to the ceiling at its own blocks per call, and
    to the best of them;
  * the host's ceilings in the same run: libzstd's bare decode of the same
    blocks on 14 threads without frame checksums (gpu_ceiling zstd), and a
    pinned cudaMemcpyAsync of one batch (gpu_ceiling h2d);
  * with --gpu-step-us N: both decodes again beside a synthetic training
    step of N us on the default stream (bench --gpu-step-us), for the step
    time each leaves the model and the throughput it still delivers.
Asserts nothing; prints a table and writes JSON.

  python3 bench/gpu_decode.py --bin build/release --nvcomp /path/to/wheel \\
      --work /tmp/nfd [--workloads tokens-zstd,images-zstd1] [--threads 4,14] \\
      [--windows 0,128,512] [--ring units] [--copies staged,direct] \\
      [--blocks-per-call 4096] [--gpu-step-us 2000] \\
      [--records 0.25] [--json out.json]
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


def numafeed(nf, ds, batch, threads, decode, epochs, gpu_step_us=0, window=0, prefetch=0,
             copy="auto"):
    cmd = [nf, "bench", ds, "--gpus", "0", "--cuda-context", "--epochs", str(epochs),
           "--batch-size", str(batch), "--threads", str(threads), "--decode", decode,
           "--copy", copy]
    if gpu_step_us:
        cmd += ["--gpu-step-us", str(gpu_step_us)]
    if window:  # the GPU memory a wide window takes is what is measured here
        cmd += ["--shuffle-window", str(window), "--max-gpu-decode-bytes", "64G"]
    if prefetch:  # a ring that holds every worker's unit (docs/loader.md)
        cmd += ["--prefetch", str(prefetch), "--max-ring-bytes", "16G"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    r = dict(decode=decode, copy=copy, threads=threads, gpu_step_us=gpu_step_us,
             window=window, prefetch=prefetch, command=" ".join(cmd))
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
    m = re.search(r"waits p50 [0-9.]+ us, p99 ([0-9.]+) us", out)
    r["wait_p99_us"] = float(m.group(1)) if m else None
    return r


def records_per_block(ds):
    """The dataset's mean records per block, from its shards' footers."""
    _, blocks = gpu_bench.shard_blocks(ds)
    return max(1, sum(b[4] for b in blocks) // max(1, len(blocks)))


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
    ap.add_argument("--blocks-per-call", default="4096")
    ap.add_argument("--ring", choices=("default", "units"), default="default",
                    help="decode gpu's ring: the loader's default, or one that holds "
                    "twice every worker's unit (docs/loader.md), within 16 GiB")
    ap.add_argument("--windows", default="0,128,512",
                    help="decode gpu's shuffle windows, in blocks (0: the default)")
    ap.add_argument("--copies", default="staged,direct",
                    help="decode gpu's copies to run: staged (blocks read into each "
                    "worker's staging), direct (from the page-locked page cache), auto")
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
        rpb = records_per_block(ds)
        gc = os.path.join(a.bin, "bench/gpu_ceiling")
        for key, cmd in (("cpu_zstd_14_gbps", [gc, "zstd", ds, "14", "2", "nocheck"]),
                         ("h2d_gbps", [gc, "h2d", str(rb * batch), "2"])):
            p = subprocess.run(cmd, capture_output=True, text=True)
            m = re.search(r"gbps ([0-9.]+)", p.stdout)
            w[key] = float(m.group(1)) if m else None
            print(f"{name:13s} {key}: {w[key]} ({' '.join(cmd[1:])})", flush=True)
        windows = [int(x) for x in a.windows.split(",")]
        default_blocks = 17  # the default window: 16 blocks' records, over about 17 blocks
        pers = sorted({int(x) for x in a.blocks_per_call.split(",")} |
                      {x or default_blocks for x in windows})
        at = {}
        for per in pers:
            c = ceiling(tool, ds, per, a.ceiling_seconds, lib)
            w["ceilings"].append(c)
            at[per] = c.get("gbps")
            print(f"{name:13s} nvCOMP ceiling, {per:5d} blocks per call: "
                  f"{c.get('gbps', c.get('error'))} GB/s", flush=True)
        best = max([c["gbps"] for c in w["ceilings"] if "gbps" in c] or [0])
        steps = [0] + ([a.gpu_step_us] if a.gpu_step_us else [])
        plan = [("cpu", 0, "auto")] + [("gpu", x, c) for x in windows
                                         for c in a.copies.split(",")]
        for t in [int(x) for x in a.threads.split(",")]:
            for step in steps:
                for decode, wb, copy in plan:
                    pf = 0
                    if decode == "gpu" and a.ring == "units":
                        unit = (wb * rpb if wb else 16 * rpb) // batch + 2
                        pf = min(2 * t * unit, (16 << 30) // (batch * rb))
                    r = numafeed(nf, ds, batch, t, decode, a.epochs, step, wb * rpb, pf, copy)
                    same = at.get(wb or default_blocks) if decode == "gpu" else None
                    r["blocks_per_call"] = (wb or default_blocks) if decode == "gpu" else None
                    r["of_ceiling"] = r["gbps"] / best if best and "gbps" in r else None
                    r["of_ceiling_same_blocks"] = (r["gbps"] / same if same and "gbps" in r
                                                   else None)
                    w["runs"].append(r)
                    what = f"decode {decode} threads {t:2d}" + (
                        f" window {wb or 'default':>7} blocks copy {copy:6s}"
                        if decode == "gpu" else "")
                    if "error" in r:
                        print(f"{name:13s} {what}: {r['error']}", flush=True)
                        continue
                    extra = ""
                    if r["gpu_us_per_batch"] is not None:
                        extra += f", GPU {r['gpu_us_per_batch']:.1f} us/batch"
                    if r["step_us"] is not None:
                        extra += f", step {r['step_us']:.0f} us (of {step})"
                    ratio = f", {r['of_ceiling']:.2f} of nvCOMP's best" if r["of_ceiling"] else ""
                    if r["of_ceiling_same_blocks"]:
                        ratio += f", {r['of_ceiling_same_blocks']:.2f} at its blocks per call"
                    print(f"{name:13s} {what}: {r['gbps']:7.2f} GB/s{ratio}{extra}, "
                          f"{r['cores']} cores, wait p99 {r['wait_p99_us']} us", flush=True)
        results.append(w)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(dict(date=time.strftime("%Y-%m-%d %H:%M"), machine=gpu_bench.machine(),
                           command=" ".join(sys.argv), nvcomp=lib, results=results), f, indent=1)


if __name__ == "__main__":
    main()
