#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Do the pools of one process get in each other's way? A profile without a profiler.

The GPU machines have no perf, strace or Nsight Systems, so this reads what
the kernel and numafeed themselves count. For each GPU list (--gpus, e.g.
"0;0-3": GPU 0 alone, then GPUs 0-3 served by one process) it runs
`numafeed bench` throughput-bound and, over a window in the middle of the
run, samples every thread of the process from /proc/PID/task/TID:

  * voluntary context switches per second: a thread that sleeps on a lock
    (a futex: mutex, condition variable, a driver lock) switches out
    voluntarily, so a lock shared by the pools shows up as a rate that grows
    with the number of pools;
  * involuntary switches per second and the share of the window spent
    waiting on a run queue (schedstat): CPU oversubscription;
  * the share of the window spent running (schedstat).

Threads are grouped by name (numafeed-gG-W: pool of GPU G, worker W; the
rest by their own names). numafeed bench's per-pool stage timers (io wait,
verify+decode, copy, slot wait) are printed next to them with the worker
time they leave unaccounted for, where a lock outside the stages would
show. The timers cover the whole run, so with several pools "unaccounted"
also holds the idle tail of a pool that finished its part before the
others; the /proc window, in the middle of the run, has no such tail.
Asserts nothing; prints a table and writes JSON.

  python3 bench/pool_contention.py --bin build/release --dataset DIR \\
      --batch-size 64 --threads 4 --gpus "0;0-3" --json out.json
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time


def threads_of(pid):
    """{tid: (name, voluntary, involuntary, run_ns, wait_ns)} of a process."""
    out = {}
    base = f"/proc/{pid}/task"
    for tid in os.listdir(base):
        try:
            with open(f"{base}/{tid}/status") as f:
                st = f.read()
            with open(f"{base}/{tid}/schedstat") as f:
                run_ns, wait_ns, _ = (int(x) for x in f.read().split())
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue  # the thread ended between listdir and open
        name = re.search(r"^Name:\s*(.*)$", st, re.M).group(1)
        vol = int(re.search(r"^voluntary_ctxt_switches:\s*(\d+)", st, re.M).group(1))
        inv = int(re.search(r"^nonvoluntary_ctxt_switches:\s*(\d+)", st, re.M).group(1))
        out[tid] = (name, vol, inv, run_ns, wait_ns)
    return out


def group(name):
    m = re.match(r"numafeed-g(\d+)-\d+$", name)
    return f"pool g{m.group(1)} workers" if m else name


def run(a, gpus):
    cmd = [a.nf, "bench", a.dataset, "--gpus", gpus, "--batch-size", str(a.batch_size),
           "--threads", str(a.threads)]
    # size the run: a one-epoch probe gives the rate; the window sits in the
    # middle of a run of warm + window + 2 seconds
    probe = subprocess.run(cmd + ["--epochs", "1"], check=True, capture_output=True,
                           text=True).stdout
    m = re.search(r"total: \d+ records, ([0-9.]+) GB in ([0-9.]+) s", probe)
    epoch_s = float(m.group(2))
    epochs = max(2, int((a.warm + a.window + 2) / max(epoch_s, 1e-3)) + 1)
    p = subprocess.Popen(cmd + ["--epochs", str(epochs)], stdout=subprocess.PIPE, text=True)
    time.sleep(a.warm)
    t0, s0 = time.monotonic(), threads_of(p.pid)
    time.sleep(a.window)
    t1, s1 = time.monotonic(), threads_of(p.pid)
    out, _ = p.communicate()
    if p.returncode:
        sys.exit(f"numafeed bench --gpus {gpus} failed ({p.returncode}):\n{out}")
    dt = t1 - t0
    groups = {}
    for tid, (name, vol, inv, run_ns, wait_ns) in s1.items():
        if tid not in s0:
            continue
        _, vol0, inv0, run0, wait0 = s0[tid]
        g = groups.setdefault(group(name), {"threads": 0, "voluntary_per_s": 0.0,
                                            "involuntary_per_s": 0.0, "running": 0.0,
                                            "runqueue_wait": 0.0})
        g["threads"] += 1
        g["voluntary_per_s"] += (vol - vol0) / dt
        g["involuntary_per_s"] += (inv - inv0) / dt
        g["running"] += (run_ns - run0) / 1e9 / dt
        g["runqueue_wait"] += (wait_ns - wait0) / 1e9 / dt
    for g in groups.values():  # per thread
        for k in ("voluntary_per_s", "involuntary_per_s", "running", "runqueue_wait"):
            g[k] /= g["threads"]
    stages = []
    for m in re.finditer(r"^pool (\d+) stages \(worker-seconds over ([0-9.]+) s x (\d+) threads\): "
                         r"io wait ([0-9.]+), verify\+decode ([0-9.]+), copy ([0-9.]+), slot wait "
                         r"([0-9.]+)", out, re.M):
        pool, secs, thr, io, dec, cp, sw = m.groups()
        total = float(secs) * int(thr)
        parts = [float(x) for x in (io, dec, cp, sw)]
        stages.append({"pool": int(pool), "worker_seconds": total,
                       "io_wait": parts[0] / total, "verify_decode": parts[1] / total,
                       "copy": parts[2] / total, "slot_wait": parts[3] / total,
                       "unaccounted": 1 - sum(parts) / total})
    m = re.search(r"total: .*: ([0-9.]+) GB/s", out)
    return {"gpus": gpus, "epochs": epochs, "window_s": dt, "gbps": float(m.group(1)),
            "threads": groups, "stages": stages, "command": " ".join(cmd + ["--epochs", str(epochs)])}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True, help="build dir with src/cli/numafeed")
    ap.add_argument("--dataset", required=True, help="a dataset made by numafeed pack")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=4, help="worker threads per pool")
    ap.add_argument("--gpus", default="0;0-3",
                    help="semicolon-separated GPU lists, one run each (default 0;0-3)")
    ap.add_argument("--warm", type=float, default=2.0, help="seconds before the window")
    ap.add_argument("--window", type=float, default=4.0, help="seconds sampled")
    ap.add_argument("--json")
    a = ap.parse_args()
    a.nf = os.path.join(a.bin, "src/cli/numafeed")
    res = []
    for gpus in a.gpus.split(";"):
        r = run(a, gpus)
        res.append(r)
        print(f"== --gpus {gpus}: {r['gbps']:.2f} GB/s; per thread over {r['window_s']:.1f} s:")
        for name, g in sorted(r["threads"].items()):
            print(f"  {name:28s} x{g['threads']:<3d} voluntary {g['voluntary_per_s']:9.1f}/s  "
                  f"involuntary {g['involuntary_per_s']:7.1f}/s  running {g['running']:.2f}  "
                  f"run-queue wait {g['runqueue_wait']:.3f}")
        for s in r["stages"]:
            print(f"  pool {s['pool']} worker time: io wait {s['io_wait']:.3f}, verify+decode "
                  f"{s['verify_decode']:.3f}, copy {s['copy']:.3f}, slot wait "
                  f"{s['slot_wait']:.3f}, unaccounted (whole run, with any idle tail) "
                  f"{s['unaccounted']:.3f}")
        sys.stdout.flush()
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
