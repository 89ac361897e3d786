#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""ImageNet-style input on the GPU: JPEG bytes from numafeed, decoded by
nvJPEG (torchvision.io.decode_jpeg(device="cuda")), cropped, resized, flipped
and normalised on the GPU a whole batch at a time. Compared in the same run
with torch's DataLoader over torchvision's ImageFolder (PIL decode and the
usual RandomResizedCrop on the CPU workers) and with decode_jpeg alone on
bytes already in memory, the ceiling of GPU decoding.

    python3 examples/train_jpeg.py prepare DATA --images 2048
    python3 examples/train_jpeg.py bench DATA --workers 0,8,14 --rounds 3 --json out.json
    python3 examples/train_jpeg.py train DATA --loader numafeed --steps 100

`prepare` writes an ImageFolder tree DATA/jpeg/CLASS/NNNNN.jpg of JPEGs
(quality 90, about 500x375, 75 KB on average) and packs it with
`numafeed pack --from files` into DATA/numafeed: fields key (str), data
(bytes: the file as it is) and label (int64). `bench` measures images/s of
each input pipeline delivering normalised 3x224x224 batches on the GPU;
`train` feeds a ResNet-18 from either loader.

numafeed hands the JPEG bytes over in host memory registered with CUDA (a
device="cpu" loader with pin_memory=True: nvJPEG parses the headers on the
host and copies the bytes by DMA); batch["data"] is a numafeed.Ragged whose
records are views of the batch's slot, so building decode_jpeg's list is a
list of views, not copies.

