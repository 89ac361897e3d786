#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""ImageNet-style input on the GPU: JPEG bytes from numafeed, decoded by
nvJPEG (torchvision.io.decode_jpeg(device="cuda")), cropped, resized, flipped
and normalised on the GPU a whole batch at a time. Compared in the same run
with torch's DataLoader over torchvision's ImageFolder (PIL decode and the
usual RandomResizedCrop on the CPU workers) and with decode_jpeg alone on
bytes already in memory, the ceiling of GPU decoding.

    python3 examples/train_jpeg.py prepare DATA --images 2048
    python3 examples/train_jpeg.py bench DATA --workers 0,8,14 --json out.json
    python3 examples/train_jpeg.py train DATA --loader numafeed --steps 100

`prepare` writes an ImageFolder tree DATA/jpeg/CLASS/NNNNN.jpg of JPEGs
(quality 90, about 500x375, 75 KB on average) and packs it with
`numafeed pack --from files` into DATA/numafeed: fields key (str), data
(bytes: the file as it is) and label (int64). `bench` measures images/s of
each input pipeline delivering normalised 3x224x224 batches on the GPU;
`train` feeds a ResNet-18 from either loader.

numafeed hands the JPEG bytes over in page-locked host memory (a device="cpu"
loader: nvJPEG parses the headers on the host and copies the bytes itself);
batch["data"] is a numafeed.Ragged whose records are views of the batch's
slot, so building decode_jpeg's list is a list of views, not copies.
"""
import argparse
import functools
import json
import math
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


@functools.lru_cache(maxsize=None)
def mean_std(device):
    """ImageNet's mean and std on the 0..255 scale, [1, 3, 1, 1] on device:
    made once per device, not copied to the GPU again for every batch."""
    import torch

    return (torch.tensor(MEAN, device=device).view(1, 3, 1, 1) * 255,
            torch.tensor(STD, device=device).view(1, 3, 1, 1) * 255)


# ---------------------------------------------------------------- prepare

def _write_images(job):
    """Writes images [lo, hi) of the tree: smooth colour fields plus grain,
    the size of a photo's JPEG at quality 90 (not a flat or pure-noise one)."""
    from PIL import Image

    root, classes, lo, hi = job
    for i in range(lo, hi):
        rng = np.random.default_rng(i)
        w, h = int(rng.integers(448, 553)), int(rng.integers(336, 415))
        base = Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8))
        base = np.asarray(base.resize((w, h), Image.BICUBIC), dtype=np.int16)
        grain = rng.normal(0, float(rng.uniform(9, 15)), (h, w, 3)).astype(np.int16)
        img = Image.fromarray(np.clip(base + grain, 0, 255).astype(np.uint8))
        cls = f"class_{i % classes:03d}"
        img.save(os.path.join(root, cls, f"{i:07d}.jpg"), "JPEG", quality=90)


def numafeed_command():
    """The `numafeed` command: the one the wheel installed, else a build's."""
    found = shutil.which("numafeed")
    if found:
        return found
    here = os.path.dirname(os.path.abspath(__file__))
    built = os.path.join(here, "..", "build", "release", "src", "cli", "numafeed")
    if os.access(built, os.X_OK):
        return built
    sys.exit("train_jpeg: the numafeed command is not on PATH (pip install numafeed, "
             "or build it: cmake --preset release && cmake --build --preset release)")


def prepare(args):
    root = os.path.join(args.data, "jpeg")
    for c in range(args.classes):
        os.makedirs(os.path.join(root, f"class_{c:03d}"), exist_ok=True)
    procs = args.procs or os.cpu_count() or 1
    step = math.ceil(args.images / procs)
    jobs = [(root, args.classes, lo, min(lo + step, args.images))
            for lo in range(0, args.images, step)]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(procs) as pool:
        list(pool.map(_write_images, jobs))
    nbytes = sum(e.stat().st_size for c in os.scandir(root) for e in os.scandir(c))
    print(f"{args.images} JPEGs, {nbytes / args.images / 1e3:.1f} KB each on average, "
          f"in {root} ({time.perf_counter() - t0:.1f} s)")
    out = os.path.join(args.data, "numafeed")
    subprocess.run([numafeed_command(), "pack", "--out", out, "--force", "--from", "files",
                    "--codec", "none", root], check=True)


