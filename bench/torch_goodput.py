#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""numafeed inside a torch process: interop check and GPU goodput.

It drives libnumafeed.so's C API through ctypes, not the Python package.
Two things, on a GPU machine with torch:

  check    numafeed's statically linked CUDA runtime and torch's own one in
           the same process: batches arrive on a torch stream (the stream
           waits on numafeed's ready event), torch reads them in place from
           numafeed's device buffers (__cuda_array_interface__), and the
           release event is recorded on that torch stream. Every batch's
           device sum must equal its host bytes' sum. Exit 1 on a mismatch.
  goodput  a synthetic training step (matmuls of a fixed duration) consumes
           each batch on the GPU; GPU idle fraction = 1 - (time inside steps,
           from CUDA events) / (wall time from first to last step), for
           numafeed and for a torch DataLoader (block-wise IterableDataset,
           pin_memory, 8 workers) over the same dataset.

  python3 bench/torch_goodput.py check   --lib build/release/libnumafeed.so DATASET
  python3 bench/torch_goodput.py goodput --lib build/release/libnumafeed.so DATASET --step-us 300
"""
import argparse
import ctypes as C
import os
import sys
import time

import numpy as np
import torch


class Config(C.Structure):
    _fields_ = [("size", C.c_size_t), ("path", C.c_char_p), ("batch_size", C.c_uint32),
                ("gpus", C.POINTER(C.c_int)), ("ngpus", C.c_int),
                ("node_override", C.POINTER(C.c_int)), ("threads", C.c_uint32),
                ("prefetch", C.c_uint32), ("shuffle", C.c_int), ("seed", C.c_uint64),
                ("shuffle_window", C.c_uint64), ("drop_last", C.c_int), ("rank", C.c_uint32),
                ("world_size", C.c_uint32), ("io", C.c_int), ("io_depth", C.c_uint32),
                ("device", C.c_int), ("sysfs_root", C.c_char_p), ("verbose", C.c_int),
                ("strict", C.c_int), ("start_epoch", C.c_uint64), ("start_batch", C.c_uint64),
                ("follow_symlinks", C.c_int), ("max_ring_bytes", C.c_uint64),
                ("epochs", C.c_uint64), ("copy", C.c_int), ("max_pinned_bytes", C.c_uint64),
                ("decode", C.c_int), ("max_gpu_decode_bytes", C.c_uint64),
                ("pin_memory", C.c_int)]


class Field(C.Structure):
    _fields_ = [("name", C.c_char_p), ("dtype", C.c_char_p), ("ndim", C.c_uint),
                ("shape", C.POINTER(C.c_uint64)), ("record_bytes", C.c_size_t),
                ("host", C.c_void_p), ("device", C.c_void_p)]


class Batch(C.Structure):
    _fields_ = [("size", C.c_size_t), ("gpu", C.c_int), ("epoch", C.c_uint64), ("index", C.c_uint64),
                ("records", C.c_uint32), ("last_in_epoch", C.c_int),
                ("record_ids", C.POINTER(C.c_uint64)), ("nfields", C.c_uint),
                ("fields", C.POINTER(Field)), ("ready_event", C.c_void_p), ("seq_", C.c_uint64)]


EPOCH_END = -10006


class DeviceBytes:
    """A [records, bytes] uint8 view of device memory for torch.as_tensor."""

    def __init__(self, ptr, shape):
        self.__cuda_array_interface__ = {"shape": shape, "typestr": "|u1", "data": (ptr, False),
                                         "version": 3, "stream": None}


def open_loader(lib, path, batch, threads):
    L = C.CDLL(lib)
    L.loader_next_on_stream.argtypes = [C.c_void_p, C.c_int, C.POINTER(Batch), C.c_int,
                                        C.c_void_p]
    L.loader_release_on_stream.argtypes = [C.c_void_p, C.POINTER(Batch), C.c_void_p]
    L.loader_last_error.restype = C.c_size_t
    L.loader_last_error.argtypes = [C.c_void_p, C.c_char_p, C.c_size_t]
    L.numafeed_last_error.restype = C.c_char_p
    L.loader_destroy.argtypes = [C.c_void_p]
    cfg = Config()
    L.loader_config_init(C.byref(cfg))
    assert cfg.size == C.sizeof(Config), (cfg.size, C.sizeof(Config))
    cfg.path = path.encode()
    cfg.batch_size = batch
    cfg.threads = threads
    cfg.world_size = 1
    one = (C.c_int * 1)(torch.cuda.current_device())
    cfg.gpus, cfg.ngpus = one, 1
    h = C.c_void_p()
    rc = L.loader_create(C.byref(cfg), C.byref(h))
    if rc:
        sys.exit(f"loader_create: {rc}: {L.numafeed_last_error().decode()}")
    return L, h


def last_error(L, h):
    """loader_last_error: the loader's message, copied out."""
    buf = C.create_string_buffer(1024)
    L.loader_last_error(h, buf, len(buf))
    return buf.value.decode(errors="replace")


def epochs_of(L, h, stream, epochs):
    """Yield (batch, device tensor) on `stream`; the caller releases."""
    for _ in range(epochs):
        while True:
            b = Batch(size=C.sizeof(Batch))
            rc = L.loader_next_on_stream(h, 0, C.byref(b), -1, stream.cuda_stream)
            if rc == EPOCH_END:
                break
            if rc:
                sys.exit(f"loader_next: {rc}: {last_error(L, h)}")
            f = b.fields[0]
            t = torch.as_tensor(DeviceBytes(f.device, (b.records, f.record_bytes)),
                                device="cuda")
            yield b, t


def check(a):
    L, h = open_loader(a.lib, a.dataset, a.batch, a.threads)
    s = torch.cuda.Stream()  # a non-default torch stream, from torch's own runtime
    sums = []
    n = 0
    with torch.cuda.stream(s):
        for b, t in epochs_of(L, h, s, a.epochs):
            f = b.fields[0]
            host = np.ctypeslib.as_array(C.cast(f.host, C.POINTER(C.c_uint8)),
                                         (b.records * f.record_bytes,))
            want = int(host.astype(np.int64).sum())  # host data is valid until release
            sums.append((t.to(torch.int64).sum(), want))  # queued on s, after the ready event
            L.loader_release_on_stream(h, C.byref(b), s.cuda_stream)  # reuse waits for s
            n += 1
    torch.cuda.synchronize()
    bad = sum(int(got.item()) != want for got, want in sums)
    L.loader_destroy(h)
    print(f"torch interop: {n} batches over {a.epochs} epochs on a torch stream, "
          f"{bad} mismatches")
    return 1 if bad or n == 0 else 0


def make_step(us):
    """A fixed-duration GPU step: k matmuls, k calibrated to take about us."""
    x = torch.randn(2048, 2048, device="cuda", dtype=torch.float16)
    def step(k):
        y = x
        for _ in range(k):
            y = y @ x
        return y
    step(20)  # warm up: cuBLAS picks its kernels on the first calls
    torch.cuda.synchronize()
    e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    e0.record()
    step(50)
    e1.record()
    torch.cuda.synchronize()
    per = e0.elapsed_time(e1) * 1e3 / 50
    k = max(1, round(us / per))
    return (lambda: step(k)), k * per


def run_steps(batches, step):
    """Consume (tensor, release) pairs; return busy and wall GPU time in us."""
    evs = []
    for t, release in batches:
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        t.float().mean()  # the step reads the batch
        step()
        b.record()
        release()
        evs.append((a, b))
    torch.cuda.synchronize()
    busy = sum(a.elapsed_time(b) for a, b in evs) * 1e3
    wall = evs[0][0].elapsed_time(evs[-1][1]) * 1e3
    return busy, wall, len(evs)


def goodput(a):
    global step
    step, step_us = make_step(a.step_us)
    res = {}
    # numafeed
    L, h = open_loader(a.lib, a.dataset, a.batch, a.threads)
    s = torch.cuda.Stream()
    with torch.cuda.stream(s):
        def gen():
            for b, t in epochs_of(L, h, s, a.epochs):
                bb = b
                yield t, (lambda bb=bb: L.loader_release_on_stream(h, C.byref(bb), s.cuda_stream))
        res["numafeed"] = run_steps(gen(), step)
    L.loader_destroy(h)
    # torch DataLoader over the same shards
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import gpu_bench
    from torch.utils.data import DataLoader, IterableDataset

    class DS(IterableDataset):
        def __iter__(self):
            return iter(gpu_bench.ShardStream(a.dataset, a.batch, 0))

    dl = DataLoader(DS(), batch_size=None, num_workers=a.workers, pin_memory=True,
                    persistent_workers=True, prefetch_factor=4)

    def gen_dl():
        for _ in range(a.epochs):
            for b in dl:
                yield b.to("cuda", non_blocking=True), (lambda: None)
    res["DataLoader"] = run_steps(gen_dl(), step)
    print(f"step: {step_us:.0f} us of matmuls per batch, batch {a.batch}, {a.epochs} epochs, "
          f"{time.strftime('%Y-%m-%d')}")
    for k, (busy, wall, n) in res.items():
        print(f"{k:10s}: {n} steps, GPU busy {busy / 1e6:.3f} s of {wall / 1e6:.3f} s "
              f"({busy / n:.0f} us per step), idle fraction {1 - busy / wall:.3f}")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["check", "goodput"])
    ap.add_argument("dataset")
    ap.add_argument("--lib", required=True)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=14)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--step-us", type=float, default=300)
    a = ap.parse_args()
    return check(a) if a.mode == "check" else goodput(a)


if __name__ == "__main__":
    sys.exit(main())
