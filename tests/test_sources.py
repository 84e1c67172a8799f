"""The package's shape (issue 29): no import cycles, no private names across modules, and
fingerprints that follow what a stage's module imports, however indirectly."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

from posttrain_utils.runtime import graph, profiles, sources
from posttrain_utils.runtime.paths import PACKAGE_DIR

PROFILE = profiles.CPU


def test_the_package_has_no_import_cycle():
    cycle = sources.find_cycle(sources.import_graph())
    assert cycle is None, " -> ".join(cycle)


def test_find_cycle_finds_one_and_ignores_a_package_importing_its_own_modules():
    assert sources.find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert sources.find_cycle({"p": {"p.x"}, "p.x": {"p"}}) is None
    assert sources.find_cycle({"a": {"b"}, "b": set()}) is None


def test_a_planted_cycle_is_found(tmp_path):
    copy = _copy_package(tmp_path)
    target = copy / "posttrain_utils" / "evaluation" / "winrate.py"
    target.write_text(target.read_text() + "\n\ndef _planted():\n    from .metrics import rouge\n")
    metrics = copy / "posttrain_utils" / "evaluation" / "metrics.py"
    metrics.write_text(metrics.read_text() + "\n\ndef _planted():\n    from .winrate import win_rate\n")
    cycle = sources.find_cycle(sources.import_graph(copy))
    assert cycle is not None and set(cycle) == {"posttrain_utils.evaluation.winrate",
                                                "posttrain_utils.evaluation.metrics"}


def test_imports_are_read_wherever_they_stand():
    # ppo.stages imports the trainer inside `train`; the trainer imports the rollouts at its top
    closure = sources.closure("posttrain_utils.ppo.stages")
    assert {"posttrain_utils.ppo.trainer", "posttrain_utils.evaluation.rollouts",
            "posttrain_utils.reward.bradley_terry", "posttrain_utils.ppo.losses"} <= set(closure)
    assert "posttrain_utils.evaluation.winrate" not in closure


def test_the_report_cards_key_covers_sampling_and_the_reward_model():
    closure = sources.closure("posttrain_utils.evaluation.report_card.scoring")
    assert {"posttrain_utils.evaluation.rollouts", "posttrain_utils.reward.bradley_terry",
            "posttrain_utils.evaluation.winrate", "posttrain_utils.evaluation.judgements",
            "posttrain_utils.reward.overoptimization"} <= set(closure)


def _copy_package(tmp_path) -> Path:
    shutil.copytree(PACKAGE_DIR, tmp_path / "posttrain_utils",
                    ignore=shutil.ignore_patterns("assets", "__pycache__"))
    return tmp_path


@pytest.fixture
def copied(tmp_path, monkeypatch):
    """A copy of the package that `graph.fingerprint` reads the sources of."""
    root = _copy_package(tmp_path)
    monkeypatch.setattr(sources, "PACKAGE_DIR", root / "posttrain_utils")
    return root / "posttrain_utils"


def _append(path: Path, text: str = "\n# an edit\n") -> None:
    path.write_text(path.read_text() + text)


def test_an_edit_a_stage_reaches_only_indirectly_changes_its_fingerprint(copied):
    before = {name: graph.fingerprint(name, PROFILE) for name in ("ppo", "ppo-hack", "sft", "dpo")}
    # ppo.stages -> ppo.trainer -> evaluation.rollouts: two imports away from the stage's module
    assert "posttrain_utils.evaluation.rollouts" not in sources.imports_of("posttrain_utils.ppo.stages")
    _append(copied / "evaluation" / "rollouts.py")
    after = {name: graph.fingerprint(name, PROFILE) for name in before}
    assert after["ppo"] != before["ppo"] and after["ppo-hack"] != before["ppo-hack"]
    assert after["dpo"] != before["dpo"]  # its judge's drift report samples with the rollouts
    assert after["sft"] == before["sft"]


def test_an_unrelated_edit_changes_no_fingerprint(copied):
    names = [name for name in graph.all_stages() if name not in ("base", graph.WORLD_BASE)]
    before = {name: graph.fingerprint(name, PROFILE) for name in names}
    for name in names:  # chapter 9's win-rate statistics are read by no stage
        assert "posttrain_utils.evaluation.winrate" not in sources.closure(graph.get_stage(name).module)
    _append(copied / "evaluation" / "winrate.py")
    assert {name: graph.fingerprint(name, PROFILE) for name in names} == before
    _append(copied / "sft" / "recipe.py")  # upstream of most stages: their fingerprints chain
    after = {name: graph.fingerprint(name, PROFILE) for name in names}
    assert after["sft"] != before["sft"] and after["reward"] != before["reward"]
    assert after["lora"] != before["lora"]  # lora.adapters runs sft.recipe's trainer
    assert after["grpo"] != before["grpo"]  # trained from the sft stage


def test_the_graphs_own_machinery_retrains_nothing(copied):
    names = [name for name in graph.all_stages() if name not in ("base", graph.WORLD_BASE)]
    before = {name: graph.fingerprint(name, PROFILE) for name in names}
    assert "posttrain_utils.runtime.graph" in sources.closure("posttrain_utils.ppo.stages")
    for module in ("graph", "sources", "checkpoints"):
        _append(copied / "runtime" / f"{module}.py")
    assert {name: graph.fingerprint(name, PROFILE) for name in names} == before
    _append(copied / "runtime" / "profiles.py")  # seeds and budgets: every stage retrains
    assert all(graph.fingerprint(name, PROFILE) != before[name] for name in names)


def _private_uses(path: Path, module: str) -> list[str]:
    """``from x import _name`` and ``alias._name`` where alias is a package module: a private name
    of another module."""
    tree = ast.parse(path.read_text())
    aliases, found = set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith(
                "posttrain_utils")) and node.module != "__future__":
            for a in node.names:
                if a.name.startswith("_") and not a.name.startswith("__"):
                    found.append(f"{module}: from {'.' * node.level}{node.module or ''} import {a.name}")
                aliases.add(a.asname or a.name)
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in aliases and node.attr.startswith("_")
                and not node.attr.startswith("__")):
            found.append(f"{module}: {node.value.id}.{node.attr}")
    return found


def test_no_module_reaches_into_another_modules_private_names():
    found = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        found += _private_uses(path, path.relative_to(PACKAGE_DIR.parent).as_posix())
    assert found == []


def test_stages_are_declared_next_to_their_method():
    stages = graph.all_stages()
    assert list(stages)[0] == "base"
    for name, stage in stages.items():
        if stage.module is None:
            continue
        package = stage.module.split(".")[1]
        declared = (PACKAGE_DIR / package / "stages.py").read_text()
        assert f'"{name}"' in declared or name == graph.WORLD_BASE, name
        assert sources.module_file(stage.module) is not None, stage.module
    chapters = [s.chapter for s in stages.values() if s.module]
    assert chapters == sorted(chapters)  # listed in chapter order


def test_every_module_opens_with_a_docstring_and_stays_short():
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        text = path.read_text()
        if path.name == "__init__.py" and not text.strip():
            continue
        assert ast.get_docstring(ast.parse(text)), path
        assert len(text.splitlines()) <= 320, (path, len(text.splitlines()))
