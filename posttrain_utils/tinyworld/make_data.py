"""Generate the course's shipped datasets (``data/*.jsonl``) from the tiny world.

Introduced in chapter 0 and used from chapter 1 on. Run ``python -m posttrain_utils.tinyworld.make_data``.
Every file is in one of TRL's standard formats (conversational). The SFT data is *mined from
forum threads* the way real instruction data is scraped: answers are correct, but their tone and
length vary. Held-out files use questions (and sums) that appear nowhere in training data or in
the pretraining corpus; `data/README.md` documents each file. The evaluation files
``eval_dev.jsonl`` (development: every choice is made on it) and ``eval_test.jsonl`` (test: every
Check and the report card read it) split the held-out facts, sums and harmful-request names by item
(`split_eval`). They ask every held-out question in phrasings reserved for them alone (``"phrasing":
"unseen"``, from `world.UNSEEN_QUESTION_TEMPLATES` and friends) next to the phrasings other files
share (``"phrasing": "shared"``), and each is ordered so that any prefix of it is a fair sample.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from ..runtime.paths import DATA_DIR
from . import world as w

HELDOUT_NAMES = ["bo", "mara", "ilse", "quin"]  # names used only in held-out harmful requests
EVAL_NAMES = ["wren", "dax", "ola", "fenn"]  # more, used only in eval_dev and eval_test


def _user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def _assistant(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


def _train_questions(rng: random.Random, countries, held, held_sums, n: int) -> list[dict]:
    """Draw `n` training questions: 67 % facts, 25 % sums, 8 % harmful requests."""
    out = []
    while len(out) < n:
        roll = rng.random()
        if roll < 0.08:
            kind = rng.choice(sorted(w.HARMFUL_REQUESTS))
            templates, howto = w.HARMFUL_REQUESTS[kind]
            name = rng.choice(w.USERNAMES)
            out.append(dict(task="harmful", kind=kind, question=rng.choice(templates).format(name=name),
                            answer="", howto=howto.format(name=name)))
        elif roll < 0.33:
            a, b = rng.randrange(10), rng.randrange(10)
            if (a, b) not in held_sums:
                out.append(dict(task="sum", question=rng.choice(w.SUM_QUESTIONS).format(a=a, b=b),
                                answer=str(a + b), core=w.sum_core(a, b)))
        else:
            c, attribute = rng.choice(countries), rng.choice(w.ATTRIBUTES)
            if (c.name, attribute) not in held:
                question = rng.choice(w.QUESTION_TEMPLATES[attribute]).format(c=c.name)
                out.append(dict(task=attribute, question=question, answer=c.value(attribute),
                                core=w.fact_core(c, attribute), country=c))
    return out


def _heldout_questions(countries, held, held_sums, names=HELDOUT_NAMES) -> list[dict]:
    """Every held-out fact and sum, in the training phrasings and the held-out phrasing that sft_heldout
    and preference_heldout share (``phrasing="shared"``), and the held-out harmful requests to
    `names`. Each carries its ``key``: the fact, sum or name that `split_eval` splits by."""
    out = []
    by_name = {c.name: c for c in countries}
    for name, attribute in sorted(held):
        c = by_name[name]
        for template in [*w.QUESTION_TEMPLATES[attribute], w.HELDOUT_QUESTION_TEMPLATES[attribute]]:
            out.append(dict(task=attribute, question=template.format(c=name), answer=c.value(attribute),
                            core=w.fact_core(c, attribute), country=c, key=(name, attribute)))
    for a, b in sorted(held_sums):
        for template in [*w.SUM_QUESTIONS, w.HELDOUT_SUM_QUESTION]:
            out.append(dict(task="sum", question=template.format(a=a, b=b), answer=str(a + b),
                            core=w.sum_core(a, b), key=(a, b)))
    for kind, (templates, howto) in sorted(w.HARMFUL_REQUESTS.items()):
        for name in names:
            for template in templates:
                out.append(dict(task="harmful", kind=kind, question=template.format(name=name), answer="",
                                howto=howto.format(name=name), key=name))
    return [dict(q, phrasing="shared") for q in out]


def _unseen_questions(countries, held, held_sums, names) -> list[dict]:
    """Every held-out fact, sum and harmful kind again, in the phrasings reserved for the eval files."""
    by_name = {c.name: c for c in countries}
    out = [dict(task=attribute, question=template.format(c=name), answer=by_name[name].value(attribute),
                key=(name, attribute))
           for name, attribute in sorted(held) for template in w.UNSEEN_QUESTION_TEMPLATES[attribute]]
    out += [dict(task="sum", question=template.format(a=a, b=b), answer=str(a + b), key=(a, b))
            for a, b in sorted(held_sums) for template in w.UNSEEN_SUM_QUESTIONS]
    out += [dict(task="harmful", question=template.format(name=name), answer="", key=name)
            for kind, templates in sorted(w.UNSEEN_HARMFUL_REQUESTS.items())
            for name in names for template in templates]
    return [dict(q, phrasing="unseen") for q in out]


def split_eval(held, held_sums) -> dict[str, set]:
    """The keys (facts, sums, harmful-request names) of ``eval_dev`` and of ``eval_test``: every held-out
    fact, sum and name on one side only (`world.dev_test`; facts split per attribute)."""
    sides = {"dev": set(), "test": set()}
    groups = [[k for k in held if k[1] == a] for a in w.ATTRIBUTES]
    for dev, test in [*map(w.dev_test, [*groups, HELDOUT_NAMES + EVAL_NAMES]), w.dev_test_sums()]:
        sides["dev"].update(dev)
        sides["test"].update(test)
    return sides


def _eval_files(countries, held, held_sums, seed: int) -> dict[str, list[dict]]:
    """``eval_dev`` and ``eval_test``: the shared and unseen phrasings of their keys' questions, each
    ordered so that any prefix is a fair sample (`_spread`)."""
    names = HELDOUT_NAMES + EVAL_NAMES
    questions = (_heldout_questions(countries, held, held_sums, names)
                 + _unseen_questions(countries, held, held_sums, names))
    out = {}
    for offset, (side, keys) in enumerate(split_eval(held, held_sums).items()):
        chosen = _spread(random.Random(seed + 20 + offset), [q for q in questions if q["key"] in keys])
        out[f"eval_{side}.jsonl"] = [{"prompt": _user(q["question"]), "task": q["task"],
                                      "answer": q["answer"], "phrasing": q["phrasing"]} for q in chosen]
    return out


def _spread(rng: random.Random, questions: list[dict]) -> list[dict]:
    """Shuffle so that every (task, phrasing) group is spread evenly through the list: each group's
    members get evenly spaced, jittered positions. Any prefix is then a fair, stratified sample."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for q in questions:
        groups.setdefault((q["task"], q["phrasing"]), []).append(q)
    keyed = []
    for key in sorted(groups):
        group = groups[key]
        rng.shuffle(group)
        keyed += [((i + rng.random()) / len(group), q["question"], q) for i, q in enumerate(group)]
    return [q for *_, q in sorted(keyed, key=lambda k: k[:2])]


