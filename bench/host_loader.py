#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Host-mode loader benchmark: numafeed vs torch's DataLoader vs bare memcpy.

Everything runs on the same records in the same run:
  * a raw file of N fixed-size token-like records (int32), packed uncompressed
    with `numafeed pack --codec none`, page-cache resident (read once first);
  * ceiling: bare memcpy of the same number of bytes (numpy copyto between two
    in-RAM arrays, one thread);
  * numafeed: `numafeed bench DIR` at 1..T threads (host mode), best taken;
  * baseline: torch.utils.data.DataLoader over a numpy memmap of the same
    records, no decode, shuffled, num_workers in 0..W, persistent workers,
    two dataset styles (per-record __getitem__ with default collate, and a
    batch sampler fetching a whole batch with one fancy index); best taken.
Prints a table and writes JSON. Asserts nothing about timings.

  python3 bench/host_loader.py --numafeed build/release/src/cli/numafeed \
      --workdir /tmp/nf-bench --records 65536 --record-bytes 8192 --batch 64
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np


def gbps(nbytes, secs):
    return nbytes / secs / 1e9


def make_raw(path, n, record_bytes, seed=0):
    rng = np.random.default_rng(seed)
    per = record_bytes // 4
    with open(path, "wb") as f:
        chunk = 4096
        for i in range(0, n, chunk):
            k = min(chunk, n - i)
            # token-like: small ints with runs, like a tokenizer's output
            a = rng.integers(0, 50000, size=(k, per), dtype=np.int32)
            f.write(a.tobytes())


def warm(paths):
    for p in paths:
        with open(p, "rb") as f:
            while f.read(1 << 24):
                pass


def bench_memcpy(nbytes, reps=3):
    src = np.ones(nbytes, dtype=np.uint8)
    dst = np.empty_like(src)
    np.copyto(dst, src)  # fault both in
    best = 0.0
    for _ in range(reps):
        t = time.perf_counter()
        np.copyto(dst, src)
        best = max(best, gbps(nbytes, time.perf_counter() - t))
    return best


def bench_numafeed(binary, ds, epochs, batch, threads, extra=()):
    cmd = [binary, "bench", ds, "--epochs", str(epochs), "--batch-size", str(batch),
           "--threads", str(threads), "--device", "cpu", *extra]
    j = json.loads(subprocess.run(cmd + ["--json", "-"], check=True, capture_output=True,
                                  text=True).stdout)
    p = j["pools"][0]
    return {"threads": threads, "io": extra[1] if extra else "auto", "gbps": j["gbps"],
            "seconds": j["seconds"], "wait_p50_us": p["wait_p50_us"],
            "wait_p99_us": p["wait_p99_us"], "cores_busy": j["cores_busy"],
            "command": " ".join(cmd)}


