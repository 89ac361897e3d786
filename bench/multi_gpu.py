#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Multi-GPU run: one pool per GPU, one process and one process per GPU.

On a machine with several GPUs: record the topology; then for each workload
measure, in the same run,
  * the pinned H2D ceiling of each GPU alone and of all GPUs at once;
  * host memory bandwidth: memcpy by as many threads as the pools of 1, 2,
    4 ... GPUs have, alone and while every GPU runs its pinned H2D ceiling
    (numafeed's raw path reads each byte from the page cache, writes it to
    the ring, and the GPU's DMA reads it again: about three DRAM transfers
    per delivered byte against memcpy's two);
  * for zstd workloads, bare decode of the dataset's blocks by as many
    threads as the pools of 1, 2, 4 ... GPUs have (the host's own decode
    scaling, against which the pools' scaling is compared);
  * numafeed serving GPU 0 alone (1 process);
  * numafeed serving all GPUs from one process (one pool each);
  * one numafeed process per GPU under torchrun (RANK/WORLD_SIZE/LOCAL_RANK);
at 1, 2, 4 ... GPUs (--counts), and check, in separate runs with --digest,
that the digests of every configuration agree (every record exactly once in
each). Throughput runs go without --digest, whose hashing in the consuming
thread would bound them. Prints a report and writes JSON. Asserts nothing on
timings.

  python3 bench/multi_gpu.py --bin build/release --work /tmp/nfm --out DIR
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gpu_bench  # noqa: E402  (data generation, packing, page-cache warm-up)


def sh(cmd, env=None):
    return subprocess.run(cmd, shell=True, check=True, capture_output=True, text=True,
                          env=env).stdout


def parse(out):
    d = {}
    m = re.search(r"total: \d+ records, ([0-9.]+) GB in ([0-9.]+) s: ([0-9.]+) GB/s", out)
    d["gb"], d["s"], d["gbps"] = (float(m.group(i)) for i in (1, 2, 3)) if m else (None,) * 3
    d["digests"] = re.findall(r"^epoch (\d+) records (\d+) digest ([0-9a-f]+)", out, re.M)
    d["pools"] = re.findall(r"^pool \d+: .*", out, re.M)
    return d


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--epochs", type=int, default=8,
                    help="at least this many epochs per throughput run (default 8; digest "
                         "runs take 2)")
    ap.add_argument("--seconds", type=float, default=10,
                    help="about how long each throughput run lasts (default 10)")
    ap.add_argument("--workloads", default="tokens-zstd,images-raw",
                    help="of gpu_bench.py's (default tokens-zstd,images-raw)")
    ap.add_argument("--threads", type=int, default=0,
                    help="worker threads per pool (default: CPUs / GPUs - 2)")
    ap.add_argument("--counts", default="2,4,8",
                    help="GPU counts to scale to besides 1 and all (default 2,4,8)")
    a = ap.parse_args()
    a.counts = [int(x) for x in a.counts.split(",") if x]
    nf = os.path.join(a.bin, "src/cli/numafeed")
    ceil = os.path.join(a.bin, "bench/gpu_ceiling")
    os.makedirs(a.work, exist_ok=True)
    os.makedirs(a.out, exist_ok=True)
    topo = ""
    for c in ["nvidia-smi -L", "nvidia-smi topo -m", "numactl --hardware", f"{nf} topo",
              f"{nf} topo --json", f"{nf} doctor", "nproc"]:
        try:
            topo += f"$ {c}\n" + sh(c + " 2>&1") + "\n"
        except subprocess.CalledProcessError as e:
            topo += f"$ {c}\n(failed: {e.returncode})\n{e.stdout}\n"
    open(os.path.join(a.out, "topology.txt"), "w").write(topo)
    print(topo)
    ngpu = int(sh("nvidia-smi -L | wc -l").strip())
    threads = a.threads or max(1, (os.cpu_count() // ngpu) - 2)
    res = {"date": time.strftime("%Y-%m-%d %H:%M"), "gpus": ngpu, "threads_per_pool": threads,
           "workloads": []}
    ks = sorted({1, ngpu} | {k for k in a.counts if 1 < k <= ngpu})
    res["memcpy_gbps"] = {k * threads: float(sh(f"{ceil} memcpy {k * threads} 64 2").split()[-1])
                          for k in ks}
    # with every GPU pulling batch-sized pinned copies at the same time
    bb = 256 * 150528
    par = " & ".join(f"CUDA_VISIBLE_DEVICES={g} {ceil} h2d {bb} 3" for g in range(ngpu))
    out = sh(f"({par} & sleep 0.5; {ceil} memcpy {ngpu * threads} 64 2; wait)").splitlines()
    res["memcpy_with_h2d_gbps"] = float([x for x in out if "memcpy" in x][0].split()[-1])
    res["h2d_with_memcpy_gbps"] = [float(x.split()[-1]) for x in out if "h2d" in x]
    print(f"host memcpy (bytes copied/s) by threads: {res['memcpy_gbps']}; {ngpu * threads} "
          f"threads while every GPU runs pinned H2D: {res['memcpy_with_h2d_gbps']} GB/s, the "
          f"GPUs meanwhile {res['h2d_with_memcpy_gbps']} GB/s")
    for name, field, rb, batch, codec, level, n in gpu_bench.WORKLOADS:
        if name not in a.workloads.split(","):
            continue
        ds = gpu_bench.prepare(nf, a.work, name, field, rb, codec, level, n)
        w = {"name": name, "batch": batch}
        bb = rb * batch
        # the host's own rate at each count's thread total, to tell the
        # host's scaling from the pools': bare decode of the same blocks
        # (without zstd's frame checksum, as numafeed's readers) for zstd
        # workloads, memcpy (measured above) for raw ones
        if codec == "zstd":
            w["decode_gbps"] = {k * threads: float(
                sh(f"{ceil} zstd {ds} {k * threads} 2 nocheck").split()[-1]) for k in ks}
        host = w.get("decode_gbps", res["memcpy_gbps"])
        w["h2d_alone"] = [float(sh(f"CUDA_VISIBLE_DEVICES={g} {ceil} h2d {bb} 2").split()[-1])
                          for g in range(ngpu)]
        par = " & ".join(f"CUDA_VISIBLE_DEVICES={g} {ceil} h2d {bb} 3" for g in range(ngpu))
        w["h2d_together"] = [float(x.split()[-1]) for x in sh(f"({par}; wait)").splitlines()]
        # Throughput runs without --digest: the digest hashes every record in
        # the consuming thread (one core, about 5 GB/s), which would be the
        # bottleneck; the same runs again with --digest check correctness.
        # Runs of about --seconds each at any GPU count: size the epochs from
        # a first one-GPU run, and multiply them by the GPU count (k GPUs
        # share each epoch); one process per GPU starts at different times,
        # which short runs would turn into overlap-free, meaningless sums.
        probe = parse(sh(f"{nf} bench {ds} --gpus 0 --epochs {a.epochs} --batch-size {batch} "
                         f"--threads {threads}"))
        epochs = max(a.epochs, int(a.seconds * probe["gbps"] / (probe["gb"] / a.epochs)) + 1)
        w["epochs_per_gpu"] = epochs
        common = f"--epochs {epochs} --batch-size {batch} --threads {threads}"
        dcommon = f"--epochs 2 --batch-size {batch} --threads {threads} --digest"
        w["one_gpu"] = parse(sh(f"{nf} bench {ds} --gpus 0 {common}"))
        w["one_gpu"]["digests"] = parse(sh(f"{nf} bench {ds} --gpus 0 {dcommon}"))["digests"]
        counts = sorted({k for k in a.counts if 1 < k <= ngpu} | {ngpu}) if ngpu > 1 else []
        w["counts"] = {}
        for k in counts:
            def per_gpu_processes(opts):
                for f in os.listdir(a.work):
                    if f.startswith("rank") and f.endswith(".log"):
                        os.unlink(os.path.join(a.work, f))
                sh(f"python3 -m torch.distributed.run --nproc-per-node {k} --no-python "
                   f"sh -c '{nf} bench {ds} --gpus $LOCAL_RANK {opts} > {a.work}/rank$RANK.log'")
                return [parse(open(f"{a.work}/rank{r}.log").read()) for r in range(k)]

            kcommon = f"--epochs {epochs * k} --batch-size {batch} --threads {threads}"
            c = {"one_process": parse(sh(f"{nf} bench {ds} --gpus 0-{k - 1} {kcommon}")),
                 "per_gpu_processes": per_gpu_processes(kcommon)}
            c["one_process"]["digests"] = parse(
                sh(f"{nf} bench {ds} --gpus 0-{k - 1} {dcommon}"))["digests"]
            ranks = per_gpu_processes(dcommon)
            for r, rd in zip(c["per_gpu_processes"], ranks):
                r["digests"] = rd["digests"]
            # digests: D is a sum mod 2^64, so the ranks' Ds add up to the whole
            dsum = {}
            for r in ranks:
                for e, recs, d in r["digests"]:
                    t = dsum.setdefault(e, [0, 0])
                    t[0] += int(recs)
                    t[1] = (t[1] + int(d, 16)) % (1 << 64)
            c["digest_agree"] = all(
                (int(recs), int(d, 16)) == (dsum[e][0], dsum[e][1]) ==
                (int(c["one_process"]["digests"][int(e)][1]),
                 int(c["one_process"]["digests"][int(e)][2], 16))
                for e, recs, d in w["one_gpu"]["digests"])
            c["agg_per_gpu_processes"] = sum(r["gbps"] for r in c["per_gpu_processes"])
            c["scaling_one_process"] = c["one_process"]["gbps"] / (k * w["one_gpu"]["gbps"])
            c["scaling_per_gpu_processes"] = c["agg_per_gpu_processes"] / (k * w["one_gpu"]["gbps"])
            # the same against the host: its own rate at k x threads over k
            # times its rate at threads (1.0: the host scales linearly), and
            # the pipelines' share of the host's rate at k x threads
            c["host_scaling"] = host[k * threads] / (k * host[threads])
            c["of_host_one_process"] = c["one_process"]["gbps"] / host[k * threads]
            c["of_host_per_gpu_processes"] = c["agg_per_gpu_processes"] / host[k * threads]
            w["counts"][k] = c
        top = w["counts"].get(ngpu)
        if top:  # the full-machine figures, under the names earlier runs used
            w["one_process_all_gpus"] = top["one_process"]
            w["per_gpu_processes"] = top["per_gpu_processes"]
            w["digest_agree"] = top["digest_agree"]
            w["scaling_one_process"] = top["scaling_one_process"]
            w["scaling_per_gpu_processes"] = top["scaling_per_gpu_processes"]
        # where the pools really are, from /proc, while they run: one process
        # serving every GPU, and one process per GPU checked against its GPU
        slow = f"--epochs 1000 --batch-size {batch} --threads {threads} --step-us 2000"
        w["verify_one_process"] = sh(
            f"{nf} bench {ds} --gpus 0-{ngpu - 1} {slow} >/dev/null & p=$!; sleep 3; "
            f"{nf} verify $p --json; kill $p; wait $p 2>/dev/null; true")
        sh(f"python3 -m torch.distributed.run --nproc-per-node {ngpu} --no-python sh -c "
           f"'{nf} bench {ds} --gpus $LOCAL_RANK {slow} >/dev/null & p=$!; sleep 3; "
           f"{nf} verify $p --gpu $LOCAL_RANK --json > {a.work}/verify$RANK.json; kill $p; true'")
        w["verify_per_gpu"] = [open(f"{a.work}/verify{r}.json").read() for r in range(ngpu)]
        res["workloads"].append(w)
        print(f"== {name} (batch {batch}, {threads} threads per pool)")
        print(f"  pinned H2D alone per GPU: {w['h2d_alone']} GB/s; all at once: "
              f"{w['h2d_together']} GB/s")
        what = "bare zstd decode" if codec == "zstd" else "memcpy"
        print(f"  host {what} by threads: " +
              ", ".join(f"{t}: {g:.2f}" for t, g in sorted(host.items())) + " GB/s")
        print(f"  numafeed 1 GPU: {w['one_gpu']['gbps']:.2f} GB/s "
              f"({w['one_gpu']['gbps'] / host[threads]:.2f} of the host's {what} at "
              f"{threads} threads)")
        for k, c in w["counts"].items():
            each = ", ".join("%.2f" % r["gbps"] for r in c["per_gpu_processes"])
            print(f"  numafeed {k} GPUs, one process: {c['one_process']['gbps']:.2f} GB/s "
                  f"aggregate, {c['scaling_one_process']:.2f} of linear; {k} processes "
                  f"(torchrun): {c['agg_per_gpu_processes']:.2f} GB/s ({each}), "
                  f"{c['scaling_per_gpu_processes']:.2f} of linear; digests agree: "
                  f"{c['digest_agree']}")
            print(f"    host {what} at {k * threads} threads: {host[k * threads]:.2f} GB/s, "
                  f"{c['host_scaling']:.2f} of linear; numafeed at {c['of_host_one_process']:.2f} "
                  f"(one process) and {c['of_host_per_gpu_processes']:.2f} (processes) of it")
        vo = json.loads(w["verify_one_process"])
        pools = [t for t in vo["threads"] if t["pool_gpu"] >= 0]
        print(f"  verify, one process: {len(pools)} pool threads, "
              f"{sum(not t['ok'] for t in pools)} off their CPUs, node bytes {vo['node_bytes']}, "
              f"problems {vo['problems']}")
        for r, text in enumerate(w["verify_per_gpu"]):
            v = json.loads(text)
            print(f"  verify, rank {r} (--gpu {r}): "
                  f"{sum(t['pool_gpu'] >= 0 for t in v['threads'])} pool threads, "
                  f"off-node bytes {v['off_node_bytes']}, problems {v['problems']}")
        for p in w["one_process_all_gpus"]["pools"]:
            print("  " + p[:200])
        sys.stdout.flush()
    json.dump(res, open(os.path.join(a.out, "multi_gpu.json"), "w"), indent=1)


if __name__ == "__main__":
    main()
