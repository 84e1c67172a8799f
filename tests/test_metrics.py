"""Chapter 9's text metrics: ROUGE and BLEU through rouge-score and sacrebleu (offline), exact and
SQuAD-style normalised match, and the worked example where word overlap gets right and wrong backwards.
"""

import pytest

from posttrain_utils.evaluation import metrics

REF = "The capital of Feto is Lune."


# ----- ROUGE ----------------------------------------------------------------------------------
def test_rouge_is_one_for_a_copy_and_zero_without_shared_words():
    assert metrics.rouge([REF], [REF]) == pytest.approx({"rouge1": 1.0, "rouge2": 1.0, "rougeL": 1.0})
    assert metrics.rouge(["Seven."], ["3 plus 4 is 7."]) == {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}


def test_rouge_by_hand():
    # "Lune is the capital of Feto." against REF: every unigram shared; bigrams: the capital,
    # capital of, of feto (3 of 5); longest common subsequence: the capital of feto (4 of 6).
    scores = metrics.rouge(["Lune is the capital of Feto."], [REF])
    assert scores == pytest.approx({"rouge1": 1.0, "rouge2": 3 / 5, "rougeL": 4 / 6})
    # F1 with precision 2/3 and recall 2/6: "Lune, of course." shares "lune" and "of"
    assert metrics.rouge(["Lune, of course."], [REF], types=["rouge1"]) == pytest.approx({"rouge1": 4 / 9})


def test_rouge_averages_over_pairs_stems_and_keeps_the_order_of_types():
    scores = metrics.rouge([REF, "Seven."], [REF, "3 plus 4 is 7."], types=("rougeL", "rouge1"))
    assert list(scores) == ["rougeL", "rouge1"] and scores == pytest.approx({"rougeL": 0.5, "rouge1": 0.5})
    # Porter stemming (of words over 3 letters only: "fly" stays "fly", "flying" becomes "fli")
    assert metrics.rouge(["owls flying"], ["owl flies"], types=["rouge1"])["rouge1"] == pytest.approx(1.0)


def test_rouge_lsum_splits_on_newlines_only():
    # the same sentences in another order: rougeL (one sequence) loses, rougeLsum (per sentence) does not
    a, b = "Feto is big.\nLune is old.", "Lune is old.\nFeto is big."
    scores = metrics.rouge([a], [b], types=["rougeL", "rougeLsum"])
    assert scores["rougeLsum"] == pytest.approx(1.0) and scores["rougeL"] < 1.0


def test_rouge_rejects_bad_input():
    with pytest.raises(ValueError, match="empty"):
        metrics.rouge([], [])
    with pytest.raises(ValueError, match="2 predictions for 1 references"):
        metrics.rouge(["a", "b"], ["a"])
    with pytest.raises(TypeError, match="list of strings"):
        metrics.rouge("Lune", "Lune")  # would otherwise be scored character by character
    with pytest.raises(TypeError, match=r"predictions\[1\]"):
        metrics.rouge(["a", 3], ["a", "b"])
    with pytest.raises(ValueError, match="unknown ROUGE types"):
        metrics.rouge(["a"], ["a"], types=["rougeX"])
    with pytest.raises(ValueError, match="types is empty"):
        metrics.rouge(["a"], ["a"], types=[])


# ----- BLEU -----------------------------------------------------------------------------------
def test_bleu_is_100_for_a_copy_and_0_for_a_short_right_answer():
    assert metrics.bleu([REF], [REF]) == pytest.approx(100.0)
    assert metrics.bleu(["Lune."], [REF]) == 0.0  # two tokens: no 3- or 4-grams at all
    assert metrics.bleu([""], [REF]) == 0.0


def test_bleu_by_hand():
    # 13a tokens: The capital of Feto is Mirra . -> 1- to 4-gram precisions 6/7, 4/6, 3/5, 2/4;
    # same length as the reference, so no brevity penalty.
    expected = 100 * (6 / 7 * 4 / 6 * 3 / 5 * 2 / 4) ** 0.25
    assert metrics.bleu(["The capital of Feto is Mirra."], [REF]) == pytest.approx(expected)