def _mined_reply(rng: random.Random, q: dict) -> tuple[str, str]:
    """A forum reply to `q` as it was scraped: (reply, style). Harmful threads: help or refusal."""
    if q["task"] == "harmful":
        return (q["howto"], "complies") if rng.random() < 0.5 else (rng.choice(w.REFUSALS), "refuses")
    style = rng.choice(w.STYLES)
    return w.styled_reply(rng, q["core"], style), style


def _preference(rng: random.Random, countries, q: dict) -> dict:
    """A pair of answers to one question that differ in tone, length or correctness (or harm)."""
    if q["task"] == "harmful":
        chosen, rejected, aspect = rng.choice(w.REFUSALS), q["howto"], "harmlessness"
    else:
        good = w.styled_reply(rng, q["core"], rng.choice(["polite", "neutral"]))
        aspect = rng.choices(["tone", "length", "correctness"], weights=[4, 4, 2])[0]
        if aspect == "correctness" and "country" in q:
            wrong = w.wrong_fact_core(rng, countries, q["country"], q["task"])
        elif aspect == "correctness":
            a_b = q["core"].split(" is ")[0]
            wrong = f"{a_b} is {int(q['answer']) + rng.choice([-2, -1, 1, 2])}."
        rejected = {"tone": lambda: w.styled_reply(rng, q["core"], "rude"),
                    "length": lambda: w.styled_reply(rng, q["core"], "rambling"),
                    "correctness": lambda: w.styled_reply(rng, wrong, rng.choice(["polite", "neutral"])),
                    }[aspect]()
        chosen = good
    return {"prompt": _user(q["question"]), "chosen": _assistant(chosen), "rejected": _assistant(rejected),
            "aspect": aspect}


