"""Chapter 9's exercise checkers, both ways: the reference solutions pass, constants and near-misses
fail, and a learner's function that raises gives a verdict, not a traceback."""

from __future__ import annotations

import random
import re
import string

import numpy as np

from posttrain_utils.evaluation import metrics, winrate
from posttrain_utils.exercises import ch09_bootstrap
from posttrain_utils.exercises import ch09_eval as ex

# --- reference solutions (the chapter's dropdowns) ----------------------------------------------------


# the reference solution of eval-ex1
def bootstrap_ci(outcomes, n_boot=2000, alpha=0.05, seed=0):
    rng = np.random.default_rng(seed)
    x = np.asarray(outcomes, dtype=float)
    idx = rng.integers(0, len(x), size=(n_boot, len(x)))  # with replacement
    means = x[idx].mean(axis=1)
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def bootstrap_ci_loop(outcomes, n_boot=2000, alpha=0.05, seed=0):
    """Also right: the standard library only, a sorted list indexed at the quantiles."""
    rng, n = random.Random(seed), len(outcomes)
    means = sorted(sum(rng.choices(outcomes, k=n)) / n for _ in range(n_boot))
    return means[int(alpha / 2 * n_boot)], means[int((1 - alpha / 2) * n_boot) - 1]


MIRROR = {"a": "b", "b": "a", "tie": "tie"}


# the reference solution of eval-ex2
def position_flip_rate(judge, pairs):
    flips = 0
    for prompt, x, y in pairs:
        first, second = judge(prompt, x, y), judge(prompt, y, x)
        flips += second != MIRROR[first]
    return flips / len(pairs)


def position_flip_rate_sets(judge, pairs):
    """Also right: the consistent verdict pairs as a set, a NumPy mean."""
    consistent = {("a", "b"), ("b", "a"), ("tie", "tie")}
    return np.mean([(judge(p, x, y), judge(p, y, x)) not in consistent for p, x, y in pairs])


# the reference solution of eval-ex3
def normalize(text):
    text = text.lower()
    text = "".join(ch for ch in text if ch not in string.punctuation)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def normalized_match(prediction, reference):
    return normalize(prediction) == normalize(reference)


def normalized_match_words(prediction, reference):
    """Also right: articles dropped word by word, punctuation with str.translate."""
    def norm(text):
        text = text.lower().translate(str.maketrans("", "", string.punctuation))
        return [w for w in text.split() if w not in ("a", "an", "the")]
    return norm(prediction) == norm(reference)


def test_reference_solutions_pass():
    assert ex.check_bootstrap_ci(bootstrap_ci)
    assert ex.check_bootstrap_ci(bootstrap_ci_loop)
    assert ex.check_bootstrap_ci(winrate.bootstrap_ci)
    assert ex.check_position_flip_rate(position_flip_rate)
    assert ex.check_position_flip_rate(position_flip_rate_sets)
    assert ex.check_position_flip_rate(winrate.position_flip_rate)
    assert ex.check_normalized_match(normalized_match)
    assert ex.check_normalized_match(normalized_match_words)
    assert ex.check_normalized_match(metrics.normalized_match)


def test_solutions_fit_a_dropdown():
    import inspect
    for fn in (bootstrap_ci, position_flip_rate, normalize, normalized_match):
        lines = inspect.getsource(fn).splitlines()
        assert len(lines) <= 15 and max(map(len, lines)) <= 79, fn.__name__


def test_bootstrap_other_generators_pass():
    """Right bootstraps drawn with other generators and another quantile rule pass too."""
    def random_state(outcomes, n_boot, alpha, seed):
        rs, x = np.random.RandomState(seed), np.asarray(outcomes)
        means = x[rs.randint(0, len(x), (n_boot, len(x)))].mean(1)
        return tuple(np.percentile(means, [100 * alpha / 2, 100 * (1 - alpha / 2)]))

    def choice(outcomes, n_boot, alpha, seed):
        rng = np.random.default_rng(seed + 12345)
        means = rng.choice(outcomes, size=(n_boot, len(outcomes))).mean(1)
        return np.quantile(means, [alpha / 2, 1 - alpha / 2])  # an array

    assert ex.check_bootstrap_ci(random_state)
    assert ex.check_bootstrap_ci(choice)


