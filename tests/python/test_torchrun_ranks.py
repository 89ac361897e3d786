# SPDX-License-Identifier: Apache-2.0
"""Two ranks under torchrun (gloo, CPU): each takes its rank and world size
from the launcher's environment, the partitions are disjoint and complete
with equal batch counts, and ranks that disagree on the seed get a clear
error instead of silently overlapping data."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import N_RECORDS

pytest.importorskip("torch.distributed.run")
WORKER = Path(__file__).with_name("ranks_worker.py")


def torchrun(tmp_path, dataset, mode):
    out = tmp_path / mode
    out.mkdir()
    # Debian 12's torch 1.13 spells the flags with underscores, and on
    # Python 3.11 needs --redirects/--tee 1 (its Std.from_str returns None
    # for 0); a file rendezvous needs no fixed port.
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1",
           "--nproc_per_node", "2", "--rdzv_backend", "c10d",
           "--rdzv_endpoint", str(out / "rdzv"), "--rdzv_conf", "store_type=file",
           "--rdzv_id", f"nf-{mode}", "--max_restarts", "0", "--monitor_interval", "0.1",
           "--log_dir", str(out / "logs"), "--redirects", "1", "--tee", "1",
           str(WORKER), dataset, str(out), mode]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return [json.loads((out / f"rank{k}.json").read_text()) for k in range(2)]


def test_two_ranks_disjoint_complete_equal(tmp_path, dataset):
    ranks = torchrun(tmp_path, dataset, "ok")
    for k, rep in enumerate(ranks):
        assert "error" not in rep, rep.get("error")
        assert rep["env"]["RANK"] == str(k) and rep["env"]["LOCAL_RANK"] == str(k)
        assert rep["state"]["rank"] == k and rep["state"]["world_size"] == 2
    for epoch in range(2):
        a, b = (rep["epochs"][epoch] for rep in ranks)
        assert a["batches"] == b["batches"] == a["len"] == b["len"]
        assert not set(a["ids"]) & set(b["ids"])
        assert sorted(a["ids"] + b["ids"]) == list(range(N_RECORDS))
    assert ranks[0]["epochs"][0]["ids"] != ranks[0]["epochs"][1]["ids"]


def test_ranks_that_disagree_get_a_clear_error(tmp_path, dataset):
    ranks = torchrun(tmp_path, dataset, "mismatch")
    for rep in ranks:
        assert "disagree on seed" in rep.get("error", ""), rep
