"""Starting a script on several processes from a notebook: torchrun and accelerate launch.

Introduced in the appendix "Scaling up with accelerate" (chapter 11), which launches
`posttrain_utils.scaling.train` and `posttrain_utils.scaling.memory` on 2 CPU processes from its cells.

* `command(module, args, launcher, nproc)`: the command line for ``python -m module`` alone,
  under ``torchrun`` (``python -m torch.distributed.run``) or under ``accelerate launch``;
* `run(...)`: runs it from the repository root with the course's offline, one-thread environment
  and returns the finished process, raising with the last lines of its stderr if it failed;
* ``python -m posttrain_utils.scaling.launching``: a probe that prints the rank, world size and
  accelerate's distributed type of each process it runs in (`whoami`).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from ..runtime.paths import REPO_ROOT

CONFIG_DIR = REPO_ROOT / "configs" / "accelerate"  # ddp.yaml, fsdp.yaml, deepspeed_zero{2,3}.yaml
LAUNCHERS = ("python", "torchrun", "accelerate")
_ENV = {"OMP_NUM_THREADS": "1", "POSTTRAIN_NO_NETWORK": "1", "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def free_port() -> int:
    """A free TCP port on the loopback interface, for a rendezvous."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def command(module: str, args=(), launcher: str = "python", nproc: int = 1,
            accelerate_args=()) -> list[str]:
    """The command line that runs ``python -m module args`` under `launcher`.

    Args:
        module: a module with a command line, e.g. ``"posttrain_utils.scaling.train"``.
        args: its arguments.
        launcher: ``"python"`` (one process), ``"torchrun"`` (`nproc` processes, loopback
            rendezvous on a free port) or ``"accelerate"`` (``accelerate launch``).
        nproc: processes for ``torchrun``; for ``accelerate``, passed as ``--num_processes``.
        accelerate_args: further ``accelerate launch`` flags, e.g. ``["--cpu"]`` or
            ``["--config_file", str(CONFIG_DIR / "ddp.yaml")]``.
    """
    if launcher not in LAUNCHERS:
        raise ValueError(f"unknown launcher {launcher!r}; expected one of {LAUNCHERS}")
    if not isinstance(nproc, int) or nproc < 1:
        raise ValueError(f"nproc must be a positive int, got {nproc!r}")
    script = ["-m", module, *map(str, args)]
    if launcher == "python":
        if nproc != 1:
            raise ValueError("a plain python launch runs one process; use torchrun or accelerate")
        return [sys.executable, *script]
    if launcher == "torchrun":
        return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
                "--master_addr", "127.0.0.1", "--master_port", str(free_port()), *script]
    return [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(nproc),
            "--main_process_port", str(free_port()), *map(str, accelerate_args), *script]


def run(cmd: list[str], profile: str = "cpu", timeout: int = 600) -> subprocess.CompletedProcess:
    """Run `cmd` from the repository root, offline, one thread per process, in `profile`.

    Raises:
        RuntimeError: if the command fails, with the last lines of its stderr.
    """
    env = dict(os.environ, POSTTRAIN_PROFILE=profile, PYTHONPATH=str(REPO_ROOT), **_ENV)
    done = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        tail = "\n".join(done.stderr.splitlines()[-15:])
        raise RuntimeError(f"{' '.join(cmd[:6])} ... failed ({done.returncode}):\n{tail}")
    return done


def lines(done: subprocess.CompletedProcess, prefix: str) -> list[str]:
    """The messages of a finished process's stdout that start with `prefix`, sorted.

    Processes share one stdout, so two messages can land on one line; each is cut at the next
    `prefix` (which must therefore not occur inside a message).
    """
    found = []
    for line in done.stdout.splitlines():
        found += [prefix + part.rstrip() for part in line.split(prefix)[1:]]
    return sorted(found)


def whoami() -> str:
    """``rank R of W, DistributedType.X, backend B``, as accelerate sees this process (on CPU)."""
    from accelerate import PartialState

    state = PartialState(cpu=True)
    return (f"rank {state.process_index} of {state.num_processes}, {state.distributed_type}, "
            f"backend {state.backend}")


if __name__ == "__main__":
    print("whoami:", whoami(), flush=True)
