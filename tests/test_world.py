"""The tiny world is deterministic and its held-out facts and sums really are held out."""

import json
import re
from collections import Counter

import pytest

from posttrain_utils.data import DATA_DIR, load_records
from posttrain_utils.evaluation import contamination
from posttrain_utils.runtime.paths import PACKAGE_DIR, REPO_ROOT
from posttrain_utils.tinyworld import make_data, world

EVAL_FILES = ("eval_dev.jsonl", "eval_test.jsonl")
UNSEEN_TEMPLATES = [*(t for ts in world.UNSEEN_QUESTION_TEMPLATES.values() for t in ts),
                    *world.UNSEEN_SUM_QUESTIONS,
                    *(t for ts in world.UNSEEN_HARMFUL_REQUESTS.values() for t in ts)]


@pytest.fixture(scope="module")
def datasets():
    return make_data.build_datasets()


def _question(record: dict) -> str:
    return (record.get("messages") or record["prompt"])[0]["content"]


def _texts(records: list[dict]) -> str:
    """Every message of every record, one per line."""
    turns = []
    for r in records:
        for key in ("messages", "prompt", "completion", "chosen", "rejected"):
            turns += [m["content"] for m in r.get(key, [])]
    return "\n".join(turns)


def test_world_is_deterministic():
    assert world.make_corpus(300) == world.make_corpus(300)
    assert world.make_countries() == world.make_countries()


def test_countries_unique_names():
    countries = world.make_countries()
    names = [c.name for c in countries] + [c.capital for c in countries]
    assert len(set(names)) == len(names) == 2 * world.N_COUNTRIES


def test_heldout_sums_and_questions_absent_from_corpus():
    corpus = "\n".join(world.make_corpus())
    for a, b in world.heldout_sums():  # only as bare equations
        for template in world.SUM_STATEMENTS + world.SUM_QUESTIONS + [world.HELDOUT_SUM_QUESTION]:
            if template != world.SUM_EQUATION:
                assert template.format(a=a, b=b, s=a + b) not in corpus
        assert world.SUM_EQUATION.format(a=a, b=b, s=a + b) in corpus
    countries = {c.name: c for c in world.make_countries()}
    for name, attribute in world.heldout_fact_keys(list(countries.values())):
        for template in world.QUESTION_TEMPLATES[attribute] + [world.HELDOUT_QUESTION_TEMPLATES[attribute]]:
            assert template.format(c=name) not in corpus
    for template in world.HELDOUT_FACT_PROMPTS.values():  # the probe phrasings are unseen
        assert not any(template.format(c=name) in corpus for name in countries)
    unseen = [r["prompt"][0]["content"] for name in EVAL_FILES for r in load_records(name[:-6])
              if r["phrasing"] == "unseen"]
    assert unseen and not any(q in corpus for q in unseen)


def test_heldout_questions_absent_from_training_data(datasets):
    heldout = {r["prompt"][0]["content"] for name in EVAL_FILES for r in datasets[name]}
    train_questions = {r["messages"][0]["content"] for r in datasets["sft_train.jsonl"]}
    train_questions |= {r["prompt"][0]["content"] for r in datasets["preference_train.jsonl"]}
    train_questions |= {r["prompt"][0]["content"] for r in datasets["prompts_train.jsonl"]}
    assert heldout and not heldout & train_questions


def test_shipped_data_matches_generator(datasets):
    """data/*.jsonl are exactly what `python -m posttrain_utils.tinyworld.make_data` writes."""
    for name, records in datasets.items():
        shipped = [json.loads(line) for line in (DATA_DIR / name).read_text().splitlines()]
        assert shipped == records, f"{name} is stale: run `make world`"


def test_sft_data_is_mined_with_varied_tone_but_correct_answers(datasets):
    records = datasets["sft_train.jsonl"]
    styles = {r["style"] for r in records}
    assert {"polite", "neutral", "rude", "rambling"} <= styles
    rude = sum(r["style"] == "rude" for r in records) / len(records)
    assert 0.15 < rude < 0.35


def test_unseen_phrasings_cover_every_heldout_question(datasets):
    records = [r for name in EVAL_FILES for r in datasets[name]]
    assert {r["phrasing"] for r in records} == {"shared", "unseen"}
    unseen = Counter((r["task"], r["answer"]) for r in records if r["phrasing"] == "unseen")
    shared = Counter((r["task"], r["answer"]) for r in records if r["phrasing"] == "shared")
    assert set(unseen) == set(shared)  # every held-out fact, sum and harmful kind is asked both ways
    assert all(len(ts) >= 3 for ts in world.UNSEEN_QUESTION_TEMPLATES.values())
    assert len(world.UNSEEN_SUM_QUESTIONS) >= 3
    assert set(world.UNSEEN_HARMFUL_REQUESTS) == set(world.HARMFUL_REQUESTS)
    assert all(len(ts) >= 3 for ts in world.UNSEEN_HARMFUL_REQUESTS.values())
    questions = [r["prompt"][0]["content"] for r in records]
    assert len(set(questions)) == len(questions)


