# SPDX-License-Identifier: Apache-2.0
"""The launcher's environment is read as the C library and the CLI read it
(numafeed_launch_env): torchrun's, Open MPI's and Slurm's variables, the
innermost launcher first, for the default GPU (local rank) and the default
rank and world size."""
import pytest

import numafeed
from conftest import N_RECORDS, epoch_ids

LAUNCH_VARS = ("LOCAL_RANK", "RANK", "WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK",
               "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "SLURM_LOCALID", "SLURM_PROCID",
               "SLURM_NTASKS")


@pytest.fixture
def env(monkeypatch):
    for name in LAUNCH_VARS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def part(dataset):
    with numafeed.Loader(dataset, 50, device="cpu", return_ids=True) as loader:
        state = loader.state_dict()
        ids = epoch_ids(loader)
    return state["rank"], state["world_size"], ids


@pytest.mark.parametrize("launcher", [("RANK", "WORLD_SIZE"),
                                      ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"),
                                      ("SLURM_PROCID", "SLURM_NTASKS")])
def test_rank_and_world_size_from_each_launcher(dataset, env, launcher):
    parts = []
    for rank in range(2):
        env.setenv(launcher[0], str(rank))
        env.setenv(launcher[1], "2")
        r, w, ids = part(dataset)
        assert (r, w) == (rank, 2)
        parts.append(set(ids))
    assert not parts[0] & parts[1] and len(parts[0] | parts[1]) == N_RECORDS


def test_the_innermost_launcher_wins(dataset, env):
    # srun torchrun: torchrun's RANK/WORLD_SIZE beside Slurm's task's
    env.setenv("SLURM_PROCID", "3")
    env.setenv("SLURM_NTASKS", "4")
    env.setenv("RANK", "1")
    env.setenv("WORLD_SIZE", "2")
    assert part(dataset)[:2] == (1, 2)


def test_nothing_set_is_rank_0_of_1(dataset, env):
    r, w, ids = part(dataset)
    assert (r, w) == (0, 1) and sorted(ids) == list(range(N_RECORDS))


@pytest.mark.parametrize("var", ["LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID"])
def test_default_gpu_is_the_local_rank_of_any_launcher(tokens_dataset, env, var):
    env.setenv(var, "1")
    with numafeed.Loader(tokens_dataset, 10, device="cpu") as loader:
        assert loader.stats()["pool"]["cuda_ordinal"] == 1
    env.setenv("LOCAL_RANK", "0")  # torchrun inside: its local rank wins
    with numafeed.Loader(tokens_dataset, 10, device="cpu") as loader:
        assert loader.stats()["pool"]["cuda_ordinal"] == 0


@pytest.mark.parametrize("setting,says", [(dict(RANK="x", WORLD_SIZE="2"), "RANK"),
                                          (dict(RANK="1"), "WORLD_SIZE"),
                                          (dict(SLURM_PROCID="2", SLURM_NTASKS="2"), "SLURM")])
def test_a_bad_environment_is_named(dataset, env, setting, says):
    for k, v in setting.items():
        env.setenv(k, v)
    with pytest.raises(ValueError, match=says):
        numafeed.Loader(dataset, 50, device="cpu")
