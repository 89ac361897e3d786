#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A small image classifier trained on the GPU, fed by torch's DataLoader or
by numafeed.Loader: the swap is the two lines marked SWAP below.

    python3 examples/train_images.py prepare DATA --images 8192
    python3 examples/train_images.py train DATA --loader torch
    python3 examples/train_images.py train DATA --loader numafeed

`prepare` writes DATA/images.npy and DATA/labels.npy (what a torch user
typically has: arrays read through numpy.memmap) and packs the same records
with numafeed.pack into DATA/numafeed. `train` runs a few epochs and prints
one JSON line: images/s, GB/s of input, and the GPU idle fraction, measured
with CUDA events around every training step on the training stream: idle =
1 - (time inside steps) / (time from the first step's start to the last
step's end). Time spent waiting for input, including a host-to-device copy
queued on the training stream, is idle time.
"""
import argparse
import json
import os
import time

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset

import numafeed


class MemmapImages(Dataset):
    """The torch user's dataset: uint8 CHW images and int64 labels in .npy."""

    def __init__(self, root):
        self.images = np.load(os.path.join(root, "images.npy"), mmap_mode="r")
        self.labels = np.load(os.path.join(root, "labels.npy"), mmap_mode="r")

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return {"image": torch.from_numpy(np.array(self.images[i])),
                "label": torch.tensor(int(self.labels[i]))}


def make_model(width, classes=1000):
    def block(cin, cout, stride):
        return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False),
                             nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

    return nn.Sequential(block(3, width, 2), block(width, width, 2), block(width, 2 * width, 2),
                         block(2 * width, 4 * width, 2), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4 * width, classes))


def prepare(args):
    os.makedirs(args.data, exist_ok=True)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(args.images, 3, 224, 224), dtype=np.uint8)
    labels = rng.integers(0, 1000, size=args.images).astype(np.int64)
    np.save(os.path.join(args.data, "images.npy"), images)
    np.save(os.path.join(args.data, "labels.npy"), labels)
    numafeed.pack(os.path.join(args.data, "numafeed"), {"image": images, "label": labels},
                  codec="none", block_bytes=4 << 20, force=True)


def train(args):
    torch.manual_seed(0)
    dev = torch.device("cuda", 0)
    torch.cuda.set_device(dev)
    if args.loader == "torch":
        # SWAP (before): torch's DataLoader, its best configuration here
        loader = DataLoader(MemmapImages(args.data), batch_size=args.batch_size, shuffle=True,
                            num_workers=args.workers, pin_memory=True, persistent_workers=True,
                            drop_last=True)
    else:
        # SWAP (after): numafeed, batches already on the GPU
        loader = numafeed.Loader(os.path.join(args.data, "numafeed"), args.batch_size,
                                 device="cuda:0", drop_last=True)
    model = make_model(args.width).to(dev).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    mean = torch.tensor([0.485, 0.456, 0.406], device=dev).view(1, 3, 1, 1) * 255
    std = torch.tensor([0.229, 0.224, 0.225], device=dev).view(1, 3, 1, 1) * 255

    events, images, t_first = [], 0, None
    for epoch in range(args.epochs):
        for batch in loader:  # the loop is the same for both loaders
            x = batch["image"].to(dev, non_blocking=True)  # a no-op for numafeed's
            y = batch["label"].to(dev, non_blocking=True)
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            x = ((x.float() - mean) / std).contiguous(memory_format=torch.channels_last)
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = loss_fn(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            end.record()
            del batch, x, y
            if epoch >= 1:  # epoch 0 warms up (cuDNN autotuning, page cache, workers)
                if t_first is None:
                    t_first = time.perf_counter()
                events.append((start, end))
                images += args.batch_size
    torch.cuda.synchronize()
    wall_s = time.perf_counter() - t_first
    busy_ms = sum(s.elapsed_time(e) for s, e in events)
    span_ms = events[0][0].elapsed_time(events[-1][1])
    out = dict(loader=args.loader, batch_size=args.batch_size, width=args.width,
               epochs_timed=args.epochs - 1, steps=len(events), images_per_s=images / wall_s,
               input_gb_per_s=images * 3 * 224 * 224 / wall_s / 1e9,
               step_ms_median=float(np.median([s.elapsed_time(e) for s, e in events])),
               gpu_idle_fraction=1 - busy_ms / span_ms, final_loss=float(loss.detach()))
    if args.loader == "numafeed":
        st = loader.stats()
        out["numafeed"] = dict(wait_p50_us=st["wait_p50_ns"] / 1e3,
                               wait_p99_us=st["wait_p99_ns"] / 1e3,
                               threads=st["pool"]["threads"], ring=st["pool"]["prefetch"],
                               registered=st["pool"]["registered"])
        loader.close()
    else:
        out["workers"] = args.workers
    print(json.dumps(out), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare", help="write the .npy arrays and the numafeed dataset")
    p.add_argument("data")
    p.add_argument("--images", type=int, default=8192)
    t = sub.add_parser("train", help="train and print throughput and GPU idle fraction")
    t.add_argument("data")
    t.add_argument("--loader", choices=("torch", "numafeed"), required=True)
    t.add_argument("--epochs", type=int, default=3, help="the first is warm-up (default 3)")
    t.add_argument("--batch-size", type=int, default=256)
    t.add_argument("--workers", type=int, default=8, help="DataLoader workers (default 8)")
    t.add_argument("--width", type=int, default=64, help="model width (default 64)")
    args = ap.parse_args()
    prepare(args) if args.cmd == "prepare" else train(args)


if __name__ == "__main__":
    main()