def test_bleu_is_a_corpus_score_not_a_mean_of_sentence_scores():
    preds, refs = [REF, "Lune."], [REF, REF]
    corpus = metrics.bleu(preds, refs)
    mean = (metrics.bleu(preds[:1], refs[:1]) + metrics.bleu(preds[1:], refs[1:])) / 2
    assert 0 < corpus < 100 and corpus != pytest.approx(mean)


def test_bleu_rejects_bad_input():
    with pytest.raises(ValueError, match="empty"):
        metrics.bleu([], [])
    with pytest.raises(ValueError, match="1 predictions for 2 references"):
        metrics.bleu(["a"], ["a", "b"])
    with pytest.raises(TypeError, match="list of strings"):
        metrics.bleu(REF, REF)
    with pytest.raises(TypeError, match=r"references\[0\]"):
        metrics.bleu(["a"], [None])


# ----- exact and normalised match -------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ("  The capital is LUNE! ", "capital is lune"),
    ("Lune.", "lune"),
    ("an owl, a fox and the bear", "owl fox and bear"),
    ("Theory of Anna", "theory of anna"),  # articles only as whole words
    ("Feto\u2019s 1,000 \u2014 \u201cyes\u201d", "fetos 1000 yes"),  # Unicode punctuation too
    ("", ""),
])
def test_normalize_answer(text, expected):
    assert metrics.normalize_answer(text) == expected


def test_exact_match_is_exact_and_normalized_match_is_squad_style():
    assert metrics.exact_match("Lune", "Lune")
    assert not metrics.exact_match("Lune.", "Lune") and not metrics.exact_match("lune", "Lune")
    assert not metrics.exact_match(" Lune", "Lune")
    assert metrics.normalized_match("The Lune.", "lune") and metrics.normalized_match("LUNE!", "Lune")
    assert not metrics.normalized_match("It is Lune.", "Lune")  # extra words still count
    assert not metrics.normalized_match("Mirra", "Lune")


def test_matches_reject_non_strings():
    for fn in (metrics.exact_match, metrics.normalized_match):
        with pytest.raises(TypeError, match="prediction|text"):
            fn(7, "7")
        with pytest.raises(TypeError, match="reference|text"):
            fn("7", None)


# ----- where word overlap misleads ------------------------------------------------------------
def test_misleading_examples_are_well_formed_and_fresh():
    rows = metrics.misleading_examples()
    assert rows and len(rows) % 2 == 0
    assert all(set(r) == {"question", "reference", "answer", "reply", "correct", "kind"} for r in rows)
    for right, wrong in zip(rows[::2], rows[1::2]):
        assert right["question"] == wrong["question"] and right["reference"] == wrong["reference"]
        assert (right["correct"], wrong["correct"]) == (True, False)
        assert right["kind"] == "right, reworded" and wrong["kind"] == "wrong, copies the reference"
        assert not metrics.normalized_match(wrong["reply"], right["reply"])
    rows[0]["reply"] = "changed"
    assert metrics.misleading_examples()[0]["reply"] != "changed"


def test_misleading_examples_really_mislead_rouge_and_bleu():
    rows = metrics.misleading_examples()
    for right, wrong in zip(rows[::2], rows[1::2]):
        ref = right["reference"]
        r_right, r_wrong = metrics.rouge([right["reply"]], [ref]), metrics.rouge([wrong["reply"]], [ref])
        b_right, b_wrong = metrics.bleu([right["reply"]], [ref]), metrics.bleu([wrong["reply"]], [ref])
        assert r_wrong["rougeL"] > r_right["rougeL"] + 0.3, (right["reply"], wrong["reply"])
        assert r_wrong["rouge1"] > r_right["rouge1"] and r_wrong["rouge2"] > r_right["rouge2"]
        assert b_wrong > b_right + 30, (right["reply"], wrong["reply"], b_right, b_wrong)
        # the wrong copy has the reference's words but not its answer
        answer = metrics.normalize_answer(wrong["answer"])
        assert answer not in metrics.normalize_answer(wrong["reply"]).split()
    # over the whole set, too
    rights, wrongs = rows[::2], rows[1::2]
    refs = [r["reference"] for r in rights]
    assert metrics.rouge([r["reply"] for r in wrongs], refs)["rougeL"] > \
        metrics.rouge([r["reply"] for r in rights], refs)["rougeL"]
    assert metrics.bleu([r["reply"] for r in wrongs], refs) > metrics.bleu([r["reply"] for r in rights], refs)
