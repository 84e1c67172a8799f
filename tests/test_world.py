"""The tiny world is deterministic and its held-out facts and sums really are held out."""

import json

from posttrain_utils import make_data, world
from posttrain_utils.data import DATA_DIR


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


def test_heldout_questions_absent_from_training_data():
    datasets = make_data.build_datasets()
    heldout = {r["prompt"][0]["content"] for r in datasets["eval_heldout.jsonl"]}
    train_questions = {r["messages"][0]["content"] for r in datasets["sft_train.jsonl"]}
    train_questions |= {r["prompt"][0]["content"] for r in datasets["preference_train.jsonl"]}
    train_questions |= {r["prompt"][0]["content"] for r in datasets["prompts_train.jsonl"]}
    assert heldout and not heldout & train_questions


def test_shipped_data_matches_generator():
    """data/*.jsonl are exactly what `python -m posttrain_utils.make_data` writes."""
    for name, records in make_data.build_datasets().items():
        shipped = [json.loads(line) for line in (DATA_DIR / name).read_text().splitlines()]
        assert shipped == records, f"{name} is stale: run `make world`"


def test_sft_data_is_mined_with_varied_tone_but_correct_answers():
    records = make_data.build_datasets()["sft_train.jsonl"]
    styles = {r["style"] for r in records}
    assert {"polite", "neutral", "rude", "rambling"} <= styles
    rude = sum(r["style"] == "rude" for r in records) / len(records)
    assert 0.15 < rude < 0.35
