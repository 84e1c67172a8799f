"""The development / test split of the held-out evaluation data: choices read development data only.

`data.selection_records` refuses the test file; chapter 6's pick reads its development rows alone;
and no chapter or package module hands the test file to a selection helper. (That dev and test
share no fact, sum or harmful request is in tests/test_world.py.)
"""

import re

import pytest

from posttrain_utils import data
from posttrain_utils.dpo import family
from posttrain_utils.runtime.paths import PACKAGE_DIR, REPO_ROOT


def test_selection_records_reads_dev_and_refuses_test():
    assert data.selection_records() == data.load_records("eval_dev")
    assert data.selection_records(data.DEV, 5) == data.load_records("eval_dev")[:5]
    for name in ("eval_test", "sft_heldout", "preference_heldout"):
        with pytest.raises(ValueError, match="development data"):
            data.selection_records(name)


def test_test_records_are_the_test_file():
    assert data.test_records() == data.load_records("eval_test")
    assert data.test_records(7) == data.load_records("eval_test")[:7]
    assert family.heldout() == data.load_records("eval_test")[: family.N_HELDOUT]


def _row(dispreferred, facts, kl, fmt=1.0):
    return {"dispreferred": dispreferred, "facts_em_greedy": facts, "format_greedy": fmt, "kl": kl}


def test_pick_reads_the_development_rows_only():
    """The rule applied to ``dev_row``; the test rows (``row``) say the opposite and are ignored."""
    dev = {"SFT": _row(0.6, 0.5, 0.0), "A": _row(0.2, 0.5, 3.0), "B": _row(0.1, 0.48, 5.0),
           "C": _row(0.05, 0.30, 1.0), "D": _row(0.05, 0.5, 0.5, fmt=0.9), "E": _row(0.4, 0.5, 0.1)}
    test = {"SFT": _row(0.6, 0.5, 0.0), "A": _row(0.6, 0.1, 9.0), "B": _row(0.1, 0.5, 0.1),
            "C": _row(0.0, 0.5, 0.1), "D": _row(0.0, 0.5, 0.1), "E": _row(0.0, 0.5, 0.0)}
    results = {m: {"dev_row": dev[m], "row": test[m]} for m in dev}
    # C loses facts, D breaks format, E does not halve the rate: A has the lowest KL of the rest
    assert family.pick(results) == "A"
    results["A"]["dev_row"] = _row(0.2, 0.5, 6.0)
    assert family.pick(results) == "B"
    # nothing qualifies: the lowest dispreferred rate
    for m in ("A", "B"):
        results[m]["dev_row"] = _row(0.5, 0.5, 1.0)
    assert family.pick(results) in ("C", "D")


def test_nothing_selects_on_the_test_file():
    """No chapter or module passes the test file to `selection_records`, and no chapter or module
    reads the retired undivided file."""
    sources = {p: p.read_text() for p in [*sorted((REPO_ROOT / "chapters").glob("*.md")),
                                          *sorted(PACKAGE_DIR.rglob("*.py"))]}
    assert len(sources) > 50
    bad = [str(p) for p, text in sources.items()
           if re.search(r"selection_records\((\"eval_test\"|'eval_test'|TEST\b|data\.TEST\b)", text)]
    assert not bad, bad
    assert not [str(p) for p, text in sources.items() if "eval_heldout" in text]


def test_the_dpo_stage_picks_on_development_prompts():
    """The ``dpo`` stage's kept model is chosen by `family.pick`, on `selection_records`' rows."""
    import inspect

    source = inspect.getsource(family.train)
    assert "selection_records(DEV" in source and "pick(results)" in source
