#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Plots and markdown tables of the benchmarks' JSON, for docs/ and the README.

    python3 bench/plots.py --gpu-bench docs/results/gpu-bench-h200-2026-11-30.json \\
        --multi-gpu docs/results/multi-gpu-h200x4-t14-stream-2026-11-27.json \\
        --jpeg docs/results/jpeg-h200-2026-11-30.json \\
        --gpu-decode docs/results/gpu-decode-direct-h200-2026-11-30.json --out docs/img --tables

Each input is optional; each gives one PNG under --out:
  --gpu-bench  bench/gpu_bench.py's JSON: throughput.png, numafeed against
               torch's DataLoader (its best worker count) and the ceilings
               (pinned host-to-device copy, bare multi-thread zstd decode)
               per workload;
  --multi-gpu  bench/multi_gpu.py's JSON: scaling.png, GB/s with 1, 2 and 4
               GPUs, one process serving them all and one process per GPU,
               against the pinned copies of all GPUs at once;
  --jpeg       examples/train_jpeg.py bench's JSON: jpeg.png, images/s of
               each pipeline;
  --gpu-decode bench/gpu_decode.py's JSON: gpu_decode.png, decode cpu and
               decode gpu (each window) per thread count, against the
               host's 14-thread zstd decode and nvCOMP's bare decode;
  --tokens     examples/train_tokens.py's loss curves (JSON lines), as
               LABEL=FILE,LABEL=FILE: tokens.png, the training loss (mean
               of every 25 steps) of each.
