"""Data-parallel training (the appendix "Scaling up with accelerate"): DDP on 2 CPU processes
equals one process with the same global batch, and the accelerate configs in configs/accelerate
are accepted by accelerate 1.15's own config loader and launch-argument validation.

The DDP test starts real processes: ``torchrun`` (``torch.distributed.run``) with 2 workers on
gloo, against a plain single process, both through ``python -m posttrain_utils.scaling.train``.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs" / "accelerate"
CONFIG_NAMES = ("ddp", "fsdp", "deepspeed_zero2", "deepspeed_zero3")
STEPS, PER_DEVICE, MAX_LENGTH = 6, 4, 64
# fp32 on both sides; only the order of floating-point sums differs (two half-batch gradients
# all-reduced by gloo vs one batch). Measured: at most ~2e-7 over 6 steps. 1e-4 leaves room for
# other CPUs' kernels, and is far below what a wrong data split or a missing gradient average
# changes (the control below: more than 1e-2).
TOLERANCE = 1e-4


def _env():
    return dict(os.environ, OMP_NUM_THREADS="1", POSTTRAIN_PROFILE="cpu", POSTTRAIN_NO_NETWORK="1",
                HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT))


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(out: Path, batch: int, nproc: int = 1) -> subprocess.Popen:
    args = ["-m", "posttrain_utils.scaling.train", "sft", "--profile", "cpu", "--seed", "0",
            "--max-steps", str(STEPS), "--per-device-batch-size", str(batch),
            "--max-length", str(MAX_LENGTH), "--output-dir", str(out)]
    launcher = ([] if nproc == 1 else
                ["-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--master_addr", "127.0.0.1",
                 "--master_port", str(_free_port())])
    return subprocess.Popen([sys.executable, *launcher, *args], cwd=ROOT, env=_env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _finish(proc: subprocess.Popen, out: Path, nproc: int = 1) -> dict:
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-3000:]
    assert f"world size {nproc}" in stdout, stdout[-1000:]
    return json.loads((out / "summary.json").read_text())


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The two single-process runs side by side (one thread each, 2 cores), then the 2-process run."""
    tmp = tmp_path_factory.mktemp("ddp")
    single, half = _start(tmp / "single", 2 * PER_DEVICE), _start(tmp / "half", PER_DEVICE)
    out = {"single": _finish(single, tmp / "single"), "half": _finish(half, tmp / "half")}
    out["ddp"] = _finish(_start(tmp / "ddp", PER_DEVICE, nproc=2), tmp / "ddp", nproc=2)
    return out


def test_ddp_runs_two_processes_with_the_same_global_batch(runs):
    assert runs["ddp"]["world_size"] == 2 and runs["single"]["world_size"] == 1
    assert runs["ddp"]["global_batch"] == runs["single"]["global_batch"] == 2 * PER_DEVICE
    assert runs["ddp"]["steps"] == runs["single"]["steps"] == STEPS


def test_ddp_loss_curve_equals_single_process(runs):
    """accelerate shards the Trainer's seeded sampler (SeedableRandomSampler, data_seed=seed) by
    batches: rank r takes per-device batches r, r+2, ..., so a 2-process step sees exactly the 2B
    examples of the single process's step (shuffled, same order), and DDP averages the gradients."""
    ddp, single = dict(runs["ddp"]["losses"]), dict(runs["single"]["losses"])
    assert sorted(ddp) == sorted(single) == list(range(1, STEPS + 1))
    diff = max(abs(ddp[s] - single[s]) for s in ddp)
    assert diff < TOLERANCE, (diff, ddp, single)


def test_tolerance_separates_a_different_batch(runs):
    """The control: half the global batch (one process, batch B) gives another curve."""
    ddp, half = dict(runs["ddp"]["losses"]), dict(runs["half"]["losses"])
    assert max(abs(ddp[s] - half[s]) for s in ddp) > 100 * TOLERANCE


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_config_is_commented_line_by_line(name):
    lines = (CONFIGS / f"{name}.yaml").read_text().splitlines()
    settings = [line for line in lines if line.strip() and not line.lstrip().startswith("#")]
    uncommented = [line for line in settings if " # " not in line and not line.rstrip().endswith(":")]
    assert settings and not uncommented, uncommented


@pytest.mark.parametrize("name, kind", [("ddp", "MULTI_GPU"), ("fsdp", "FSDP"),
                                        ("deepspeed_zero2", "DEEPSPEED"), ("deepspeed_zero3", "DEEPSPEED")])
def test_accelerate_loads_the_config(name, kind):
    from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file

    config = load_config_from_file(str(CONFIGS / f"{name}.yaml"))  # raises on unknown keys
    assert isinstance(config, ClusterConfig)
    assert config.distributed_type.value == kind
    assert config.num_processes == 2 and config.mixed_precision == "bf16"


def _validated(name: str):
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser

    args = launch_command_parser().parse_args(["--config_file", str(CONFIGS / f"{name}.yaml"), "train.py"])
    return _validate_launch_command(args)


@pytest.mark.parametrize("name, launcher", [("ddp", "multi_gpu"), ("fsdp", "use_fsdp"),
                                            ("deepspeed_zero2", "use_deepspeed"),
                                            ("deepspeed_zero3", "use_deepspeed")])
def test_accelerate_launch_accepts_the_config(name, launcher):
    """`accelerate launch` validates the file and picks the launcher (multi-process, not the
    single-process 'simple' launcher that `--cpu` and MULTI_CPU configs get)."""
    args, defaults, _ = _validated(name)
    flags = {"multi_gpu": args.multi_gpu, "use_fsdp": args.use_fsdp, "use_deepspeed": args.use_deepspeed}
    assert flags.pop(launcher) is True and not any(flags.values())
    assert args.num_processes == 2 and not args.cpu


def test_fsdp_config_builds_an_fsdp2_full_shard_plugin(monkeypatch):
    """The environment `accelerate launch` would set for fsdp.yaml gives a valid FSDP2 plugin that
    wraps each LlamaDecoderLayer (the class of the tiny model's blocks)."""
    from accelerate.utils import FullyShardedDataParallelPlugin
    from accelerate.utils.launch import prepare_multi_gpu_env
    from transformers.models.llama.modeling_llama import LlamaDecoderLayer

    args, _, _ = _validated("fsdp")
    for key, value in prepare_multi_gpu_env(args).items():
        if key.startswith(("FSDP_", "ACCELERATE_USE_FSDP")):
            monkeypatch.setenv(key, value)
    plugin = FullyShardedDataParallelPlugin()
    assert plugin.fsdp_version == 2 and plugin.reshard_after_forward is True
    assert plugin.transformer_cls_names_to_wrap == [LlamaDecoderLayer.__name__]
    assert plugin.cpu_ram_efficient_loading is True


@pytest.mark.parametrize("name, stage", [("deepspeed_zero2", "2"), ("deepspeed_zero3", "3")])
def test_deepspeed_config_reaches_the_launch_environment(name, stage):
    from accelerate.utils.launch import prepare_deepspeed_cmd_env

    args, defaults, _ = _validated(name)
    args.deepspeed_fields_from_accelerate_config = ",".join(defaults.deepspeed_config)
    _, env = prepare_deepspeed_cmd_env(args)
    assert env["ACCELERATE_USE_DEEPSPEED"] == "true"
    assert env["ACCELERATE_DEEPSPEED_ZERO_STAGE"] == stage
    assert env["ACCELERATE_DEEPSPEED_ZERO3_INIT"] == ("true" if stage == "3" else "false")
