"""The training scripts of the appendix "Scaling up with accelerate": python -m posttrain_utils.scaling.train."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from posttrain_utils.scaling import train

ROOT = Path(__file__).resolve().parents[1]
COMMON_FLAGS = ("--profile", "--seed", "--output-dir", "--max-steps", "--per-device-batch-size",
                "--gradient-accumulation-steps", "--learning-rate", "--logging-steps", "--max-length", "--model")


def test_help_runs_as_a_module():
    done = subprocess.run([sys.executable, "-m", "posttrain_utils.scaling.train", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "{sft,dpo,grpo}" in done.stdout and "torchrun" in done.stdout


@pytest.mark.parametrize("method, extra", [("sft", ("--eval-steps",)), ("dpo", ("--loss", "--beta")),
                                           ("grpo", ("--loss-type", "--num-generations",
                                                     "--max-completion-length"))])
def test_each_method_help_explains_every_flag(method, extra, capsys):
    with pytest.raises(SystemExit) as exit_:
        train.main([method, "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for flag in (*COMMON_FLAGS, *extra):
        assert flag in text, flag
    helps = {a.dest: a.help for a in train.parser()._subparsers._group_actions[0].choices[method]._actions}
    assert all(helps.values()), [dest for dest, text in helps.items() if not text]


@pytest.mark.parametrize("argv, message", [
    (["sft", "--output-dir", "x", "--max-steps", "0"], "expected a positive integer, got 0"),
    (["sft", "--output-dir", "x", "--max-steps", "ten"], "expected a positive integer, got 'ten'"),
    (["sft", "--output-dir", "x", "--learning-rate", "-1"], "expected a positive number, got -1.0"),
    (["sft", "--output-dir", "x", "--bogus"], "unrecognized arguments: --bogus"),
    (["sft", "--max-steps", "3"], "the following arguments are required: --output-dir"),
    (["ppo", "--output-dir", "x"], "invalid choice: 'ppo'"),
    (["grpo", "--output-dir", "x", "--num-generations", "1"], "--num-generations must be at least 2"),
    (["sft", "--output-dir", "x", "--eval-steps", "-5"], "--eval-steps must be >= 0"),
])
def test_bad_flags_fail_with_a_clear_message(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        train.main(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_overrides_change_only_the_flags_given():
    args = train.parser().parse_args(["sft", "--output-dir", "x", "--max-steps", "7"])
    changes = train.overrides(args)
    assert changes["max_steps"] == 7 and changes["eval_strategy"] == "no"
    assert "per_device_train_batch_size" not in changes and "learning_rate" not in changes
    args = train.parser().parse_args(["dpo", "--output-dir", "x", "--per-device-batch-size", "2",
                                      "--beta", "0.3"])
    assert train.overrides(args)["per_device_train_batch_size"] == 2 and train.overrides(args)["beta"] == 0.3


def test_unknown_start_model_is_named(tmp_path):
    from posttrain_utils.runtime import profiles

    with pytest.raises(FileNotFoundError, match="neither 'base', a stage"):
        train.load_start(str(tmp_path / "missing"), profiles.get_profile("cpu"))


@pytest.mark.parametrize("argv", [
    ["sft", "--max-steps", "2", "--per-device-batch-size", "4", "--max-length", "64"],
    ["dpo", "--model", "base", "--max-steps", "1", "--per-device-batch-size", "2", "--max-length", "64"],
    ["grpo", "--model", "base", "--max-steps", "1", "--per-device-batch-size", "8", "--num-generations", "4",
     "--max-completion-length", "8"],
])
def test_each_method_trains_and_writes_its_summary(argv, tmp_path, capsys):
    """One or two steps of each method from the chapter's recipe, in this process."""
    summary = train.main([*argv, "--profile", "cpu", "--output-dir", str(tmp_path)])
    method = argv[0]
    assert summary["method"] == method and summary["world_size"] == 1
    assert summary["steps"] == int(argv[argv.index("--max-steps") + 1])
    written = json.loads((tmp_path / train.SUMMARY_FILE).read_text())
    assert written["final_loss"] == pytest.approx(summary["final_loss"])
    assert summary["final_loss"] == summary["final_loss"]  # not NaN: a loss was logged
    line = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith(f"{method}: ")]
    assert line and "world size 1" in line[-1] and "final loss" in line[-1]
