# SPDX-License-Identifier: Apache-2.0
"""examples/train_jpeg.py's batch-level GPU augmentation, run on the CPU
(the same tensor operations; float32 instead of float16): padded_rows lays
every image's rows where the matrix products expect them, gpu_augment equals
a per-image reference (crop, antialiased resize and flip as two dense
resampling matrices per image) and normalises, and Ahead hands its items
over in order, raises its producer's exception where it happened (and at
every call after) and stops its thread on close."""
import importlib.util
import math
import os
import threading

import pytest

torch = pytest.importorskip("torch")
EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "train_jpeg.py")


@pytest.fixture(scope="module")
def tj():
    spec = importlib.util.spec_from_file_location("train_jpeg", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def images(n, seed, lo=(40, 50), hi=(90, 120)):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        h = int(torch.randint(lo[0], hi[0], (), generator=g))
        w = int(torch.randint(lo[1], hi[1], (), generator=g))
        out.append(torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=g))
    return out


def test_padded_rows_puts_each_row_in_place(tj):
    ims = images(7, 1)
    H, W = max(i.shape[1] for i in ims), max(i.shape[2] for i in ims)
    rows = tj.padded_rows(ims, H, W, torch.float32).view(len(ims), 3, H, W)
    for i, im in enumerate(ims):
        h, w = im.shape[1:]
        assert torch.equal(rows[i, :, :h, :w], im.float())


def reference(tj, ims, size, seed):
    """Per image: the crop box and flip drawn as gpu_augment draws them,
    then Ry @ image @ Rx^T with the dense triangle-filter weights written
    out directly, then normalisation."""
    g = torch.Generator().manual_seed(seed)
    hw = torch.tensor([(i.shape[1], i.shape[2]) for i in ims], dtype=torch.float32)
    x0, y0, cw, ch = tj.crop_boxes(hw, g)
    flip = torch.rand(len(ims), generator=g) < 0.5
    mean, std = tj.mean_std(torch.device("cpu"))

    def dense(start, length, extent):
        step = length / size
        scale = max(step, 1.0)
        c = start + (torch.arange(size) + 0.5) * step - 0.5
        k = torch.arange(extent, dtype=torch.float32)
        w = (1 - (k.view(1, -1) - c.view(-1, 1)).abs() / scale).clamp(min=0)
        return w / w.sum(1, keepdim=True)

    out = []
    for i, im in enumerate(ims):
        ry = dense(float(y0[i]), float(ch[i]), im.shape[1])
        rx = dense(float(x0[i]), float(cw[i]), im.shape[2])
        if flip[i]:
            rx = rx.flip(0)
        out.append(ry @ im.float() @ rx.T)
    return (torch.stack(out) - mean) / std


@pytest.mark.parametrize("size,lo,hi", [(32, (40, 50), (90, 120)), (96, (20, 30), (40, 60))])
def test_gpu_augment_equals_a_per_image_reference(tj, size, lo, hi):
    ims = images(9, 2, lo, hi)                 # shrinking, and enlarging
    got = tj.gpu_augment(ims, size=size, generator=torch.Generator().manual_seed(5))
    want = reference(tj, ims, size, 5)
    assert got.shape == (9, 3, size, size)
    assert got.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(got, want, atol=1e-4), (got - want).abs().max()


def test_gpu_augment_of_a_flat_image_is_its_normalised_colour(tj):
    colours = [(0, 128, 255), (17, 200, 3), (90, 90, 90)]
    ims = [torch.tensor(c, dtype=torch.uint8).view(3, 1, 1).expand(3, 50 + 7 * i, 80 - 9 * i)
           .contiguous() for i, c in enumerate(colours)]
    out = tj.gpu_augment(ims, size=24, generator=torch.Generator().manual_seed(0))
    mean, std = tj.mean_std(torch.device("cpu"))
    want = (torch.tensor(colours, dtype=torch.float32).view(3, 3, 1, 1) - mean) / std
    assert torch.allclose(out, want.expand_as(out), atol=1e-4)


def test_resample_weights_rows_sum_to_one_within_the_image(tj):
    n, size, span = 4, 16, 60
    start = torch.tensor([0.0, 5.0, 10.0, 0.0])
    length = torch.tensor([60.0, 20.0, 8.0, 40.0])
    extent = torch.tensor([60.0, 30.0, 50.0, 40.0])
    taps = 2 * math.ceil(span / size) + 1
    w = tj.resample_weights(start, length, extent, size, span, taps)
    assert w.shape == (n, size, span)
    assert torch.allclose(w.sum(2), torch.ones(n, size), atol=1e-6)
    for i in range(n):
        assert not w[i, :, int(extent[i]):].any()          # nothing past the image


def test_ahead_keeps_order_raises_where_it_failed_and_stops(tj):
    assert list(tj.Ahead(iter(range(50)), depth=2)) == list(range(50))

    def failing():
        yield 1
        yield 2
        raise ValueError("third item")

    it = tj.Ahead(failing())
    assert next(it) == 1 and next(it) == 2
    with pytest.raises(ValueError, match="third item"):
        next(it)
    # and again on the next call, which would otherwise wait for ever
    again = []
    t = threading.Thread(target=lambda: again.append(pytest.raises(ValueError, next, it)),
                         daemon=True)
    t.start()
    t.join(10)
    assert not t.is_alive() and again

    def endless():
        i = 0
        while True:
            yield i
            i += 1

    it = tj.Ahead(endless(), depth=3)
    assert [next(it) for _ in range(5)] == [0, 1, 2, 3, 4]
    it.close()
    assert not any(t.name == "numafeed-ahead" and t.is_alive() for t in threading.enumerate())
