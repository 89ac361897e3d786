#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A small GPT trained on byte-level tokens, nanoGPT style, fed by numafeed's
Loader as one stream across epochs, or by nanoGPT's own random-offset
get_batch over the memmapped token file, for comparison.

    python3 examples/train_tokens.py prepare DATA
    python3 examples/train_tokens.py train DATA --loader numafeed --steps 2000
    python3 examples/train_tokens.py train DATA --loader random --steps 2000
    python3 examples/train_tokens.py train DATA --steps 50 --device cpu    # seconds on a CPU

`prepare` needs no network: its corpus is the text of the Python standard
library's .py files and the documentation under sys.prefix, each byte one
token (a vocabulary of 256), written as nanoGPT's prepare.py writes
train.bin and val.bin: flat little-endian uint16. It then packs train.bin
into DATA/numafeed: windows of seq_len + 1 tokens (inputs, and targets
shifted by one) at tokens 0, S, 2S, ... (S = seq_len), one fixed field
`tokens`; with `numafeed pack --from tokens` where the numafeed command has
it, else with numafeed.pack, which writes the same records.

The tokens are stored as uint16 where this torch takes uint16 through
DLPack (torch.uint16, torch 2.3 and later); an older torch cannot, and the
remedy docs/python.md gives is a wider signed dtype at pack time, so the
records are stored as int32 there (twice the bytes, the same values).

`train` writes the loss curve as JSON lines (step, loss, tokens seen,
seconds) to --out (default DATA/loss-LOADER.jsonl) and prints a summary.
"""
import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import sysconfig
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import numafeed

# ---- the corpus ------------------------------------------------------------


def corpus_files():
    """The standard library's .py files and the docs under sys.prefix, in a
    fixed order."""
    roots = [sysconfig.get_paths()["stdlib"], os.path.join(sys.base_prefix, "share", "doc")]
    out = []
    for root in roots:
        for d, dirs, files in os.walk(root):
            dirs[:] = sorted(x for x in dirs if x not in ("__pycache__", "test", "tests"))
            for f in sorted(files):
                if f.endswith((".py", ".txt", ".rst", ".md")) or f in ("README", "copyright"):
                    out.append(os.path.join(d, f))
    return out


def read_corpus(max_bytes):
    parts, size = [], 0
    for path in corpus_files():
        try:
            with open(path, "rb") as f:
                data = f.read(max_bytes - size)
        except OSError:
            continue
        parts.append(data)
        size += len(data)
        if size >= max_bytes:
            break
    return b"".join(parts)


def torch_takes_uint16():
    """Whether torch.from_dlpack accepts a uint16 array (torch 2.3 and later)."""
    try:
        torch.from_dlpack(np.zeros(1, np.uint16))
        return True
    except (RuntimeError, TypeError, BufferError):
        return False


def cli_packs_tokens():
    """The numafeed command, when it is there and has `pack --from tokens`."""
    cli = shutil.which("numafeed") or os.environ.get("NUMAFEED_CLI")
    if not cli:
        return None
    r = subprocess.run([cli, "pack", "--help"], capture_output=True, text=True)
    return cli if "--from" in r.stdout + r.stderr and "tokens" in r.stdout + r.stderr else None


def prepare(args):
    os.makedirs(args.data, exist_ok=True)
    text = read_corpus(args.max_bytes)
    tokens = np.frombuffer(text, dtype=np.uint8).astype(np.uint16)  # one byte, one token
    split = int(len(tokens) * 0.9)
    tokens[:split].tofile(os.path.join(args.data, "train.bin"))
    tokens[split:].tofile(os.path.join(args.data, "val.bin"))

    out = os.path.join(args.data, "numafeed")
    dtype = args.dtype if args.dtype != "auto" else (
        "uint16" if torch_takes_uint16() else "int32")
    S = args.seq_len
    cli = cli_packs_tokens() if dtype == "uint16" else None
    if cli:
        subprocess.run([cli, "pack", "--out", out, "--from", "tokens", "--dtype", "uint16",
                        "--seq-len", str(S), "--force", "--quiet",
                        os.path.join(args.data, "train.bin")], check=True)
    else:
        train = tokens[:split]
        n = (len(train) - 1) // S  # windows of S + 1 at a stride of S that fit
        windows = np.lib.stride_tricks.as_strided(
            train, shape=(n, S + 1), strides=(S * train.strides[0], train.strides[0]))
        if dtype != "uint16":
            windows = windows.astype(dtype)  # a copy, 4 bytes a token
        numafeed.pack(out, windows, name="tokens", force=True, progress=False)
    m = json.load(open(os.path.join(out, "manifest.json")))
    print(json.dumps(dict(corpus_bytes=len(text), train_tokens=split,
                          val_tokens=len(tokens) - split, records=m["records"],
                          fields=m["fields"], packed_by="numafeed pack" if cli else
                          "numafeed.pack")))


# ---- the model (nanoGPT's, small) --------------------------------------------


class Block(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))
        self.heads = heads

    def attention(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.heads, C // self.heads).transpose(1, 2) for t in (q, k, v))
        if hasattr(F, "scaled_dot_product_attention"):
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:  # torch before 2.0
            att = (q @ k.transpose(-2, -1)) / math.sqrt(k.shape[-1])
            mask = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
            y = att.masked_fill(~mask, float("-inf")).softmax(-1) @ v
        return self.proj(y.transpose(1, 2).reshape(B, T, C))

    def forward(self, x):
        x = x + self.attention(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    def __init__(self, vocab, block_size, layers, heads, d):
        super().__init__()
        self.tok, self.pos = nn.Embedding(vocab, d), nn.Embedding(block_size, d)
        self.blocks = nn.Sequential(*[Block(d, heads) for _ in range(layers)])
        self.ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)
        self.head.weight = self.tok.weight  # tied, as in nanoGPT
        for m in self.modules():  # nanoGPT's initialisation: the first loss is about ln(256)
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)

    def forward(self, idx, targets):
        pos = torch.arange(idx.shape[1], device=idx.device)
        x = self.ln(self.blocks(self.tok(idx) + self.pos(pos)))
        logits = self.head(x)
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.reshape(-1))


# ---- the two ways to get a batch -------------------------------------------


def random_batches(args, block_size, device):
    """nanoGPT's get_batch: random offsets into the memmapped train.bin."""
    def get_batch():
        data = np.memmap(os.path.join(args.data, "train.bin"), dtype=np.uint16, mode="r")
        ix = torch.randint(len(data) - block_size, (args.batch_size,))
        x = torch.stack([torch.from_numpy((data[i:i + block_size]).astype(np.int64)) for i in ix])
        y = torch.stack([torch.from_numpy((data[i + 1:i + 1 + block_size]).astype(np.int64))
                         for i in ix])
        return x.to(device, non_blocking=True), y.to(device, non_blocking=True)

    return get_batch, None