# --------------------------------------------------- the GPU side, batched

def crop_boxes(hw, generator=None, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), tries=10):
    """RandomResizedCrop's boxes for a batch at once: (x0, y0, w, h) per
    image from hw [n, 2] (float, on the GPU). torchvision draws up to 10
    times per image; here 10 candidates are drawn for every image together
    and the first that fits is kept (else the whole image, torchvision's
    fallback for a square-ish image)."""
    import torch

    dev, n = hw.device, hw.shape[0]
    h, w = hw[:, 0], hw[:, 1]
    area = (h * w).unsqueeze(1)
    s = torch.empty(n, tries, device=dev).uniform_(*scale, generator=generator)
    r = torch.exp(torch.empty(n, tries, device=dev).uniform_(math.log(ratio[0]),
                                                            math.log(ratio[1]),
                                                            generator=generator))
    cw = torch.sqrt(area * s * r).round()
    ch = torch.sqrt(area * s / r).round()
    ok = (cw <= w.unsqueeze(1)) & (ch <= h.unsqueeze(1)) & (cw > 0) & (ch > 0)
    first = ok.float().argmax(1, keepdim=True)       # the first candidate that fits
    fits = ok.any(1)
    cw = torch.where(fits, cw.gather(1, first).squeeze(1), w)
    ch = torch.where(fits, ch.gather(1, first).squeeze(1), h)
    u = torch.rand(n, 2, device=dev, generator=generator)
    x0 = ((w - cw + 1) * u[:, 0]).floor().clamp(min=0)
    y0 = ((h - ch + 1) * u[:, 1]).floor().clamp(min=0)
    return x0, y0, cw, ch


def resample_weights(start, length, extent, size, span):
    """[n, size, span] weights that resample a crop [start, start + length)
    of a line of `extent` pixels (per image) to `size` pixels with a
    triangle filter as wide as the scale (bilinear when enlarging, an
    antialiasing tent when shrinking, as PIL's bilinear resize), zero past
    each image's extent."""
    import torch

    dev, n = start.device, start.shape[0]
    scale = (length / size).clamp(min=1).view(n, 1, 1)
    centre = start.view(n, 1) + (torch.arange(size, device=dev) + 0.5) * (length / size).view(n, 1) - 0.5
    k = torch.arange(span, device=dev, dtype=torch.float32).view(1, 1, span)
    w = (1 - (k - centre.unsqueeze(2)).abs() / scale).clamp(min=0)
    w = w * (k < extent.view(n, 1, 1))
    return w / w.sum(2, keepdim=True).clamp(min=1e-8)


def gpu_augment(images, size=224, generator=None):
    """RandomResizedCrop(size), a random horizontal flip and normalisation
    of a list of decoded CHW uint8 CUDA images of different sizes, as a few
    whole-batch operations: the images go into one zero-padded batch (one
    multi-tensor copy), each image's crop, resize (antialiased) and flip
    become two small resampling matrices, and the whole batch is resampled
    by two batched matrix products on the tensor cores:
    out[i] = Ry[i] @ image[i] @ Rx[i]^T. No loop over images runs on the
    GPU; the host only reads each image's shape and makes the views the
    copy writes."""
    import torch

    dev, n = images[0].device, len(images)
    shapes = [(im.shape[1], im.shape[2]) for im in images]      # host metadata, no sync
    H, W = max(h for h, _ in shapes), max(w for _, w in shapes)
    padded = torch.zeros(n, 3, H, W, dtype=torch.uint8, device=dev)
    views = [padded[i, :, :h, :w] for i, (h, w) in enumerate(shapes)]
    if hasattr(torch, "_foreach_copy_"):
        torch._foreach_copy_(views, images)                      # one multi-tensor copy
    else:  # torch before 2.1
        for v, im in zip(views, images):
            v.copy_(im)
    pin = dev.type == "cuda"
    hw = torch.tensor(shapes, dtype=torch.float32, pin_memory=pin).to(dev, non_blocking=True)
    x0, y0, cw, ch = crop_boxes(hw, generator)
    ry = resample_weights(y0, ch, hw[:, 0], size, H)             # [n, size, H]
    rx = resample_weights(x0, cw, hw[:, 1], size, W)             # [n, size, W]
    flip = torch.rand(n, device=dev, generator=generator) < 0.5
    rx = torch.where(flip.view(n, 1, 1), rx.flip(1), rx)
    dt = torch.float16 if pin else torch.float32                 # exact for 0..255
    out = ry.to(dt).unsqueeze(1) @ padded.to(dt) @ rx.to(dt).transpose(1, 2).unsqueeze(1)
    mean, std = mean_std(dev)
    return ((out.float() - mean) / std).contiguous(memory_format=torch.channels_last)


