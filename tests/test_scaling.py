"""Memory arithmetic of the appendix "Scaling up with accelerate" (posttrain_utils.scaling)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from posttrain_utils import scaling

ROOT = Path(__file__).resolve().parents[1]
GB = 1e9


def test_zero_paper_numbers():
    """The ZeRO paper's example: 7.5 B parameters on 64 GPUs, bf16/fp16 mixed precision with Adam:
    120 GB per GPU with DDP, 31.4 GB with ZeRO stage 1 (Pos), 16.6 GB with stage 2 (Pos+g) and
    1.88 GB with stage 3 (Pos+g+p) (Rajbhandari et al. 2020, Figure 1)."""
    n = 7_500_000_000
    assert scaling.per_gpu_bytes(n, 64, "ddp")["total"] == 120 * GB
    assert scaling.per_gpu_bytes(n, 64, "zero1")["total"] / GB == pytest.approx(31.4, abs=0.05)
    assert scaling.per_gpu_bytes(n, 64, "zero2")["total"] / GB == pytest.approx(16.6, abs=0.05)
    assert scaling.per_gpu_bytes(n, 64, "zero3")["total"] / GB == pytest.approx(1.88, abs=0.01)


def test_split_per_strategy():
    n, g = 1000, 4
    ddp = scaling.per_gpu_bytes(n, g, "ddp")
    assert (ddp["params"], ddp["grads"], ddp["optimizer"]) == (2000, 2000, 12000)
    z2 = scaling.per_gpu_bytes(n, g, "zero2")
    assert (z2["params"], z2["grads"], z2["optimizer"]) == (2000, 500, 3000)
    fsdp = scaling.per_gpu_bytes(n, g, "fsdp")
    assert (fsdp["params"], fsdp["grads"], fsdp["optimizer"]) == (1000, 1000, 2000)
    assert fsdp["total"] == scaling.per_gpu_bytes(n, g, "zero3")["total"] == 16 * n // g
    assert scaling.per_gpu_bytes(1001, 2, "zero3")["params"] == 2 * 501  # the last shard is padded


def test_one_gpu_is_the_same_for_every_strategy():
    totals = {s: scaling.per_gpu_bytes(7_000_000_000, 1, s)["total"] for s in scaling.STRATEGIES}
    assert set(totals.values()) == {16 * 7_000_000_000}


@pytest.mark.parametrize("kwargs, message", [
    (dict(n_params=0, n_gpus=1, strategy="ddp"), "n_params must be a positive int"),
    (dict(n_params=10, n_gpus=1.5, strategy="ddp"), "n_gpus must be a positive int"),
    (dict(n_params=10, n_gpus=1, strategy="zero4"), "unknown strategy"),
    (dict(n_params=10, n_gpus=1, strategy="ddp", precision="fp8"), "unknown precision"),
])
def test_bad_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        scaling.per_gpu_bytes(**kwargs)


def test_table_shape_and_values():
    frame = scaling.table()
    assert list(frame.columns) == ["ddp", "zero2", "zero3", "fsdp"]
    assert frame.loc[("7B", 1), "ddp"] == pytest.approx(16 * 7e9 / 1024 ** 3)
    assert frame.loc[("7B", 8), "zero3"] == pytest.approx(2 * 7e9 / 1024 ** 3)
    assert frame.loc[("1B", 2), "zero2"] == pytest.approx((2 + 14 / 2) * 1e9 / 1024 ** 3)


def test_measured_bytes_of_one_process_equal_the_formula():
    import torch

    from posttrain_utils.runtime.models import load_model
    from posttrain_utils.runtime import profiles

    model, _ = load_model(None, profiles.get_profile("cpu"))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    ids = torch.randint(0, model.config.vocab_size, (2, 16))
    model(input_ids=ids, labels=ids).loss.backward()
    optimizer.step()
    measured = scaling.state_bytes(model, optimizer)
    formula = scaling.per_gpu_bytes(measured["n_params"], 1, "ddp", precision="fp32")
    assert {k: measured[k] for k in formula} == formula
    assert measured["n_params"] == sum(p.numel() for p in model.parameters()) > 1_000_000


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_fsdp2_on_two_cpu_processes_holds_half_of_everything(tmp_path):
    """FSDP2 (`fully_shard`) on gloo: each rank holds exactly the formula's share, and the global
    loss equals the single process's."""
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT))
    base = [sys.executable, "-m", "posttrain_utils.scaling.memory", "--steps", "2"]
    one = subprocess.run([*base, "--output-dir", str(tmp_path / "one")], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                          "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), *base[1:], "--output-dir", str(tmp_path / "two")],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert two.returncode == 0, two.stderr[-2000:]
    single = json.loads((tmp_path / "one" / "bytes_rank0.json").read_text())
    ranks = [json.loads((tmp_path / "two" / f"bytes_rank{r}.json").read_text()) for r in (0, 1)]
    formula = scaling.per_gpu_bytes(single["n_params"], 2, "fsdp", precision="fp32")
    for rank in ranks:
        assert rank["sharded"] and rank["world_size"] == 2
        assert {k: rank[k] for k in formula} == formula
        assert rank["losses"] == pytest.approx(single["losses"], abs=1e-4)