def numafeed_batches(args, block_size, device):
    # In nanoGPT's train.py, get_batch (the function above) becomes:
    #
    #   loader = numafeed.Loader(os.path.join(data_dir, 'numafeed'), batch_size,
    #                            device=device, epochs=None)   # one stream, no epoch ends
    #   batches = iter(loader)
    #   def get_batch(split):
    #       tokens = next(batches).long()    # [batch_size, block_size + 1], on device already
    #       return tokens[:, :-1], tokens[:, 1:]
    #
    # and a checkpoint saves loader.state_dict() beside the model to resume
    # the stream exactly (loader.load_state_dict(checkpoint['loader'])).
    loader = numafeed.Loader(os.path.join(args.data, "numafeed"), args.batch_size,
                             device=str(device), epochs=None, seed=args.seed)
    batches = iter(loader)

    def get_batch():
        tokens = next(batches).long()
        return tokens[:, :-1], tokens[:, 1:]

    return get_batch, loader


def train(args):
    torch.manual_seed(args.seed)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    manifest = json.load(open(os.path.join(args.data, "numafeed", "manifest.json")))
    block_size = manifest["fields"][0]["shape"][0] - 1
    make = numafeed_batches if args.loader == "numafeed" else random_batches
    get_batch, loader = make(args, block_size, device)
    model = GPT(256, block_size, args.layers, args.heads, args.width).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr)
    out = args.out or os.path.join(args.data, f"loss-{args.loader}.jsonl")
    t0 = time.perf_counter()
    with open(out, "w") as f:
        for step in range(1, args.steps + 1):
            x, y = get_batch()
            loss = model(x, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            line = dict(step=step, loss=round(loss.item(), 5),
                        tokens=step * args.batch_size * block_size,
                        seconds=round(time.perf_counter() - t0, 4))
            if loader is not None:
                line.update(epoch=loader.epoch)  # the stream crosses epochs unnoticed
            f.write(json.dumps(line) + "\n")
    summary = dict(loader=args.loader, device=str(device), steps=args.steps,
                   batch_size=args.batch_size, block_size=block_size, final_loss=line["loss"],
                   seconds=line["seconds"], curve=out)
    if loader is not None:
        summary["state"] = loader.state_dict()
        loader.close()
    print(json.dumps(summary))


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare", help="write train.bin, val.bin and the numafeed dataset")
    p.add_argument("data")
    p.add_argument("--max-bytes", type=int, default=16 << 20,
                   help="corpus size in bytes, one token each (default 16 MiB)")
    p.add_argument("--seq-len", type=int, default=64, help="block size (default 64)")
    p.add_argument("--dtype", choices=("auto", "uint16", "int32"), default="auto",
                   help="how the packed tokens are stored (auto: uint16 where torch takes it)")
    t = sub.add_parser("train", help="train and write the loss curve")
    t.add_argument("data")
    t.add_argument("--loader", choices=("numafeed", "random"), default="numafeed")
    t.add_argument("--steps", type=int, default=2000)
    t.add_argument("--device", help="cpu or cuda (default: cuda where there is one)")
    # small enough for 50 steps on a laptop's CPU in half a minute; on a GPU,
    # nanoGPT's shakespeare-char model is --layers 6 --heads 6 --width 384
    # --batch-size 64 (and prepare --seq-len 256)
    t.add_argument("--batch-size", type=int, default=16)
    t.add_argument("--layers", type=int, default=2)
    t.add_argument("--heads", type=int, default=2)
    t.add_argument("--width", type=int, default=64)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", help="the loss curve (default DATA/loss-LOADER.jsonl)")
    args = ap.parse_args()
    prepare(args) if args.cmd == "prepare" else train(args)


if __name__ == "__main__":
    main()