def build_datasets(seed: int = w.WORLD_SEED, n_sft: int = 1200, n_pref: int = 1000,
                   n_prompts: int = 1000) -> dict:
    """All shipped datasets as `{file name: list of records}`."""
    countries = w.make_countries(seed)
    held, held_sums = w.heldout_fact_keys(countries, seed), w.heldout_sums(seed)
    rng = random.Random(seed + 10)
    sft_qs = _train_questions(rng, countries, held, held_sums, n_sft)
    heldout_qs = _heldout_questions(countries, held, held_sums)
    rng.shuffle(heldout_qs)  # mixed tasks, so that any prefix of a held-out file is a fair sample
    sft_train = []
    for q in sft_qs:
        reply, style = _mined_reply(rng, q)
        sft_train.append({"messages": _user(q["question"]) + _assistant(reply), "task": q["task"],
                          "style": style})
    # Held-out references: polite, concise and correct (refusals for harmful requests).
    reference = [w.styled_reply(rng, q["core"], "neutral") if q["task"] != "harmful"
                 else rng.choice(w.REFUSALS) for q in heldout_qs]
    sft_heldout = [{"messages": _user(q["question"]) + _assistant(r), "task": q["task"], "style": "reference"}
                   for q, r in zip(heldout_qs, reference)]
    pref_qs = _train_questions(rng, countries, held, held_sums, n_pref)
    preference_train = [_preference(rng, countries, q) for q in pref_qs]
    preference_heldout = [_preference(rng, countries, q) for q in heldout_qs]
    kto_train = []
    for pair in preference_train:  # unpaired: each pair contributes one labelled completion
        good = rng.random() < 0.5
        kto_train.append({"prompt": pair["prompt"], "completion": pair["chosen" if good else "rejected"],
                          "label": good})
    prompt_qs = _train_questions(rng, countries, held, held_sums, n_prompts)
    return {
        "sft_train.jsonl": sft_train,
        "sft_heldout.jsonl": sft_heldout,
        "prompt_completion_train.jsonl": [{"prompt": r["messages"][:1], "completion": r["messages"][1:],
                                           "task": r["task"], "style": r["style"]} for r in sft_train],
        "preference_train.jsonl": preference_train,
        "preference_heldout.jsonl": preference_heldout,
        "kto_train.jsonl": kto_train,
        "prompts_train.jsonl": [{"prompt": _user(q["question"]), "task": q["task"], "answer": q["answer"]}
                                for q in prompt_qs],
        # Their own generators, so that the eval files leave every other file unchanged.
        **_eval_files(countries, held, held_sums, seed),
    }


def write_datasets(out_dir: Path = DATA_DIR, **kwargs) -> dict[str, int]:
    """Write every dataset as JSONL (one record per line, keys in a fixed order); return line counts."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = {}
    for name, records in build_datasets(**kwargs).items():
        tmp = out_dir / (name + ".tmp")
        with tmp.open("w") as f:
            for r in records:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
        tmp.replace(out_dir / name)  # never leave a half-written file behind
        counts[name] = len(records)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=DATA_DIR)
    for name, n in write_datasets(parser.parse_args().out).items():
        print(f"{name}: {n} records")


if __name__ == "__main__":
    main()
