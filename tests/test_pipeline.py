"""The one-command pipeline: dependency order, caching, --force, the report card and the CLI."""

import dataclasses

import pytest

from posttrain_utils.runtime import pipeline
from posttrain_utils.evaluation import report_card
from posttrain_utils.evaluation.report_card import rows as rc_rows, scoring as rc_scoring
from posttrain_utils.sft import recipe as sft
from posttrain_utils.data import load_records
from posttrain_utils.runtime import checkpoints, paths, profiles

TINY_SFT = {"max_steps": 3, "per_device_train_batch_size": 4, "learning_rate": 1e-3}


@pytest.mark.parametrize("profile", [profiles.CPU, profiles.GPU], ids=["cpu", "gpu"])
def test_order_puts_every_stage_after_its_upstream_stages(profile):
    names = pipeline.order(None, profile)
    assert "base" not in names and len(names) == len(set(names))
    assert (checkpoints.WORLD_BASE in names) == (checkpoints.base_stage(profile) != "base")
    trained = [s for s in checkpoints.STAGES if pipeline._trained(s, profile)]
    assert sorted(names) == sorted(trained)
    for name in names:
        for up in checkpoints.resolve_upstream(checkpoints.STAGES[name], profile):
            assert up == "base" or names.index(up) < names.index(name), (name, up)


def test_order_with_only_adds_the_upstream_stages_and_nothing_else():
    assert pipeline.order(["rl-cai"], profiles.CPU) == ["sft", "sl-cai", "rl-cai"]
    assert pipeline.order(["ppo", "sft"], profiles.CPU) == ["sft", "reward", "ppo"]
    assert pipeline.order(["sft"], profiles.GPU) == [checkpoints.WORLD_BASE, "sft"]
    assert pipeline.order(["base"], profiles.CPU) == []
    with pytest.raises(ValueError, match="no 'world-base' stage"):
        pipeline.order([checkpoints.WORLD_BASE], profiles.CPU)
    with pytest.raises(ValueError, match="unknown stage"):
        pipeline.order(["nope"], profiles.CPU)


def test_bad_only_is_a_clear_command_line_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        pipeline.main(["--only", "nope"])
    assert exit_.value.code == 2
    assert "argument --only: invalid choice: 'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        pipeline.main(["--profile", "cpu", "--only", checkpoints.WORLD_BASE])
    assert exit_.value.code == 2
    assert "profile 'cpu' has no 'world-base' stage" in capsys.readouterr().err


@pytest.fixture
def tiny(monkeypatch, tmp_path):
    """The cpu profile with a 3-step SFT budget, a tmp cache and a report card of three rows
    (base, SFT, DPO) judged on six records, with short replies."""
    monkeypatch.setenv(paths.CACHE_ENV, str(tmp_path / "cache"))
    by_task = {}
    for rec in load_records("eval_test"):
        kind = "facts" if rec["task"] not in ("sum", "harmful") else rec["task"]
        by_task.setdefault(kind, []).append(rec)
    records = [rec for recs in by_task.values() for rec in recs[:2]]
    monkeypatch.setattr(rc_rows, "records", lambda: records)
    monkeypatch.setattr(rc_rows, "N_KL", 4)
    monkeypatch.setattr(rc_rows, "KL_MAX_NEW_TOKENS", 8)
    monkeypatch.setattr(rc_rows, "ROWS", tuple(
        row for row in report_card.ROWS if row.name in ("base", "SFT", "DPO")))
    return dataclasses.replace(profiles.CPU, max_new_tokens=12,
                               budgets={**profiles.CPU.budgets, "sft": TINY_SFT})


def test_run_trains_caches_forces_and_writes_the_card(tiny, monkeypatch, tmp_path, capsys):
    out = tmp_path / "reports"
    first = pipeline.run(tiny, only=["sft"], out=out)
    folder = checkpoints.cache_dir(tiny) / "sft"
    assert first["stages"]["sft"]["status"] == "trained" and list(first["stages"]) == ["sft"]
    wanted = checkpoints.fingerprint("sft", tiny)
    assert (folder / checkpoints.FINGERPRINT_FILE).read_text() == wanted
    md, png = first["report"]
    assert md == out / "report_card.md" and png.stat().st_size > 0
    text = md.read_text()
    assert "| base |" in text and "| SFT |" in text and "DPO" not in text  # dpo is not cached
    assert {name: r["status"] for name, r in first["rows"].items()} == {"SFT": "scored",
                                                                        "base": "scored"}
    printed = capsys.readouterr().out
    assert "sft: trained in " in printed and str(folder) in printed and "total wall time" in printed

    def no_training(*args, **kwargs):
        raise AssertionError("a cached stage was retrained")

    def no_scoring(*args, **kwargs):
        raise AssertionError("a cached row was rescored")

    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    with monkeypatch.context() as m:
        m.setattr(sft, "train", no_training)
        m.setattr(rc_scoring, "row_replies", no_scoring)
        second = pipeline.run(tiny, only=["sft"], out=out)
    assert second["stages"]["sft"]["status"] == "cached"
    assert all(r["status"] == "cached" for r in second["rows"].values())
    assert f"sft: cached ({folder})" in capsys.readouterr().out

    calls = []
    real_train = sft.train

    def counted(*args, **kwargs):
        calls.append(args)
        return real_train(*args, **kwargs)

    monkeypatch.setattr(sft, "train", counted)
    forced = pipeline.run(tiny, only=["sft"], force=True, out=out)
    assert len(calls) == 1 and forced["stages"]["sft"]["status"] == "trained"
    assert (folder / "model.safetensors").stat().st_mtime_ns != stamp
    assert checkpoints.is_cached("sft", tiny)
    assert forced["rows"]["SFT"]["status"] == "scored"  # its stage was forced
    assert forced["rows"]["base"]["status"] == "cached"

    monkeypatch.setattr(rc_rows, "ROWS", tuple(r for r in report_card.ROWS if r.name == "DPO"))
    none = pipeline.run(tiny, only=["sft"], out=tmp_path / "empty")
    assert none["report"] is None and not (tmp_path / "empty").exists()
    trained_only = pipeline.run(tiny, only=["sft"], report=False, out=tmp_path / "empty")
    assert trained_only["rows"] == {} and trained_only["stages"]["sft"]["status"] == "cached"
