"""Chapter 9's contamination tools: the verbatim overlap check, the fact-level leaked/clean split and
the leaked chats, on the shipped ``eval_test`` records (no model is loaded)."""

import random
from collections import defaultdict

import pytest

from posttrain_utils.evaluation import contamination, judgements
from posttrain_utils.data import load_records


@pytest.fixture(scope="module")
def heldout():
    return load_records("eval_test")


def _question(record):
    return record["prompt"][-1]["content"]


# ----- overlap ---------------------------------------------------------------------------------
def test_shipped_eval_set_has_no_overlap_with_training_files(heldout):
    assert contamination.overlap(heldout) == {name: 0 for name in contamination.TRAINING_FILES}


def test_overlap_finds_an_injected_training_question(heldout):
    chat = load_records("sft_train")[0]
    question = chat["messages"][0]["content"]
    leaked = {"prompt": [{"role": "user", "content": question}], "task": chat["task"]}
    counts = contamination.overlap([*heldout, leaked])
    assert counts["sft_train"] == 1
    assert counts["prompt_completion_train"] >= 1  # the same questions, in prompt-completion form
    # a held-out record given as `messages` (a chat) is read too
    assert contamination.overlap([chat], files=("sft_train",)) == {"sft_train": 1}


# ----- fact_key --------------------------------------------------------------------------------
def test_both_phrasings_of_every_held_out_fact_share_a_key(heldout):
    phrasings = defaultdict(set)
    for record in heldout:
        if record.get("answer"):
            phrasings[contamination.fact_key(record)].add(record["phrasing"])
    assert len(phrasings) > 50
    assert all(p == {"shared", "unseen"} for p in phrasings.values()), phrasings


def test_sum_keys_ignore_operand_order_and_wording():
    def sum_record(text):
        return {"task": "sum", "answer": "15", "prompt": [{"role": "user", "content": text}]}

    key = contamination.fact_key(sum_record("What is 3 plus 12?"))
    assert key == contamination.fact_key(sum_record("Add 12 and 3. What do you get?"))
    assert key == contamination.fact_key(sum_record("If you put 3 and 12 together, how many are there?"))
    assert key[0] == "sum" and sorted(key[1:]) == ["12", "3"]
    assert key != contamination.fact_key(sum_record("What is 3 plus 13?"))


def test_fact_key_names_the_task_and_country(heldout):
    record = next(r for r in heldout if r["task"] == "capital")  # "Stousolia is governed from one city..."
    assert contamination.fact_key(record) == ("capital", "Stousolia")


@pytest.mark.parametrize("question", ["What is the capital of Nowhereland?", "What is the capital?"])
def test_fact_key_rejects_a_question_naming_no_country(question):
    record = {"task": "capital", "answer": "X", "prompt": [{"role": "user", "content": question}]}
    with pytest.raises(ValueError, match="which country"):
        contamination.fact_key(record)


# ----- split -----------------------------------------------------------------------------------
def test_split_halves_are_disjoint_by_fact_and_cover_the_answered_records(heldout):
    leaked, clean = contamination.split(heldout)
    leaked_keys = {contamination.fact_key(r) for r in leaked}
    clean_keys = {contamination.fact_key(r) for r in clean}
    assert leaked_keys and clean_keys and not leaked_keys & clean_keys
    answered = [r for r in heldout if r.get("answer")]
    assert len(leaked) + len(clean) == len(answered)
    ids = sorted(map(id, leaked + clean))
    assert ids == sorted(map(id, answered))  # every answered record once, nothing else
    assert all(r["task"] != "harmful" for r in leaked + clean)
    assert abs(len(leaked) - len(clean)) <= 0.1 * max(len(leaked), len(clean))
    assert abs(len(leaked_keys) - len(clean_keys)) <= 1  # half of the facts each


def test_split_is_the_same_across_calls_and_record_orders(heldout):
    first = contamination.split(heldout)
    assert contamination.split(heldout) == first
    shuffled = list(heldout)
    random.Random(0).shuffle(shuffled)
    leaked, clean = contamination.split(shuffled)
    assert {contamination.fact_key(r) for r in leaked} == {contamination.fact_key(r) for r in first[0]}
    assert {contamination.fact_key(r) for r in clean} == {contamination.fact_key(r) for r in first[1]}


# ----- leaked_chats ----------------------------------------------------------------------------
def test_leaked_chats_answer_every_record_correctly(heldout):
    answered = [r for r in heldout if r.get("answer")]
    chats = contamination.leaked_chats(heldout)
    assert len(chats) == len(answered)
    for chat, record in zip(chats, answered):
        user, reply = chat["messages"]
        assert user == record["prompt"][0] and reply["role"] == "assistant"
        assert reply["content"] == f"{record['answer']}."
        assert judgements.answer_matches(reply["content"], record["answer"], record["task"],
                                         _question(record)), (record, reply)
