# SPDX-License-Identifier: Apache-2.0
"""One rank of test_torchrun_ranks.py, launched by torchrun: reads RANK,
WORLD_SIZE and LOCAL_RANK as numafeed.Loader does, joins a gloo group, and
writes what it saw (per epoch: record ids, batch count) as JSON."""
import json
import os
import sys

import torch.distributed as dist

import numafeed

path, out, mode = sys.argv[1], sys.argv[2], sys.argv[3]
dist.init_process_group("gloo")
rank = dist.get_rank()
seed = 5 + (rank if mode == "mismatch" else 0)
report = dict(rank=rank, env=dict(RANK=os.environ["RANK"], WORLD_SIZE=os.environ["WORLD_SIZE"],
                                  LOCAL_RANK=os.environ["LOCAL_RANK"]))
try:
    loader = numafeed.Loader(path, 50, device="cpu", seed=seed, return_ids=True)
    report["state"] = loader.state_dict()
    report["epochs"] = []
    for epoch in range(2):
        loader.set_epoch(epoch)
        ids, batches = [], 0
        for _, i in loader:
            ids.extend(i.tolist())
            batches += 1
        report["epochs"].append(dict(ids=ids, batches=batches, len=len(loader)))
    loader.close()
except numafeed.NumafeedError as e:
    report["error"] = str(e)
with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
    json.dump(report, f)
dist.destroy_process_group()