def test_case_banks_are_fixed_and_labelled_by_the_reference():
    pairs = ex.flip_pairs(0)
    assert len(pairs) == 24 and ex.flip_pairs(0) == pairs and ex.flip_pairs(1) != pairs
    assert all(len(p) == 3 and all(isinstance(t, str) for t in p) for p in pairs)
    assert sum(len(x) == len(y) for _, x, y in pairs) >= 6  # every fourth pair at least
    rates = {d: winrate.position_flip_rate(j, ex.flip_pairs(91, 28)) for d, j in ex.flip_judges().items()}
    assert rates["always prefers the first reply"] == rates["always prefers the second reply"] == 1.0
    assert rates["always says tie"] == rates["prefers the longer reply, tie on equal lengths"] == 0.0
    assert len(set(rates.values())) >= 5  # the judges' flip rates differ
    cases = ex.match_cases()
    assert ex.match_cases() == cases and len(cases) >= 60
    assert all(c["truth"] == metrics.normalized_match(c["prediction"], c["reference"]) for c in cases)
    truths = [c["truth"] for c in cases]
    assert 20 <= sum(truths) <= len(cases) - 20
    assert all(c["truth"] for c in cases if c["why"] == "the answer perturbed")
    assert not any(c["truth"] for c in cases if c["why"] == "a word added, perturbed")
    assert len(ch09_bootstrap._bootstrap_cases()) == 8 and ch09_bootstrap._bootstrap_cases() == ch09_bootstrap._bootstrap_cases()


# --- constants, near misses, exceptions ---------------------------------------------------------------

def test_constants_fail():
    assert not ex.check_bootstrap_ci(lambda *a, **k: (0.4, 0.6))
    assert not ex.check_bootstrap_ci(lambda o, *a, **k: (winrate.win_rate(o),) * 2)
    assert not ex.check_position_flip_rate(lambda judge, pairs: 0.0)
    assert not ex.check_position_flip_rate(lambda judge, pairs: 1.0)
    assert not ex.check_position_flip_rate(lambda judge, pairs: 0.5)
    assert not ex.check_normalized_match(lambda p, r: True)
    assert not ex.check_normalized_match(lambda p, r: False)
    assert not ex.check_normalized_match(lambda p, r: None)


def _quantiles(means, alpha):
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def test_bootstrap_near_misses_fail():
    def without_replacement(outcomes, n_boot, alpha, seed):
        rng, x = np.random.default_rng(seed), np.asarray(outcomes)
        return _quantiles([rng.permutation(x).mean() for _ in range(n_boot)], alpha)

    def alpha_not_halved(outcomes, n_boot, alpha, seed):
        low, high = bootstrap_ci(outcomes, n_boot, 2 * alpha, seed)
        return low, high

    shared = np.random.default_rng(5)  # one generator for every call: seed is ignored

    def unseeded(outcomes, n_boot, alpha, seed):
        return bootstrap_ci(outcomes, n_boot, alpha, int(shared.integers(1 << 30)))

    def fixed_seed(outcomes, n_boot, alpha, seed):
        return bootstrap_ci(outcomes, n_boot, alpha, 0)

    def hundred_per_resample(outcomes, n_boot, alpha, seed):
        rng, x = np.random.default_rng(seed), np.asarray(outcomes)
        return _quantiles(x[rng.integers(0, len(x), (n_boot, 100))].mean(1), alpha)

    def normal_approximation(outcomes, n_boot, alpha, seed):
        x = np.asarray(outcomes)
        half = winrate._z(alpha) * x.std() / np.sqrt(len(x))
        return max(x.mean() - half, 0.0), min(x.mean() + half, 1.0)

    near_misses = {
        "without replacement": without_replacement,
        "alpha not halved": alpha_not_halved,
        "unseeded": unseeded,
        "fixed seed": fixed_seed,
        "100 per resample": hundred_per_resample,
        "normal approximation": normal_approximation,
        "Wilson": lambda o, nb, a, s: winrate.wilson_ci(sum(o), len(o), a),
        "Wilson, wrong n": lambda o, nb, a, s: winrate.wilson_ci(sum(o), 2 * len(o), a),
        "Wilson, n = n_boot": lambda o, nb, a, s: winrate.wilson_ci(winrate.win_rate(o) * nb, nb, a),
        "high, low": lambda *args: bootstrap_ci(*args)[::-1],
        "percent": lambda *args: tuple(100 * v for v in bootstrap_ci(*args)),
        "percentile of a fraction": lambda o, nb, a, s: tuple(np.percentile(
            np.random.default_rng(s).choice(o, (nb, len(o))).mean(1), [a / 2, 1 - a / 2])),
        "alpha as confidence": lambda o, nb, a, s: bootstrap_ci(o, nb, 1 - a, s),
        "one number": lambda *args: bootstrap_ci(*args)[0],
    }
    for name, fn in near_misses.items():
        assert not ex.check_bootstrap_ci(fn), name