class NumafeedJpeg:
    """Batches of (images [B,3,224,224] float32 on the GPU, labels [B])."""

    def __init__(self, data, batch_size, threads=None, seed=0):
        import numafeed
        import torch

        self.loader = numafeed.Loader(os.path.join(data, "numafeed"), batch_size,
                                      device="cpu", shuffle=True, seed=seed, drop_last=True,
                                      threads=threads, ragged="ragged", epochs=None)
        self.gen = torch.Generator(device="cuda")
        self.gen.manual_seed(seed)

    def __iter__(self):
        import torch
        from torchvision.io import ImageReadMode, decode_jpeg

        for batch in self.loader:
            data = batch["data"]                 # a Ragged: values and offsets in the slot
            jpegs = list(torch.split(data.values, data.lengths().tolist()))  # views, no copies
            images = decode_jpeg(jpegs, mode=ImageReadMode.RGB, device="cuda")
            labels = batch["label"].to("cuda", non_blocking=True)
            del jpegs, data, batch               # the slot goes back to the pool
            yield gpu_augment(images, generator=self.gen), labels

    def close(self):
        self.loader.close()


# ------------------------------------------------------- torch's DataLoader

class TorchJpeg:
    """torch's DataLoader at its best here: PIL decode and crop in worker
    processes, uint8 tensors pinned and copied, normalised on the GPU."""

    def __init__(self, data, batch_size, workers):
        from torch.utils.data import DataLoader
        from torchvision import datasets
        from torchvision.transforms import v2

        tf = v2.Compose([v2.RandomResizedCrop(224, antialias=True), v2.RandomHorizontalFlip(),
                         v2.PILToTensor()])
        ds = datasets.ImageFolder(os.path.join(data, "jpeg"), transform=tf)
        kw = dict(num_workers=workers, pin_memory=True, drop_last=True, shuffle=True)
        if workers:
            kw.update(persistent_workers=True, prefetch_factor=4)
        self.loader = DataLoader(ds, batch_size=batch_size, **kw)

    def __iter__(self):
        import torch

        mean, std = mean_std(torch.device("cuda"))
        while True:
            for x, y in self.loader:
                x = x.to("cuda", non_blocking=True).float()
                yield (((x - mean) / std).contiguous(memory_format=torch.channels_last),
                       y.to("cuda", non_blocking=True))

    def close(self):
        """Stops the persistent workers, which would otherwise go on
        prefetching beside the next pipeline measured."""
        it = getattr(self.loader, "_iterator", None)
        if it is not None and hasattr(it, "_shutdown_workers"):
            it._shutdown_workers()
        self.loader = None


def decode_ceiling(data, batch_size, augment=False):
    """decode_jpeg(device="cuda") alone on every file's bytes, already in
    memory as CPU tensors: the GPU decode's ceiling for these images."""
    import torch
    from torchvision.io import ImageReadMode, decode_jpeg

    root = os.path.join(data, "jpeg")
    files = sorted(os.path.join(c.path, e.name) for c in os.scandir(root)
                   for e in os.scandir(c.path))
    blobs = [torch.frombuffer(bytearray(open(f, "rb").read()), dtype=torch.uint8)
             for f in files]

    gen = torch.Generator(device="cuda")
    gen.manual_seed(0)

    def batches():
        while True:
            for i in range(0, len(blobs) - batch_size + 1, batch_size):
                images = decode_jpeg(blobs[i:i + batch_size], mode=ImageReadMode.RGB,
                                     device="cuda")
                yield (gpu_augment(images, generator=gen) if augment else images), None
    return batches()


def measure(batches, batch_size, seconds, warmup=2):
    """images/s from the end of the warm-up batches until `seconds` have
    passed, the GPU's work included (synchronised at both ends)."""
    import torch

    it = iter(batches)
    for _ in range(warmup):
        next(it)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    n = 0
    while True:
        x, _ = next(it)
        n += 1
        if n % 4 == 0 and time.perf_counter() - t0 >= seconds:
            break
    torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    return n * batch_size / dt, n


