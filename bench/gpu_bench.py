#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""GPU benchmark: numafeed vs torch's DataLoader vs the ceilings, one run.

For each workload (tokens: 2048 x int32, batch 64, zstd; images: 3x224x224
uint8, batch 256, uncompressed and zstd -1; small: 1 KiB, batch 4096, zstd)
it generates records, packs them with `numafeed pack`, warms the page cache
and measures, side by side:
  * numafeed: `numafeed bench` (batches copied to the GPU, the default
    stream waiting on each batch's ready event) at several thread counts;
    plus a run with a consumer "step" twice the median batch interval, where
    the pipeline is ahead, for the loader_next wait;
  * the DataLoader: an IterableDataset reading the same shard files with
    numpy and zstandard, block by block (every block decoded once, records
    shuffled within the block, blocks shuffled and split over workers),
    num_workers in {0, 4, 8, 14}, pin_memory=True, persistent_workers=True,
    each batch .to("cuda", non_blocking=True); the best one is the baseline;
  * ceilings: pinned cudaMemcpyAsync of a batch (gpu_ceiling h2d), bare
    multi-thread zstd decode of the dataset's blocks at the same thread
    counts (gpu_ceiling zstd), with libzstd's default frame checksum check
    and without it (numafeed's readers skip it: their XXH3 of the decoded
    bytes covers the same bytes).
Asserts nothing; prints a table and writes JSON.

  python3 bench/gpu_bench.py --bin build/release --work /tmp/nfb --json out.json
"""
import argparse
import json
import os
import struct
import subprocess
import sys
import time

import numpy as np


WORKLOADS = [
    # name, record shape/dtype, batch, codec, level, records
    ("tokens-zstd", "tokens:int32:2048", 8192, 64, "zstd", 3, 131072),
    ("images-raw", "image:uint8:3x224x224", 150528, 256, "none", 0, 8192),
    ("images-zstd1", "image:uint8:3x224x224", 150528, 256, "zstd", 1, 8192),
    ("small-zstd", "data:uint8:1024", 1024, 4096, "zstd", 3, 1 << 20),
]


def gpu_names():
    """nvidia-smi's name of each GPU; [] where there is none."""
    try:
        return subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                              capture_output=True, text=True).stdout.strip().splitlines()
    except OSError:
        return []


def machine():
    """The GPUs and the CPU count, for a result's JSON: the host name says nothing."""
    gpu = gpu_names()
    return f"{gpu[0] if gpu else 'no GPU'}{' x%d' % len(gpu) if len(gpu) > 1 else ''}, " \
           f"{os.cpu_count()} CPUs"


