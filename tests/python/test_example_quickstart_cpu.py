# SPDX-License-Identifier: Apache-2.0
"""examples/quickstart_cpu.py, the README's CPU example, runs without a GPU
and without torch and checks what it says: every document exactly once per
epoch. Its packed dataset is then read here again to see that it holds the
documents the example generated."""
import os
import subprocess
import sys

import numafeed

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "quickstart_cpu.py")


def test_quickstart_cpu_runs_and_checks_itself(tmp_path):
    out = tmp_path / "ds"
    # torch hidden: the example must not need it
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(tmp_path / "notorch")] + [p for p in sys.path if p]))
    (tmp_path / "notorch").mkdir()
    (tmp_path / "notorch" / "torch.py").write_text("raise ImportError('torch hidden')\n")
    r = subprocess.run([sys.executable, EXAMPLE, str(out)], capture_output=True, text=True,
                       timeout=300, env=env)
    assert r.returncode == 0, r.stderr
    assert "5000 documents x 2 epochs" in r.stdout and "exactly once" in r.stdout
    with numafeed.Loader(str(out), batch_size=5000, device="cpu", output="numpy",
                         shuffle=False) as loader:
        batch = next(iter(loader))
    assert len(batch["tokens"]) == 5000
    assert list(batch["label"][:12]) == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
    lengths = batch["tokens"].lengths()
    assert lengths.min() >= 16 and lengths.max() < 512
