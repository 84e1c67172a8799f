"""The held-out evaluation data's two halves: development (for choices) and test (for Checks).

Introduced in chapter 2; chapter 9 explains why. ``data/eval_dev.jsonl`` and
``data/eval_test.jsonl`` split the held-out facts, sums and harmful-request names by item
(`tinyworld.make_data.split_eval`): every wording of one item is on one side only.

* `test_records` is what every Check, every stage's judged row and chapter 9's report card read.
* `selection_records` is what every *choice* reads (a recipe, a learning rate, the method a
  chapter keeps): it refuses the test file, so nothing is ever tuned on the data that grades it.

Run ``python -m posttrain_utils.data.splits`` to print each half's size and mix.
"""

from __future__ import annotations

from collections import Counter

from .loading import load_records

DEV, TEST = "eval_dev", "eval_test"


def test_records(n: int | None = None) -> list[dict]:
    """The first `n` (all by default) records of ``eval_test``: for Checks and reported rows."""
    return load_records(TEST)[:n]


def selection_records(name: str = DEV, n: int | None = None) -> list[dict]:
    """The first `n` records of a file a choice may be made on: the development file only.

    Raises:
        ValueError: for ``eval_test`` (or any file but ``eval_dev``), naming the rule.
    """
    if name != DEV:
        raise ValueError(f"choices are made on development data ({DEV!r}), never on {name!r}: "
                         f"{TEST!r} is read only by Checks and the report card")
    return load_records(DEV)[:n]


def mix(records: list[dict]) -> dict[str, int]:
    """How many records of each (task, phrasing) group `records` holds."""
    counts = Counter(f"{r['task']} ({r.get('phrasing', '-')})" for r in records)
    return dict(sorted(counts.items()))


if __name__ == "__main__":
    for name in (DEV, TEST):
        records = load_records(name)
        print(f"{name}: {len(records)} records, {mix(records)}")