def gen(path, name, rb, n):
    if os.path.exists(path) and os.path.getsize(path) == rb * n:
        return
    rng = np.random.default_rng(1)
    with open(path, "wb") as f:
        step = max(1, (64 << 20) // rb)
        for i in range(0, n, step):
            k = min(step, n - i)
            if name.startswith("tokens"):
                a = (50000 * rng.random((k, rb // 4)) ** 3).astype(np.int32)
            elif name.startswith("images"):
                # smooth gradients plus sensor noise: compresses like photos, ~1.3-2x
                y = np.arange(224, dtype=np.int32)[:, None]
                x = np.arange(224, dtype=np.int32)[None, :]
                base = ((x + y)[None, None] + rng.integers(0, 255, (k, 3, 1, 1))) % 256
                a = (base + rng.integers(0, 3, (k, 3, 224, 224))).astype(np.uint8)
            else:
                a = rng.integers(0, 64, (k, rb), dtype=np.uint8)
            f.write(a.tobytes())


def prepare(nf, work, name, field, rb, codec, level, n):
    """Generate and pack one workload (once), warm the page cache; its dir."""
    raw = os.path.join(work, name.split("-")[0] + ".bin")
    gen(raw, name, rb, n)
    ds = os.path.join(work, name)
    if not os.path.exists(os.path.join(ds, "manifest.json")):
        cmd = [nf, "pack", "--quiet", "--force", "--out", ds, "--record-bytes", str(rb),
               "--field", field, "--codec", codec]
        if codec == "zstd":
            cmd += ["--level", str(level)]
        subprocess.run(cmd + [raw], check=True)
    subprocess.run(f"cat {ds}/* > /dev/null", shell=True, check=True)
    return ds


def shard_blocks(ds):
    """(path, offset, stored, decoded, records, codec) of every block."""
    man = json.load(open(os.path.join(ds, "manifest.json")))
    out = []
    for sh in man["shards"]:
        p = os.path.join(ds, sh["file"])
        with open(p, "rb") as f:
            f.seek(-32, 2)
            foff, fsize, _, magic = struct.unpack("<QQQ8s", f.read(32))
            f.seek(foff)
            foot = f.read(fsize)
        count = struct.unpack_from("<I", foot, 0)[0]
        for i in range(count):
            off, stored, dec, recs, codec, _ = struct.unpack_from("<QIIII Q".replace(" ", ""),
                                                                  foot, 16 + 32 * i)
            out.append((p, off, stored, dec, recs, codec))
    return man, out


class ShardStream:
    """IterableDataset over numafeed shards, block-wise: the fastest honest
    way to read them from Python (each block read and decoded once)."""

    def __init__(self, ds, batch, epoch_seed):
        self.man, self.blocks = shard_blocks(ds)
        self.rb = self.man["record_bytes"]
        self.batch = batch
        self.seed = epoch_seed

    def __iter__(self):
        import torch
        import zstandard
        info = torch.utils.data.get_worker_info()
        wid, nw = (info.id, info.num_workers) if info else (0, 1)
        rng = np.random.default_rng(self.seed)
        order = rng.permutation(len(self.blocks))[wid::nw]
        dctx = zstandard.ZstdDecompressor()
        fds = {}
        pending = []
        have = 0
        for bi in order:
            p, off, stored, dec, recs, codec = self.blocks[bi]
            fd = fds.get(p) or fds.setdefault(p, os.open(p, os.O_RDONLY))
            raw = os.pread(fd, stored, off)
            if codec == 1:
                raw = dctx.decompress(raw, max_output_size=dec)
            a = np.frombuffer(raw, dtype=np.uint8).reshape(recs, self.rb)
            a = a[rng.permutation(recs)]
            pending.append(a)
            have += recs
            while have >= self.batch:
                cat = np.concatenate(pending)
                yield torch.from_numpy(cat[: self.batch])
                rest = cat[self.batch:]
                pending, have = ([rest] if len(rest) else []), len(rest)
        if have:
            yield torch.from_numpy(np.concatenate(pending))


def bench_dataloader(ds, batch, workers, max_secs, epochs=2):
    import torch
    from torch.utils.data import DataLoader, IterableDataset

    class DS(IterableDataset):
        def __init__(self):
            self.s = ShardStream(ds, batch, 0)

        def __iter__(self):
            return iter(self.s)

    dl = DataLoader(DS(), batch_size=None, num_workers=workers, pin_memory=True,
                    persistent_workers=workers > 0,
                    prefetch_factor=4 if workers else None)
    got = 0
    t0 = time.perf_counter()
    first = None
    for _ in range(epochs):
        for b in dl:
            g = b.to("cuda", non_blocking=True)
            got += g.numel()
            if first is None:
                first = time.perf_counter() - t0
            if time.perf_counter() - t0 > max_secs:
                break
        if time.perf_counter() - t0 > max_secs:
            break
    torch.cuda.synchronize()
    secs = time.perf_counter() - t0
    del dl
    return {"workers": workers, "gbps": got / secs / 1e9, "seconds": secs,
            "first_batch_ms": (first or 0) * 1e3}


PREFETCH = 0


def numafeed_bench(binary, ds, batch, threads, epochs, step_us=0, io="", cuda_context=False):
    # one GPU (the ceilings are one GPU's): without --gpus a machine with
    # several would be served whole, one pool per GPU
    cmd = [binary, "bench", ds, "--gpus", "0", "--epochs", str(epochs), "--batch-size",
           str(batch), "--threads", str(threads)]
    if cuda_context:
        cmd += ["--cuda-context"]
    if PREFETCH:
        cmd += ["--prefetch", str(PREFETCH)]
    if io:
        cmd += ["--io", io]
    if step_us:
        cmd += ["--step-us", str(step_us)]
    out = subprocess.run(cmd + ["--json", "-"], check=True, capture_output=True,
                         text=True).stdout
    j = json.loads(out)
    p0 = j["pools"][0]
    r = {"threads": threads, "step_us": step_us, "io": io or "default",
         "command": " ".join(cmd), "seconds": j["seconds"], "gbps": j["gbps"],
         "create_ms": j["create_ms"], "first_batch_ms": j["first_batch_ms"],
         "cores_busy": j["cores_busy"], "io_used": p0["io"], "copy": p0["copy"],
         "wait_p50_us": p0["wait_p50_us"], "wait_p99_us": p0["wait_p99_us"],
         "wait_max_us": p0["wait_max_us"],
         "setup_context_ms": p0["setup_ms"]["context"], "setup_ring_ms": p0["setup_ms"]["ring"],
         "setup_cuda_ms": p0["setup_ms"]["cuda"], "mode": p0["mode"] + "(" + p0["copy"] + ")"}
    # batches arrive in bursts (a unit publishes its batches together), so
    # the median interval can be ~0: the mean is what the consumer sees
    r["interval_mean_us"] = r["seconds"] * 1e6 / max(1, -(-j["records"] // batch))
    af = p0.get("after_first")
    if af:  # exact, and without the first batch, which waits for the pipeline to fill
        r.update(after_first_batches=af["batches"], after_first_p50_us=af["wait_p50_us"],
                 after_first_p99_us=af["wait_p99_us"], after_first_max_us=af["wait_max_us"],
                 interval_median_us=af["interval_median_us"],
                 interval_p99_us=af["interval_p99_inside_us"],
                 interval_max_inside_us=af["interval_max_inside_us"],
                 epoch_gap_us=af["epoch_gap_us"])
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True, help="build dir with src/cli/numafeed, bench/")
    ap.add_argument("--work", required=True)
    ap.add_argument("--threads", default="4,8,14")
    ap.add_argument("--workers", default="0,4,8,14")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--prefetch", type=int, default=0, help="numafeed prefetch (0: default)")
    ap.add_argument("--io", default="", help="comma list of numafeed bench --io values "
                    "(auto, io_uring, pread, mmap); default: the loader's default only")
    ap.add_argument("--dl-seconds", type=float, default=8.0)
    ap.add_argument("--only", help="comma list of workload names")
    ap.add_argument("--json")
    a = ap.parse_args()
    global PREFETCH
    PREFETCH = a.prefetch
    nf = os.path.join(a.bin, "src/cli/numafeed")
    ceil = os.path.join(a.bin, "bench/gpu_ceiling")
    threads = [int(x) for x in a.threads.split(",")]
    workers = [int(x) for x in a.workers.split(",") if x]
    os.makedirs(a.work, exist_ok=True)
    results = {"date": time.strftime("%Y-%m-%d %H:%M"), "workloads": [],
               "gpu": "\n".join(gpu_names()) or "?", "cpus": os.cpu_count()}
    for name, field, rb, batch, codec, level, n in WORKLOADS:
        if a.only and name not in a.only.split(","):
            continue
        ds = prepare(nf, a.work, name, field, rb, codec, level, n)
        w = {"name": name, "record_bytes": rb, "batch": batch, "codec": codec, "level": level,
             "records": n, "gb_per_epoch": rb * n / 1e9}
        w["ceiling_h2d_gbps"] = float(subprocess.run(
            [ceil, "h2d", str(rb * batch), "2"], check=True, capture_output=True,
            text=True).stdout.split()[-1])
        ios = a.io.split(",") if a.io else [""]
        w["numafeed"] = [numafeed_bench(nf, ds, batch, t, a.epochs, io=io)
                         for io in ios for t in threads]
        if codec == "zstd":
            # libzstd's default (frame checksums checked) and the pure decode
            # (numafeed's readers leave the frame checksum to their XXH3)
            for key, extra in (("ceiling_zstd", []), ("ceiling_zstd_nocheck", ["nocheck"])):
                w[key] = {t: float(subprocess.run(
                    [ceil, "zstd", ds, str(t), "2"] + extra, check=True, capture_output=True,
                    text=True).stdout.split()[5]) for t in threads}
        best = max(w["numafeed"], key=lambda r: r["gbps"])
        step = int(2 * best["interval_mean_us"])
        bio = "" if best["io"] == "default" else best["io"]
        # 8 epochs: enough batches that p99 is not simply the largest wait
        w["numafeed_ahead"] = numafeed_bench(nf, ds, batch, best["threads"], 8, step_us=step,
                                           io=bio)
        # as in a training job: torch has created the CUDA context already
        w["numafeed_ctx"] = numafeed_bench(nf, ds, batch, best["threads"], 1, io=bio,
                                         cuda_context=True)
        w["dataloader"] = []
        for k in workers:
            try:
                w["dataloader"].append(bench_dataloader(ds, batch, k, a.dl_seconds))
            except Exception as e:  # report, keep going
                w["dataloader"].append({"workers": k, "error": repr(e)})
        results["workloads"].append(w)
        print_workload(w, threads)
        sys.stdout.flush()
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)


def print_workload(w, threads):
    print(f"== {w['name']}: {w['records']} x {w['record_bytes']} B "
          f"({w['gb_per_epoch']:.2f} GB/epoch), batch {w['batch']}, codec {w['codec']}")
    print(f"  ceiling pinned H2D ({w['record_bytes'] * w['batch']} B copies): "
          f"{w['ceiling_h2d_gbps']:.2f} GB/s")
    for r in w["numafeed"]:
        extra = ""
        if "ceiling_zstd" in w:
            c = w["ceiling_zstd"][r["threads"]]
            if c == c:  # not nan: the dataset has zstd blocks
                extra = f"  bare zstd x{r['threads']}: {c:.2f} GB/s, ratio {r['gbps'] / c:.2f}"
                n = w.get("ceiling_zstd_nocheck", {}).get(r["threads"])
                if n:
                    extra += (f"; without frame checksums {n:.2f} GB/s, ratio "
                              f"{r['gbps'] / n:.2f}")
        print(f"  numafeed {r['threads']:2d} threads [{r['mode']}, io {r.get('io', '?')}]: "
              f"{r['gbps']:.2f} GB/s, "
              f"first batch {r['first_batch_ms']:.1f} ms, wait p99 {r['wait_p99_us']:.1f} us, "
              f"interval median {r.get('interval_median_us', 0):.1f} mean "
              f"{r['interval_mean_us']:.1f} us, epoch gap "
              f"{r.get('epoch_gap_us', 0):.1f} us{extra}")
        if "setup_context_ms" in r:
            print(f"    create {r['create_ms']:.1f} ms: CUDA context {r['setup_context_ms']:.1f}, "
                  f"ring {r['setup_ring_ms']:.1f}, page-lock and device ring "
                  f"{r['setup_cuda_ms']:.1f} ms; intervals p99 inside epochs "
                  f"{r.get('interval_p99_us', 0):.1f} us, largest inside epochs "
                  f"{r.get('interval_max_inside_us', 0):.1f} us")
    r = w["numafeed_ahead"]
    print(f"  numafeed ahead (step {r['step_us']} us, 8 epochs): wait p50 {r['wait_p50_us']:.1f} "
          f"us p99 {r['wait_p99_us']:.1f} us max {r['wait_max_us']:.1f} us (histogram); after "
          f"the first batch, exact: p50 {r.get('after_first_p50_us', -1):.1f} us p99 "
          f"{r.get('after_first_p99_us', -1):.1f} us max {r.get('after_first_max_us', -1):.1f} us")
    r = w.get("numafeed_ctx")
    if r:
        print(f"  numafeed with the CUDA context already made: create {r['create_ms']:.1f} ms "
              f"(ring {r.get('setup_ring_ms', -1):.1f}, page-lock and device ring "
              f"{r.get('setup_cuda_ms', -1):.1f}), first batch {r['first_batch_ms']:.1f} ms "
              f"after create")
    for d in w["dataloader"]:
        if "error" in d:
            print(f"  DataLoader {d['workers']:2d} workers: error {d['error']}")
        else:
            print(f"  DataLoader {d['workers']:2d} workers: {d['gbps']:.3f} GB/s")
    ok = [d for d in w["dataloader"] if "gbps" in d]
    if ok:
        bd = max(ok, key=lambda d: d["gbps"])
        bn = max(w["numafeed"], key=lambda r: r["gbps"])
        print(f"  numafeed best / DataLoader best ({bd['workers']} workers): "
              f"{bn['gbps'] / bd['gbps']:.1f}x; numafeed best / pinned H2D: "
              f"{bn['gbps'] / w['ceiling_h2d_gbps']:.2f}")


if __name__ == "__main__":
    main()