class PerRecord:
    def __init__(self, path, n, record_bytes):
        self.path, self.n, self.rb = path, n, record_bytes
        self.mm = None

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if self.mm is None:  # opened in the worker, after fork
            self.mm = np.memmap(self.path, dtype=np.int32, mode="r",
                                shape=(self.n, self.rb // 4))
        import torch
        return torch.from_numpy(np.array(self.mm[i]))


class PerBatch(PerRecord):
    def __getitem__(self, idx):
        if self.mm is None:
            self.mm = np.memmap(self.path, dtype=np.int32, mode="r",
                                shape=(self.n, self.rb // 4))
        import torch
        return torch.from_numpy(self.mm[np.asarray(idx)])


def bench_dataloader(raw, n, record_bytes, batch, epochs, workers, style):
    import torch
    from torch.utils.data import BatchSampler, DataLoader, RandomSampler
    kw = dict(num_workers=workers, persistent_workers=workers > 0, pin_memory=False)
    if style == "per-record":
        ds = PerRecord(raw, n, record_bytes)
        dl = DataLoader(ds, batch_size=batch, shuffle=True, **kw)
    else:
        ds = PerBatch(raw, n, record_bytes)
        sampler = BatchSampler(RandomSampler(ds), batch_size=batch, drop_last=False)
        dl = DataLoader(ds, sampler=sampler, batch_size=None, **kw)
    torch.manual_seed(0)
    got = 0
    t = time.perf_counter()
    for _ in range(epochs):
        for b in dl:
            got += b.numel() * 4
    secs = time.perf_counter() - t
    del dl
    return {"workers": workers, "style": style, "gbps": gbps(got, secs), "seconds": secs}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--numafeed", required=True, help="path of the numafeed binary")
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--records", type=int, default=65536)
    ap.add_argument("--record-bytes", type=int, default=8192)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--max-threads", type=int, default=os.cpu_count())
    ap.add_argument("--max-workers", type=int, default=min(2, os.cpu_count()))
    ap.add_argument("--json", help="write results here")
    a = ap.parse_args()

    os.makedirs(a.workdir, exist_ok=True)
    raw = os.path.join(a.workdir, "records.bin")
    ds = os.path.join(a.workdir, "ds")
    if not os.path.exists(raw) or os.path.getsize(raw) != a.records * a.record_bytes:
        make_raw(raw, a.records, a.record_bytes)
    if not os.path.exists(os.path.join(ds, "manifest.json")):
        subprocess.run([a.numafeed, "pack", "--out", ds, "--force", "--quiet", "--codec", "none",
                        "--record-bytes", str(a.record_bytes),
                        "--field", f"tokens:int32:{a.record_bytes // 4}", raw], check=True)
    warm([raw] + [os.path.join(ds, f) for f in os.listdir(ds)])
    nbytes = a.records * a.record_bytes

    res = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
           "date": time.strftime("%Y-%m-%d"), "records": a.records,
           "record_bytes": a.record_bytes, "batch": a.batch, "epochs": a.epochs,
           "memcpy_gbps": bench_memcpy(nbytes)}
    res["numafeed"] = [bench_numafeed(a.numafeed, ds, a.epochs, a.batch, t, ("--io", io))
                       for io in ("io_uring", "mmap") for t in range(1, a.max_threads + 1)]
    res["dataloader"] = []
    try:
        for w in range(0, a.max_workers + 1):
            for style in ("per-record", "per-batch"):
                res["dataloader"].append(
                    bench_dataloader(raw, a.records, a.record_bytes, a.batch, a.epochs, w, style))
    except ImportError as e:
        res["dataloader_error"] = str(e)

    best_nf = max(res["numafeed"], key=lambda r: r["gbps"])
    print(f"machine {res['machine']}, {res['date']}; {a.records} records x {a.record_bytes} B "
          f"= {nbytes / 1e9:.2f} GB per epoch, batch {a.batch}, {a.epochs} epochs, page cache")
    print(f"bare memcpy (1 thread)           {res['memcpy_gbps']:8.2f} GB/s")
    for r in res["numafeed"]:
        print(f"numafeed, {r['io']:8s} {r['threads']} thread(s)    {r['gbps']:8.2f} GB/s"
              f"   wait p50 {r['wait_p50_us']} us p99 {r['wait_p99_us']} us")
    for r in res["dataloader"]:
        print(f"DataLoader, {r['workers']} workers, {r['style']:10s} {r['gbps']:8.2f} GB/s")
    if res["dataloader"]:
        best_dl = max(res["dataloader"], key=lambda r: r["gbps"])
        res["ratio_vs_dataloader"] = best_nf["gbps"] / best_dl["gbps"]
        print(f"numafeed best / DataLoader best   {res['ratio_vs_dataloader']:8.1f} x "
              f"(DataLoader best: {best_dl['workers']} workers, {best_dl['style']})")
    res["ratio_vs_memcpy"] = best_nf["gbps"] / res["memcpy_gbps"]
    print(f"numafeed best / bare memcpy       {res['ratio_vs_memcpy']:8.2f}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