def bench(args):
    import torch
    import torchvision

    results = {"machine": {"gpu": torch.cuda.get_device_name(0), "cpus": os.cpu_count(),
                           "torch": torch.__version__, "torchvision": torchvision.__version__},
               "date": time.strftime("%Y-%m-%d"), "command": " ".join(sys.argv),
               "batch_size": args.batch_size, "runs": []}

    def report(name, ips, n):
        results["runs"].append({"pipeline": name, "images_per_s": ips, "batches": n})
        print(f"{name:28s} {ips:10.0f} images/s ({n} batches)", flush=True)

    ips, n = measure(decode_ceiling(args.data, args.batch_size), args.batch_size, args.seconds)
    report("decode_jpeg alone (ceiling)", ips, n)
    ips, n = measure(decode_ceiling(args.data, args.batch_size, augment=True), args.batch_size,
                     args.seconds)
    report("decode + GPU crop, in memory", ips, n)
    nf = NumafeedJpeg(args.data, args.batch_size, threads=args.threads)
    ips, n = measure(nf, args.batch_size, args.seconds)
    nf.close()
    report("numafeed + GPU decode/crop", ips, n)
    for w in args.workers:
        tl = TorchJpeg(args.data, args.batch_size, w)
        ips, n = measure(tl, args.batch_size, args.seconds, warmup=2 if w else 1)
        tl.close()
        report(f"DataLoader workers={w}", ips, n)
    runs = {r["pipeline"]: r["images_per_s"] for r in results["runs"]}
    best = max(v for k, v in runs.items() if k.startswith("DataLoader"))
    results["numafeed_over_best_dataloader"] = runs["numafeed + GPU decode/crop"] / best
    results["numafeed_over_decode_ceiling"] = (runs["numafeed + GPU decode/crop"]
                                               / runs["decode_jpeg alone (ceiling)"])
    print(f"numafeed / best DataLoader {results['numafeed_over_best_dataloader']:.2f}x, "
          f"/ decode alone {results['numafeed_over_decode_ceiling']:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


# ------------------------------------------------------------------ train

def train(args):
    import torch
    import torch.nn.functional as F
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=args.classes).cuda()
    model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    if args.loader == "numafeed":
        batches = NumafeedJpeg(args.data, args.batch_size, threads=args.threads)
    else:
        batches = TorchJpeg(args.data, args.batch_size, args.workers[-1])
    it = iter(batches)
    t0 = None
    for step in range(args.steps):
        if step == 2:
            torch.cuda.synchronize()
            t0 = time.perf_counter()
        x, y = next(it)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 20 == 0:
            print(f"step {step} loss {loss.item():.3f}", flush=True)
    torch.cuda.synchronize()
    ips = (args.steps - 2) * args.batch_size / (time.perf_counter() - t0)
    print(json.dumps({"loader": args.loader, "steps": args.steps, "images_per_s": ips}))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    q = sub.add_parser("prepare", help="write the JPEG tree and pack it")
    q.add_argument("data")
    q.add_argument("--images", type=int, default=2048)
    q.add_argument("--classes", type=int, default=10)
    q.add_argument("--procs", type=int, default=0, help="processes writing JPEGs (0: all CPUs)")
    for name in ("bench", "train"):
        q = sub.add_parser(name)
        q.add_argument("data")
        q.add_argument("--batch-size", type=int, default=256)
        q.add_argument("--threads", type=int, default=None, help="numafeed's threads")
        q.add_argument("--workers", default="0,8,14",
                       help="DataLoader worker counts, comma-separated")
        q.add_argument("--classes", type=int, default=10)
        if name == "bench":
            q.add_argument("--seconds", type=float, default=5.0,
                           help="time measured per pipeline after two warm-up batches")
            q.add_argument("--json", help="write the results here")
        else:
            q.add_argument("--loader", choices=("numafeed", "torch"), default="numafeed")
            q.add_argument("--steps", type=int, default=100)
    args = p.parse_args()
    if hasattr(args, "workers"):
        args.workers = [int(w) for w in args.workers.split(",")]
    {"prepare": prepare, "bench": bench, "train": train}[args.cmd](args)


if __name__ == "__main__":
    main()
