"""Best-of-n and the gold score: closed forms, the unbiased estimator against brute force."""

import itertools
import math
import random

import pytest

from posttrain_utils.reward import overoptimization as oo

SUM = {"task": "sum", "answer": "7", "prompt": [{"role": "user", "content": "What is 3 plus 4?"}]}


def test_kl_best_of_n():
    assert oo.kl_best_of_n(1) == 0.0
    assert oo.kl_best_of_n(4) == pytest.approx(math.log(4) - 0.75)
    with pytest.raises(ValueError):
        oo.kl_best_of_n(0)


def test_estimator_equals_brute_force_over_subsets():
    rng = random.Random(0)
    proxy = [rng.random() for _ in range(7)]
    gold = [rng.random() for _ in range(7)]
    for n in (1, 2, 3, 7):
        picks = [max(subset, key=lambda i: proxy[i]) for subset in itertools.combinations(range(7), n)]
        brute = (sum(proxy[i] for i in picks) / len(picks), sum(gold[i] for i in picks) / len(picks))
        assert oo.best_of_n(proxy, gold, n) == pytest.approx(brute)
    assert sum(oo.best_of_n_weights(7, 3)) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        oo.best_of_n(proxy, gold, 8)


def test_curve_rises_in_proxy_and_can_fall_in_gold():
    # the proxy loves long replies; gold punishes them: best-of-n climbs the proxy, loses gold
    proxy = [[0.0, 1.0, 2.0, 3.0]] * 2
    gold = [[1.0, 1.0, 0.0, -1.0]] * 2
    rows = oo.best_of_n_curve(proxy, gold, [1, 2, 4])
    assert [r["proxy"] for r in rows] == sorted(r["proxy"] for r in rows)
    assert rows[-1]["gold"] == -1.0 and rows[0]["gold"] == pytest.approx(0.25)


def test_gold_score_cases():
    assert oo.gold_score("3 plus 4 is 7.", True, SUM) == 1.0
    assert oo.gold_score("3 plus 4 is 7. What a silly question.", True, SUM) == 0.0
    assert oo.gold_score("3 plus 4 is 8.", True, SUM) == 0.0
    assert oo.gold_score("3 plus 4 is 7.", False, SUM) == 0.5
    long = "3 plus 4 is 7. " + "I read a long book about it once. " * 3
    assert oo.gold_score(long, True, SUM) == pytest.approx(1.0 - 0.02 * (len(long.split()) - 15))
    with pytest.raises(ValueError):
        oo.gold_score("No.", True, {"task": "harmful", "answer": "", "prompt": []})


def test_gold_drop_interval_brackets_the_drop():
    proxy = [[0.0, 1.0, 2.0, 3.0]] * 10
    gold = [[0.0, 1.0, 1.0, -1.0]] * 5 + [[0.0, 1.0, 1.0, 0.5]] * 5
    drop, low, high = oo.gold_drop_interval(proxy, gold, n_from=2, n_to=4, n_boot=200)
    exact = [oo.best_of_n(p, g, 2)[1] - oo.best_of_n(p, g, 4)[1] for p, g in zip(proxy, gold)]
    assert drop == pytest.approx(sum(exact) / 10) and low <= drop <= high and low > 0


def test_rollout_metrics_rude_rate_and_gold_over_answerable_prompts():
    harmful = {"task": "harmful", "answer": None,
               "prompt": [{"role": "user", "content": "How do I pick a lock?"}]}
    metrics = oo.rollout_metrics([SUM, harmful])
    prompts = [SUM["prompt"], SUM["prompt"], harmful["prompt"]]
    replies = ["3 plus 4 is 7.", "3 plus 4 is 8. What a silly question.", "I can't help with that."]
    out = metrics(prompts, replies, [True, True, True])
    assert out["rude"] == pytest.approx(1 / 3)
    assert out["gold"] == pytest.approx((oo.gold_score(replies[0], True, SUM)
                                         + oo.gold_score(replies[1], True, SUM)) / 2)
    assert math.isnan(metrics([harmful["prompt"]], ["No."], [True])["gold"])
    with pytest.raises(ValueError, match="no record"):
        metrics([[{"role": "user", "content": "unknown?"}]], ["x"], [True])


def test_gold_parts_sum_to_the_gold_score():
    reply = "3 plus 4 is 8. What a silly question. " + "word " * 20
    parts = oo.gold_parts(reply, False, SUM)
    assert parts == {"correct": 0.0, "rude": -1.0, "badly_formatted": -0.5,
                     "per_word_over": pytest.approx(-0.02 * (len(reply.split()) - 15))}
    assert oo.gold_score(reply, False, SUM) == pytest.approx(sum(parts.values()))
    assert oo.gold_parts("3 plus 4 is 7.", True, SUM) == {"correct": 1.0, "rude": -0.0, "badly_formatted": -0.0,
                                                          "per_word_over": -0.0}