def test_flip_rate_near_misses_fail():
    def rate(count):
        def fn(judge, pairs):
            verdicts = [(judge(p, x, y), judge(p, y, x)) for p, x, y in pairs]
            return count(verdicts, len(pairs))
        return fn

    near_misses = {
        "same verdict twice": rate(lambda v, n: sum(f == s for f, s in v) / n),  # tie twice is a flip
        "ties ignored": rate(lambda v, n: sum(f == s != "tie" for f, s in v) / n),
        "different verdicts": rate(lambda v, n: sum(f != s for f, s in v) / n),
        "count": rate(lambda v, n: sum(s != MIRROR[f] for f, s in v)),
        "consistency": rate(lambda v, n: 1 - sum(s != MIRROR[f] for f, s in v) / n),
        "per verdict": rate(lambda v, n: sum(s != MIRROR[f] for f, s in v) / (2 * n)),
        "percent": rate(lambda v, n: 100 * sum(s != MIRROR[f] for f, s in v) / n),
        "untied pairs only": rate(lambda v, n: sum(s != MIRROR[f] for f, s in v if "tie" not in (f, s))
                                  / max(sum("tie" not in (f, s) for f, s in v), 1)),
        "not swapped": lambda judge, pairs: np.mean([judge(p, x, y) != MIRROR[judge(p, x, y)]
                                                     for p, x, y in pairs]),
        "a bool": lambda judge, pairs: position_flip_rate(judge, pairs) > 0.5,
    }
    for name, fn in near_misses.items():
        assert not ex.check_position_flip_rate(fn), name


def test_normalized_match_near_misses_fail():
    def variant(lower=True, punctuation="remove", articles="words", compare="equal",
                spaces_only=False):
        def norm(text):
            text = text.lower() if lower else text
            if punctuation == "remove":
                text = "".join(ch for ch in text if ch not in string.punctuation)
            elif punctuation == "space":
                text = "".join(" " if ch in string.punctuation else ch for ch in text)
            elif punctuation == "ends":
                text = text.strip().strip(string.punctuation)
            if articles == "words":
                text = re.sub(r"\b(a|an|the)\b", " ", text)
            elif articles == "replace":
                text = text.replace("the ", " ").replace("an ", " ").replace("a ", " ")
            return re.sub(" +", " ", text).strip(" ") if spaces_only else " ".join(text.split())

        def fn(prediction, reference):
            p, r = norm(prediction), norm(reference)
            return r in p if compare == "substring" else p == r
        return fn

    near_misses = {
        "forgets articles": variant(articles=None),
        "forgets punctuation": variant(punctuation=None),
        "forgets lower-casing": variant(lower=False),
        "punctuation to spaces": variant(punctuation="space"),
        "punctuation at the ends only": variant(punctuation="ends"),
        "articles replaced inside words": variant(articles="replace"),
        "substring": variant(compare="substring"),
        "exact match": metrics.exact_match,
        "case-insensitive only": lambda p, r: p.lower().strip() == r.lower().strip(),
        "only spaces collapsed": variant(spaces_only=True),
    }
    for name, fn in near_misses.items():
        assert not ex.check_normalized_match(fn), name