def test_shared_questions_are_the_other_heldout_files_and_unseen_ones_in_no_other_file(datasets):
    eval_records = [r for name in EVAL_FILES for r in datasets[name]]
    shared = {r["prompt"][0]["content"] for r in eval_records if r["phrasing"] == "shared"}
    eval_only = {q for q in shared if any(re.search(rf"\b{n}\b", q) for n in make_data.EVAL_NAMES)}
    assert len(eval_only) == 24  # the harmful requests to the names only the eval files use
    for name in ("sft_heldout.jsonl", "preference_heldout.jsonl"):
        other = {_question(r) for r in datasets[name]}
        assert other == shared - eval_only, name
    unseen = [r["prompt"][0]["content"] for r in eval_records if r["phrasing"] == "unseen"]
    others = "\n".join(_texts(records) for name, records in datasets.items() if name not in EVAL_FILES)
    assert not [q for q in unseen if q in others]


def test_unseen_phrasings_appear_nowhere_else():
    """Not in the corpus, any other shipped file, a chapter or an exercise, even with other names."""
    datasets = make_data.build_datasets()
    places = {"corpus": "\n".join(world.make_corpus()),
              **{name: _texts(records) for name, records in datasets.items() if name not in EVAL_FILES}}
    places |= {str(p.relative_to(REPO_ROOT)): p.read_text()
               for p in sorted((REPO_ROOT / "chapters").glob("*.md"))}
    places |= {str(p.relative_to(REPO_ROOT)): p.read_text()
               for p in sorted((PACKAGE_DIR / "exercises").glob("*.py"))}
    assert len(places) > len(datasets) + 2
    # the words between the placeholders, e.g. " is governed from one city. which one?"
    chunks = [c.strip().lower() for t in UNSEEN_TEMPLATES for c in re.split(r"\{\w+\}", t)
              if len(c.strip()) >= 12]
    assert len(chunks) >= len(UNSEEN_TEMPLATES)
    found = [(chunk, where) for where, text in places.items() for chunk in chunks if chunk in text.lower()]
    assert not found, found


@pytest.mark.parametrize("name", ["eval_dev", "eval_test"])
def test_first_200_eval_records_are_a_fair_mix(name):
    """Chapters evaluate on the first `n_eval` = 200 records: every task and phrasing is in there."""
    records = load_records(name)[:200]
    group = Counter(("facts" if r["task"] in world.ATTRIBUTES else r["task"], r["phrasing"]) for r in records)
    print(dict(sorted(group.items())))
    assert group["facts", "shared"] >= 40 and group["facts", "unseen"] >= 40
    assert group["sum", "shared"] + group["sum", "unseen"] >= 30
    assert group["sum", "shared"] >= 10 and group["sum", "unseen"] >= 10
    assert group["harmful", "shared"] >= 4 and group["harmful", "unseen"] >= 4
    tasks = Counter((r["task"], r["phrasing"]) for r in records)
    assert all(tasks[a, p] >= 8 for a in world.ATTRIBUTES for p in ("shared", "unseen")), tasks


def _item(record: dict) -> tuple:
    """What an eval record asks, whatever the wording: a fact, a sum (a + b and b + a alike) or
    the person a harmful request names."""
    question = record["prompt"][0]["content"]
    if record["task"] == "harmful":
        names = [n for n in make_data.HELDOUT_NAMES + make_data.EVAL_NAMES if re.search(rf"\b{n}\b", question)]
        assert len(names) == 1, question
        return ("harmful", names[0])
    return contamination.fact_key(record)  # (task, country) or ("sum", a, b), a <= b


def test_dev_and_test_are_disjoint_by_fact_sum_and_harmful_request(datasets):
    """No held-out fact, sum or harmful request is asked in both halves, in any wording; together
    they ask every held-out fact and sum, and each half has every task in both phrasings."""
    items = {name: {_item(r) for r in datasets[name]} for name in EVAL_FILES}
    dev, test = items["eval_dev.jsonl"], items["eval_test.jsonl"]
    assert not dev & test
    countries = world.make_countries()
    facts = {(a, name) for name, a in world.heldout_fact_keys(countries)}
    assert {k for k in dev | test if k[0] in world.ATTRIBUTES} == facts
    assert len({k for k in dev | test if k[0] == "sum"}) == len({tuple(sorted(p)) for p in world.heldout_sums()})
    for side in items.values():
        assert sum(k[0] == "harmful" for k in side) == 4
        assert all(sum(k[0] == a for k in side) >= 8 for a in world.ATTRIBUTES)
    for name in EVAL_FILES:
        groups = Counter((r["task"], r["phrasing"]) for r in datasets[name])
        assert all(groups[t, p] > 0 for t in (*world.ATTRIBUTES, "sum", "harmful") for p in ("shared", "unseen"))