decode_jpeg(device="cuda") returns only when its batch is decoded (it waits
for its own stream, with the GIL released), so the Python thread that calls
it can do nothing else meanwhile. The pipelines here therefore decode in a
thread of their own, a batch or two ahead (Ahead), while another lists the
next batch's JPEGs and the caller's thread crops and resizes the previous
batch: the crop's kernels run on the SMs beside the JPEG engines' decode,
and its Python work hides behind the decode's wait. The crop is about 30
kernels a batch, none per image (gpu_augment), on a CUDA stream of its own.
"""
import argparse
import functools
import json
import math
import os
import queue
import shutil
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


@functools.lru_cache(maxsize=None)
def norm_affine(device):
    """(1 / std, -mean / std) on the 0..255 scale, [1, 3, 1, 1] float32 on
    device: x * scale + shift normalises x."""
    mean, std = mean_std(device)
    return 1 / std, -mean / std


@functools.lru_cache(maxsize=None)
def mean_std(device):
    """ImageNet's mean and std on the 0..255 scale, [1, 3, 1, 1] on device:
    made once per device, not copied to the GPU again for every batch."""
    import torch

    return (torch.tensor(MEAN, device=device).view(1, 3, 1, 1) * 255,
            torch.tensor(STD, device=device).view(1, 3, 1, 1) * 255)


class Ahead:
    """The items of `items`, produced in a thread of their own up to `depth`
    ahead of the consumer. An exception in the producer is raised in the
    consumer at the item where it happened, and at every call after; close()
    stops the producer."""

    _END = object()

    def __init__(self, items, depth=2):
        self._q = queue.Queue(depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(items,), daemon=True,
                                        name="numafeed-ahead")
        self._thread.start()

    def _put(self, item):
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.1)
                return True
            except queue.Full:
                pass
        return False

    def _run(self, items):
        try:
            for item in items:
                if not self._put(item):
                    return
            self._put(self._END)
        except BaseException as e:  # handed to the consumer, raised there
            self._put(e)

    def __iter__(self):
        return self

    def __next__(self):
        item = self._q.get()
        if item is self._END:
            self._q.put(item)                    # stays ended
            raise StopIteration
        if isinstance(item, BaseException):
            self._q.put(item)                    # raised again by a later call
            raise item
        return item

    def close(self):
        self._stop.set()
        self._thread.join()


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


def resample_weights(start, length, extent, size, span, taps, flip=None, dtype=None):
    """[n, size, span] weights that resample a crop [start, start + length)
    of a line of `extent` pixels (per image, [n] tensors) to `size` pixels
    with a triangle filter as wide as the scale (bilinear when enlarging,
    an antialiasing tent when shrinking, as PIL's bilinear resize), zero
    outside the image, each output's weights summing to one; output o
    mirrored to size - 1 - o where flip. Each output reads at most `taps`
    neighbouring pixels (2 * ceil(largest scale) + 1 is enough): the
    weights are computed for those only, [n, size, taps], and scattered into
    the dense matrix."""
    import torch

    dev, n = start.device, start.shape[0]
    o = torch.arange(size, device=dev, dtype=torch.float32).expand(n, size)
    if flip is not None:
        o = torch.where(flip.view(n, 1), size - 1 - o, o)
    step = (length / size).view(n, 1)
    scale = step.clamp(min=1).view(n, 1, 1)
    centre = (start.view(n, 1) + (o + 0.5) * step - 0.5).unsqueeze(2)       # [n, size, 1]
    k = torch.floor(centre - scale) + 1 + torch.arange(taps, device=dev).view(1, 1, taps)
    w = (1 - (k - centre).abs() / scale).clamp(min=0)
    w = w * ((k >= 0) & (k < extent.view(n, 1, 1)))
    w = w / w.sum(2, keepdim=True).clamp(min=1e-8)
    dense = torch.zeros(n, size, span, dtype=dtype or w.dtype, device=dev)
    return dense.scatter_add_(2, k.clamp(0, span - 1).long(), w.to(dense.dtype))


def padded_rows(images, H, W, dtype):
    """The batch as [n, 3 * H, W] of dtype: row (i, c, y) is row y of
    channel c of image i, its first w_i columns the image's. The images are
    concatenated (one copy) and each row gathered from there in one indexed
    copy of W-wide windows; what lies past an image's width or height (the
    next row's pixels, or its own first row) is finite and meets a zero
    weight."""
    import torch

    dev, n = images[0].device, len(images)
    flat = torch.cat([im.reshape(-1) for im in images]
                     + [torch.empty(W, dtype=images[0].dtype, device=dev)]).to(dtype)
    meta, base = [], 0
    for im in images:
        meta.append((im.shape[1], im.shape[2], base))
        base += im.numel()
    meta = torch.tensor(meta, dtype=torch.int64,
                        pin_memory=dev.type == "cuda").to(dev, non_blocking=True)
    h, w, b = (m.view(n, 1, 1) for m in meta.unbind(1))
    c = torch.arange(3, device=dev).view(1, 3, 1)
    y = torch.arange(H, device=dev).view(1, 1, H)
    first = torch.where(y < h, b + (c * h + y) * w, b)          # [n, 3, H] row starts
    windows = flat.as_strided((flat.numel() - W + 1, W), (1, 1))  # every W-wide window
    return windows[first.view(-1)].view(n, 3 * H, W)


def gpu_augment(images, size=224, generator=None):
    """RandomResizedCrop(size), a random horizontal flip and normalisation
    of a list of decoded CHW uint8 CUDA images of different sizes, as a few
    whole-batch operations: the images become one padded batch (padded_rows:
    a concatenation and one gather), each image's crop, resize (antialiased)
    and flip become two small resampling matrices Ry [size, H] and
    Rx [size, W], and the whole batch is resampled by two batched matrix
    products on the tensor cores, out[i] = Ry[i] @ image[i] @ Rx[i]^T,
    arranged so that no operand is broadcast and the result lands in
    channels_last order. About 30 kernels a batch, none per image; the host
    reads each image's shape."""
    import torch

    dev, n = images[0].device, len(images)
    shapes = [(im.shape[1], im.shape[2]) for im in images]      # host metadata, no sync
    H, W = max(h for h, _ in shapes), max(w for _, w in shapes)
    pin = dev.type == "cuda"
    dt = torch.float16 if pin else torch.float32                 # exact for 0..255
    hw = torch.tensor(shapes, dtype=torch.float32, pin_memory=pin).to(dev, non_blocking=True)
    x0, y0, cw, ch = crop_boxes(hw, generator)
    flip = torch.rand(n, device=dev, generator=generator) < 0.5
    taps = 2 * math.ceil(max(H, W) / size) + 1                   # a crop is at most the image
    ry = resample_weights(y0, ch, hw[:, 0], size, H, taps, dtype=dt)        # [n, size, H]
    rx = resample_weights(x0, cw, hw[:, 1], size, W, taps, flip, dtype=dt)  # [n, size, W]
    # columns first, the channels riding along as rows: [n, 3H, W] @ [n, W, size]
    t = torch.bmm(padded_rows(images, H, W, dt), rx.transpose(1, 2))
    # then rows: [n, size, H] @ [n, H, size * 3], columns ordered (x, channel)
    t = t.view(n, 3, H, size).permute(0, 2, 3, 1).reshape(n, H, size * 3)
    out = torch.bmm(ry, t).view(n, size, size, 3).permute(0, 3, 1, 2)  # channels_last
    # normalised in one multiply-add (each row of Ry and Rx sums to one, so
    # normalising after the resampling equals normalising before)
    scale, shift = norm_affine(dev)
    return torch.addcmul(shift, out, scale).contiguous(memory_format=torch.channels_last)


def decoded(jpegs, stream):
    """(decoded images, labels, ready) for each (JPEGs, labels): nvJPEG's
    output is allocated on `stream` (the decoding thread's own, not the
    default stream) and `ready` is an event on it that follows the
    decode."""
    import torch
    from torchvision.io import ImageReadMode, decode_jpeg

    for views, labels in jpegs:
        with torch.cuda.stream(stream):          # not across the yield: the caller's
            images = decode_jpeg(views, mode=ImageReadMode.RGB, device="cuda")
            ready = torch.cuda.Event()           # stream stays its own
            ready.record(stream)
        del views                                # decoded: the slot goes back to the pool
        yield images, labels, ready


def augmented(source, generator, stream):
    """gpu_augment of each (images, labels, ready) from `source`, run on
    `stream`, a stream of its own (on the H200 the pipeline ran 6% faster
    with the crop and the decode's output off the default stream than on
    it: docs/benchmarks.md). Each batch's images are held until its crop has run
    on the GPU (the next decode may otherwise be given their memory while the
    crop still reads it); the result is made ready for, and recorded on, the
    caller's stream. Labels come as host tensors and go to the GPU here."""
    import torch

    consumer = torch.cuda.current_stream()
    held = None
    for images, labels, ready in source:
        with torch.cuda.stream(stream):
            stream.wait_event(ready)
            out = gpu_augment(images, generator=generator)
            if labels is not None:
                labels = labels.to("cuda", non_blocking=True)
            done = torch.cuda.Event()
            done.record(stream)
        if held is not None:
            held[1].synchronize()                # the last batch's crop has read its images
        held = (images, done)                    # this batch's, freed after its crop, next turn
        consumer.wait_event(done)
        out.record_stream(consumer)
        if labels is not None:
            labels.record_stream(consumer)
        yield out, labels


class NumafeedJpeg:
    """Batches of (images [B,3,224,224] float32 on the GPU, labels [B]).
    Three threads, each a batch or two ahead of the next (Ahead): one takes
    numafeed's batches and lists their JPEGs (views of the batch's slot),
    one decodes them with nvJPEG, and the caller's crops and resizes
    (overlap=False: all three in the caller's thread, one after another).
    pin_memory: the loader's ring is registered with CUDA, so nvJPEG reads
    the JPEGs from page-locked memory by DMA."""

    def __init__(self, data, batch_size, threads=None, seed=0, overlap=True, depth=2,
                 pin_memory=True):
        import numafeed
        import torch

        self.loader = numafeed.Loader(os.path.join(data, "numafeed"), batch_size,
                                      device="cpu", shuffle=True, seed=seed, drop_last=True,
                                      threads=threads, ragged="ragged", epochs=None,
                                      pin_memory=pin_memory)
        self.gen = torch.Generator(device="cuda")
        self.gen.manual_seed(seed)
        self.decode_stream, self.crop_stream = torch.cuda.Stream(), torch.cuda.Stream()
        self.overlap, self.depth = overlap, depth
        self.stages = []

    def jpegs(self):
        """(the batch's JPEGs, its labels) for each of the loader's batches;
        the JPEGs are views that hold the batch's slot, the labels a copy
        (a copy to the GPU from the slot itself could still be queued when
        the slot is refilled)."""
        import torch

        for batch in self.loader:
            data = batch["data"]                 # a Ragged: values and offsets in the slot
            yield (list(torch.split(data.values, data.lengths().tolist())),
                   batch["label"].clone())

    def __iter__(self):
        if self.overlap:
            self.stages.append(Ahead(self.jpegs(), self.depth))
            self.stages.append(Ahead(decoded(self.stages[-1], self.decode_stream), self.depth))
            source = self.stages[-1]
        else:
            source = decoded(self.jpegs(), self.decode_stream)
        yield from augmented(source, self.gen, self.crop_stream)

    def close(self):
        while self.stages:                       # the decoding thread first
            self.stages.pop().close()
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


def decode_ceiling(data, batch_size, augment=False, pinned=False):
    """decode_jpeg(device="cuda") alone on every file's bytes, already in
    memory as CPU tensors (page-locked ones if pinned): the GPU decode's
    ceiling for these images. With augment, each batch is also cropped and
    resized as numafeed's are (in the caller's thread while the next batch
    decodes in another)."""
    import torch
    from torchvision.io import ImageReadMode, decode_jpeg

    root = os.path.join(data, "jpeg")
    files = sorted(os.path.join(c.path, e.name) for c in os.scandir(root)
                   for e in os.scandir(c.path))
    blobs = [torch.frombuffer(bytearray(open(f, "rb").read()), dtype=torch.uint8)
             for f in files]
    if pinned:
        blobs = [b.pin_memory() for b in blobs]

    def batches():
        while True:
            for i in range(0, len(blobs) - batch_size + 1, batch_size):
                yield blobs[i:i + batch_size], None

    if not augment:
        def alone():
            for jpegs, _ in batches():
                yield decode_jpeg(jpegs, mode=ImageReadMode.RGB, device="cuda"), None
        return alone()

    gen = torch.Generator(device="cuda")
    gen.manual_seed(0)

    def with_crop():
        source = Ahead(decoded(batches(), torch.cuda.Stream()))
        try:
            yield from augmented(source, gen, torch.cuda.Stream())
        finally:
            source.close()
    return with_crop()


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
        next(it)
        n += 1
        if n % 4 == 0 and time.perf_counter() - t0 >= seconds:
            break
    torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    if hasattr(it, "close"):
        it.close()                               # a generator: its producer thread stops
    return n * batch_size / dt, n


def bench(args):
    import torch
    import torchvision

    results = {"machine": {"gpu": torch.cuda.get_device_name(0), "cpus": os.cpu_count(),
                           "torch": torch.__version__, "torchvision": torchvision.__version__},
               "date": time.strftime("%Y-%m-%d"), "command": " ".join(sys.argv),
               "batch_size": args.batch_size, "runs": []}

    pipelines = [
        ("decode_jpeg alone (ceiling)", lambda: decode_ceiling(args.data, args.batch_size)),
        ("decode_jpeg alone, page-locked bytes",
         lambda: decode_ceiling(args.data, args.batch_size, pinned=True)),
        ("decode + GPU crop, in memory",
         lambda: decode_ceiling(args.data, args.batch_size, augment=True)),
    ]
    for how, kw in (("", {}), (", ring not pinned", {"pin_memory": False}),
                    (", one thread", {"overlap": False})):
        pipelines.append(("numafeed + GPU decode/crop" + how,
                          functools.partial(NumafeedJpeg, args.data, args.batch_size,
                                            threads=args.threads, **kw)))
    for w in args.workers:
        pipelines.append((f"DataLoader workers={w}",
                          functools.partial(TorchJpeg, args.data, args.batch_size, w)))
    got = {name: [] for name, _ in pipelines}
    for r in range(args.rounds):          # every pipeline once per round, in turn
        for name, make in pipelines:
            source = make()
            warm = 1 if name == "DataLoader workers=0" else 2
            ips, n = measure(source, args.batch_size, args.seconds, warmup=warm)
            if hasattr(source, "close"):
                source.close()
            got[name].append(ips)
            print(f"round {r}  {name:40s} {ips:10.0f} images/s ({n} batches)", flush=True)
    for name, vals in got.items():
        results["runs"].append({"pipeline": name, "images_per_s": statistics.median(vals),
                                "rounds": vals})
    runs = {r["pipeline"]: r["images_per_s"] for r in results["runs"]}
    best = max(v for k, v in runs.items() if k.startswith("DataLoader"))
    nf = runs["numafeed + GPU decode/crop"]
    results["numafeed_over_best_dataloader"] = nf / best
    results["numafeed_over_decode_ceiling"] = nf / runs["decode_jpeg alone (ceiling)"]
    results["numafeed_over_decode_pinned"] = nf / runs["decode_jpeg alone, page-locked bytes"]
    # the same ratio round by round (each pipeline's rounds ran one after another)
    results["numafeed_over_decode_ceiling_rounds"] = [
        a / b for a, b in zip(got["numafeed + GPU decode/crop"],
                              got["decode_jpeg alone (ceiling)"])]
    print(f"medians of {args.rounds} rounds: numafeed / best DataLoader "
          f"{results['numafeed_over_best_dataloader']:.2f}x, / decode alone "
          f"{results['numafeed_over_decode_ceiling']:.2f} (/ decode alone from page-locked "
          f"bytes {results['numafeed_over_decode_pinned']:.2f})")
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
            q.add_argument("--rounds", type=int, default=1,
                           help="measure every pipeline this many times, in turn; the "
                                "medians are reported")
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