def test_learner_exceptions_become_verdicts(capsys):
    def boom(*args, **kwargs):
        raise RuntimeError("oops")
    assert not ex.check_bootstrap_ci(boom)
    assert not ex.check_position_flip_rate(boom)
    assert not ex.check_normalized_match(boom)
    out = capsys.readouterr().out
    assert out.count("not yet: your function raised RuntimeError('oops')") == 3
    assert not ex.check_bootstrap_ci(lambda o, nb, a, s: bootstrap_ci(o, nb, a, s) if len(o) < 100 else 1 / 0)
    assert "ZeroDivisionError" in capsys.readouterr().out
    assert not ex.check_position_flip_rate(lambda judge, pairs: position_flip_rate(judge, pairs[:0]))
    assert "ZeroDivisionError" in capsys.readouterr().out
    assert not ex.check_normalized_match(lambda p, r: normalized_match(p, r) if "\t" not in p else 1 / 0)
    assert "ZeroDivisionError" in capsys.readouterr().out
    assert not ex.check_bootstrap_ci(lambda *args: object())
    assert not ex.check_bootstrap_ci(lambda *args: (float("nan"), 0.5))
    assert not ex.check_position_flip_rate(lambda judge, pairs: np.array([0.1, 0.2]))
    assert not ex.check_normalized_match(lambda p, r: np.array([True, False]))  # ambiguous truth value


def test_hints_name_the_mistake(capsys):
    def without_replacement(outcomes, n_boot, alpha, seed):
        rng, x = np.random.default_rng(seed), np.asarray(outcomes)
        return _quantiles([rng.permutation(x).mean() for _ in range(n_boot)], alpha)

    ex.check_bootstrap_ci(without_replacement)
    assert "WITH replacement" in capsys.readouterr().out
    ex.check_bootstrap_ci(lambda o, nb, a, s: bootstrap_ci(o, nb, 2 * a, s))
    assert "alpha/2 and 1 - alpha/2 quantiles" in capsys.readouterr().out
    ex.check_bootstrap_ci(lambda o, nb, a, s: winrate.wilson_ci(sum(o), len(o), a))
    assert "every resample's mean is 1.0" in capsys.readouterr().out
    ex.check_bootstrap_ci(lambda o, nb, a, s: (o[0], o[0]) if len(set(o)) == 1
                          else winrate.wilson_ci(sum(o), len(o), a))
    assert "Wilson interval's" in capsys.readouterr().out
    shared = np.random.default_rng(6)
    ex.check_bootstrap_ci(lambda o, nb, a, s: bootstrap_ci(o, nb, a, int(shared.integers(1 << 30))))
    assert "the same seed gave" in capsys.readouterr().out
    ex.check_bootstrap_ci(lambda o, nb, a, s: bootstrap_ci(o, nb, a, 0))
    assert "the same for every seed" in capsys.readouterr().out
    ex.check_bootstrap_ci(lambda *a, **k: (0.4, 0.6))
    assert "all wins (A won every prompt)" in capsys.readouterr().out
    ex.check_bootstrap_ci(lambda *args: bootstrap_ci(*args)[::-1])
    assert "low <= high" in capsys.readouterr().out

    def same_twice(judge, pairs):
        return np.mean([judge(p, x, y) == judge(p, y, x) for p, x, y in pairs])
    ex.check_position_flip_rate(same_twice)
    assert "'tie' on both orders is consistent" in capsys.readouterr().out
    ex.check_position_flip_rate(lambda j, pairs: np.mean([j(p, x, y) == j(p, y, x) != "tie"
                                                          for p, x, y in pairs]))
    assert "'tie' on one order and 'a' or 'b' on the other is a flip" in capsys.readouterr().out
    ex.check_position_flip_rate(lambda judge, pairs: position_flip_rate(judge, pairs) * len(pairs))
    assert "not the number of flips" in capsys.readouterr().out
    assert ex.check_position_flip_rate(position_flip_rate)
    assert capsys.readouterr().out == "[eval-ex2] correct!\n"

    ex.check_normalized_match(lambda p, r: " ".join(re.sub(r"[^\w\s]", "", p.lower()).split())
                              == " ".join(re.sub(r"[^\w\s]", "", r.lower()).split()))
    out = capsys.readouterr().out
    assert "[eval-ex3] not yet:" in out and "pairs judged wrongly, e.g." in out and "normalise to" in out
    assert ex.check_normalized_match(normalized_match)
    assert capsys.readouterr().out == "[eval-ex3] correct!\n"