--tables prints the matching markdown tables on standard output.
Needs matplotlib (Debian: python3-matplotlib; scripts/install-deps --bench).
"""
import argparse
import json
import os
import sys


def load(path):
    with open(path) as f:
        return json.load(f)


def best(rows, key="gbps"):
    rows = [r for r in rows if key in r]
    return max(rows, key=lambda r: r[key]) if rows else None


def throughput_rows(gb):
    """(workload, numafeed, best DataLoader and its workers, H2D, zstd) per workload."""
    out = []
    for w in gb["workloads"]:
        nf = best(w["numafeed"])
        dl = best(w.get("dataloader", []))
        zstd = None
        if "ceiling_zstd_nocheck" in w:
            z = w["ceiling_zstd_nocheck"].get(str(nf["threads"]),
                                              w["ceiling_zstd_nocheck"].get(nf["threads"]))
            zstd = z if z == z else None  # nan: no zstd blocks
        out.append({"name": w["name"], "numafeed": nf["gbps"], "threads": nf["threads"],
                    "dataloader": dl["gbps"] if dl else None,
                    "workers": dl["workers"] if dl else None, "h2d": w["ceiling_h2d_gbps"],
                    "zstd": zstd, "wait_p99_us": w.get("numafeed_ahead", {}).get(
                        "after_first_p99_us")})
    return out


def plot_throughput(gb, path, plt):
    rows = throughput_rows(gb)
    series = [("numafeed", "numafeed", "#1f77b4"),
              ("dataloader", "torch DataLoader (best workers)", "#ff7f0e"),
              ("h2d", "ceiling: pinned H2D copy", "#7f7f7f"),
              ("zstd", "ceiling: CPU zstd decode, same threads", "#bcbd22")]
    fig, ax = plt.subplots(figsize=(8, 1.6 + 1.1 * len(rows)))
    h = 0.8 / len(series)
    for k, (key, label, color) in enumerate(series):
        ys = [i + (k - (len(series) - 1) / 2) * h for i in range(len(rows))]
        vals = [r[key] or 0 for r in rows]
        bars = ax.barh(ys, vals, height=h, color=color, label=label)
        for b, r in zip(bars, rows):
            if r[key]:
                ax.text(b.get_width(), b.get_y() + b.get_height() / 2, f" {r[key]:.1f}",
                        va="center", fontsize=7)
    ax.set_yticks(range(len(rows)), [r["name"] for r in rows])
    ax.invert_yaxis()
    ax.set_xlabel("GB/s delivered to the GPU (higher is better)")
    ax.set_title(f"One {gb.get('gpu', 'GPU')}, {gb.get('cpus', '?')} CPUs, {gb['date'][:10]}",
                 fontsize=9)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_scaling(mg, path, plt):
    fig, ax = plt.subplots(figsize=(6.5, 4))
    colors = ["#1f77b4", "#ff7f0e", "#2ca02c"]
    for c, w in zip(colors, mg["workloads"]):
        counts = [1] + sorted(int(k) for k in w["counts"])
        one = [w["one_gpu"]["gbps"]] + [w["counts"][str(k)]["one_process"]["gbps"]
                                        for k in counts[1:]]
        per = [w["one_gpu"]["gbps"]] + [sum(p["gbps"] for p in
                                            w["counts"][str(k)]["per_gpu_processes"])
                                        for k in counts[1:]]
        ax.plot(counts, one, "o-", color=c, label=f"{w['name']}: one process")
        ax.plot(counts, per, "s--", color=c, label=f"{w['name']}: one process per GPU")
        if w.get("h2d_together"):
            ax.axhline(sum(w["h2d_together"]), color=c, alpha=0.3, lw=1)
    ax.set_xticks([1, 2, 4])
    ax.set_xlabel("GPUs served")
    ax.set_ylabel("GB/s, all GPUs together")
    ax.set_title(f"{mg.get('gpus', '?')} GPUs of one host, {mg.get('threads_per_pool', '?')} "
                 f"threads per pool, {mg['date'][:10]} (faint lines: pinned copies of all "
                 f"GPUs at once)", fontsize=8)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_jpeg(jp, path, plt):
    runs = jp["runs"]
    fig, ax = plt.subplots(figsize=(7, 0.6 + 0.45 * len(runs)))
    names = [r["pipeline"] for r in runs]
    vals = [r["images_per_s"] for r in runs]
    colors = ["#7f7f7f" if "decode_jpeg alone" in n or "in memory" in n
              else "#1f77b4" if "numafeed" in n else "#ff7f0e" for n in names]
    bars = ax.barh(range(len(runs)), vals, color=colors)
    for b, v in zip(bars, vals):
        ax.text(b.get_width(), b.get_y() + b.get_height() / 2, f" {v:,.0f}", va="center",
                fontsize=7)
    ax.set_yticks(range(len(runs)), names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("images/s, 224x224 normalised on the GPU (higher is better)")
    m = jp.get("machine", {})
    ax.set_title(f"JPEG classification input, {m.get('gpu', 'GPU')}, {m.get('cpus', '?')} CPUs, "
                 f"{jp['date']}", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def decode_runs(w, step=0):
    """{(decode, window blocks or 0, copy, threads): run} of one workload;
    copy is decode gpu's "staged" or "direct" where the run names it, else
    ""."""
    def copy(r):
        c = r.get("copy") or ""
        return c if r["decode"] == "gpu" and c != "auto" else ""
    return {(r["decode"], r.get("blocks_per_call") or 0, copy(r), r["threads"]): r
            for r in w["runs"] if r.get("gpu_step_us", 0) == step and "gbps" in r}


def decode_kinds(runs):
    """The (decode, blocks, copy) of runs, decode cpu first."""
    return sorted({k[:3] for k in runs}, key=lambda k: (k[0] != "cpu", k[2], k[1]))


def decode_label(kind):
    dec, blocks, copy = kind
    if dec == "cpu":
        return "decode cpu"
    return f"decode gpu, {blocks} blocks per call" + (f", copy {copy}" if copy else "")


def plot_gpu_decode(gd, path, plt):
    ws = gd["results"]
    fig, axes = plt.subplots(1, len(ws), figsize=(5.2 * len(ws), 3.8), squeeze=False)
    for ax, w in zip(axes[0], ws):
        runs = decode_runs(w)
        threads = sorted({k[3] for k in runs})
        kinds = decode_kinds(runs)
        width = 0.8 / len(kinds)
        for i, kind in enumerate(kinds):
            vals = [runs.get(kind + (t,), {}).get("gbps", 0) for t in threads]
            color = {"cpu": "#ff7f0e"}.get(kind[0]) or ["#aec7e8", "#1f77b4", "#2ca02c",
                                                        "#9467bd", "#8c564b", "#e377c2"][
                min(5, sum(1 for k in kinds[:i] if k[0] == "gpu"))]
            ax.bar([j + i * width for j in range(len(threads))], vals, width,
                   label=decode_label(kind), color=color)
        if w.get("cpu_zstd_14_gbps"):
            ax.axhline(w["cpu_zstd_14_gbps"], color="#7f7f7f", ls="--", lw=1,
                       label="bare zstd decode, 14 threads")
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(threads))],
                      [f"{t} threads" for t in threads])
        best = max([c["gbps"] for c in w["ceilings"] if "gbps" in c] or [0])
        ax.set_title(f"{w['workload']} (nvCOMP bare, 4096 blocks per call: {best:.0f} GB/s)",
                     fontsize=8)
        ax.set_ylabel("GB/s delivered to the GPU")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=6)
    fig.suptitle(f"decode cpu vs decode gpu, {gd['machine']}, {gd['date']}",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def read_curve(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def plot_tokens(spec, path, plt):
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for item in spec.split(","):
        label, f = item.split("=", 1)
        pts = read_curve(f)
        k = 25
        xs = [pts[i + k - 1]["step"] for i in range(0, len(pts) - k + 1, k)]
        ys = [sum(p["loss"] for p in pts[i:i + k]) / k for i in range(0, len(pts) - k + 1, k)]
        ax.plot(xs, ys, label=label)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (mean of 25 steps)")
    ax.set_title("examples/train_tokens.py: the same model, two ways to draw batches",
                 fontsize=8)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def fmt(v, nd=2):
    return "-" if v is None else f"{v:.{nd}f}"


def tables(args):
    if args.gpu_bench:
        gb = load(args.gpu_bench)
        print(f"One {gb.get('gpu')}, {gb.get('cpus')} CPUs, {gb['date']}:\n")
        print("| workload | numafeed GB/s | best DataLoader GB/s | numafeed / DataLoader "
              "| pinned H2D GB/s | numafeed / H2D | CPU zstd decode GB/s | numafeed / decode "
              "| wait p99 when ahead |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for r in throughput_rows(gb):
            dl = r["dataloader"]
            print(f"| {r['name']} | {r['numafeed']:.2f} ({r['threads']} threads) | "
                  f"{fmt(dl)} ({r['workers']} workers) | "
                  f"{fmt(r['numafeed'] / dl if dl else None, 1)}x | {r['h2d']:.2f} | "
                  f"{r['numafeed'] / r['h2d']:.2f} | {fmt(r['zstd'])} | "
                  f"{fmt(r['numafeed'] / r['zstd'] if r['zstd'] else None)} | "
                  f"{fmt(r['wait_p99_us'], 1)} us |")
        print()
    if args.gpu_decode:
        gd = load(args.gpu_decode)
        kinds = decode_kinds({k: r for w in gd["results"] for k, r in decode_runs(w).items()})
        print("| workload | threads | " + " | ".join(decode_label(k) for k in kinds) + " |")
        print("| --- | --- | " + " | ".join("---" for _ in kinds) + " |")
        for w in gd["results"]:
            runs = decode_runs(w)
            for t in sorted({k[3] for k in runs}):
                cells = []
                for kind in kinds:
                    r = runs.get(kind + (t,))
                    cells.append("-" if not r else f"{r['gbps']:.2f} GB/s, {r['cores']:.1f} cores")
                print(f"| {w['workload']} | {t} | " + " | ".join(cells) + " |")
        print()
        print("| workload | bare zstd, 14 threads | nvCOMP bare: 17 / 128 / 512 / 4096 blocks "
              "per call | pinned H2D of a batch |")
        print("| --- | --- | --- | --- |")
        for w in gd["results"]:
            cs = " / ".join(fmt(c.get("gbps"), 1) for c in w["ceilings"])
            print(f"| {w['workload']} | {fmt(w.get('cpu_zstd_14_gbps'))} | {cs} | "
                  f"{fmt(w.get('h2d_gbps'))} |")
        print()
    if args.jpeg:
        jp = load(args.jpeg)
        print("| pipeline | images/s (median) | rounds |")
        print("| --- | --- | --- |")
        for r in jp["runs"]:
            rounds = ", ".join(f"{v:,.0f}" for v in r.get("rounds", []))
            print(f"| {r['pipeline']} | {r['images_per_s']:,.0f} | {rounds} |")
        print(f"\nnumafeed / best DataLoader {jp['numafeed_over_best_dataloader']:.2f}x; "
              f"/ decode alone {jp['numafeed_over_decode_ceiling']:.2f}"
              + (f"; / decode alone from page-locked bytes {jp['numafeed_over_decode_pinned']:.2f}"
                 if "numafeed_over_decode_pinned" in jp else "") + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 epilog=__doc__.split("\n", 2)[2],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gpu-bench")
    ap.add_argument("--multi-gpu")
    ap.add_argument("--jpeg")
    ap.add_argument("--gpu-decode")
    ap.add_argument("--tokens", help="LABEL=FILE,LABEL=FILE of loss curves")
    ap.add_argument("--out", default="docs/img")
    ap.add_argument("--tables", action="store_true")
    args = ap.parse_args()
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("plots.py: matplotlib is missing (Debian: apt install python3-matplotlib, "
                 "or scripts/install-deps --bench)")
    os.makedirs(args.out, exist_ok=True)
    made = []
    for given, name, plot in ((args.gpu_bench and load(args.gpu_bench), "throughput.png",
                               plot_throughput),
                              (args.multi_gpu and load(args.multi_gpu), "scaling.png",
                               plot_scaling),
                              (args.jpeg and load(args.jpeg), "jpeg.png", plot_jpeg),
                              (args.gpu_decode and load(args.gpu_decode), "gpu_decode.png",
                               plot_gpu_decode),
                              (args.tokens, "tokens.png", plot_tokens)):
        if given:
            made.append(os.path.join(args.out, name))
            plot(given, made[-1], plt)
    if args.tables:
        tables(args)
    for m in made:
        print(f"wrote {m}", file=sys.stderr)


if __name__ == "__main__":
    main()
