"""Chapter 1's exercise checkers, both ways: the reference solution passes, constant or wrong ones fail."""

from posttrain_utils.data import DataFormatError
from posttrain_utils.exercises import ch01_formats
from posttrain_utils.data.formats import validate_record
from posttrain_utils.runtime.models import load_tokenizer
from posttrain_utils.runtime import profiles


def spin_reference(record, sample):
    *prompt, truth = record["messages"]
    if truth["role"] != "assistant":
        raise ValueError("no ground-truth assistant turn")
    pair = {"prompt": prompt, "chosen": [truth], "rejected": [{"role": "assistant", "content": sample}]}
    return validate_record(pair, "preference")


def test_spin_converter_both_ways():
    assert ch01_formats.check_spin_converter(spin_reference)

    def swapped(record, sample):  # the seed table's reading: prefer the model's (newer) answer
        pair = spin_reference(record, sample)
        return {**pair, "chosen": pair["rejected"], "rejected": pair["chosen"]}

    assert not ch01_formats.check_spin_converter(swapped)

    def last_user_turn_only(record, sample):  # drops the system prompt and earlier turns
        pair = spin_reference(record, sample)
        return {**pair, "prompt": [m for m in pair["prompt"] if m["role"] == "user"][-1:]}

    assert not ch01_formats.check_spin_converter(last_user_turn_only)

    def never_raises(record, sample):
        *prompt, truth = record["messages"]
        return {"prompt": prompt, "chosen": [truth], "rejected": [{"role": "assistant", "content": sample}]}

    assert not ch01_formats.check_spin_converter(never_raises)
    constant = spin_reference(*ch01_formats.SPIN_CASES[0])
    assert not ch01_formats.check_spin_converter(lambda record, sample: constant)


def test_ranking_pairs_both_ways():
    def reference(scores):
        return [(i, j) for i, a in enumerate(scores) for j, b in enumerate(scores) if a > b]

    assert ch01_formats.check_ranking_pairs(reference)
    constant = reference(ch01_formats.EX2_SCORES)  # right for [4, 2, 4, 1] only
    assert not ch01_formats.check_ranking_pairs(lambda scores: constant)
    assert not ch01_formats.check_ranking_pairs(  # ties counted as pairs
        lambda s: [(i, j) for i in range(len(s)) for j in range(len(s)) if i != j and s[i] >= s[j]])
    assert not ch01_formats.check_ranking_pairs(  # (worse, better)
        lambda s: [(j, i) for i, j in reference(s)])


def test_labels_both_ways():
    tok = load_tokenizer(profiles.CPU.model_name_or_path, profiles.CPU)

    def reference(tokenizer, messages):
        enc = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True,
                                            return_assistant_tokens_mask=True)
        return [t if m else -100 for t, m in zip(enc["input_ids"], enc["assistant_masks"])]

    assert ch01_formats.check_labels(reference, tok)

    def every_token(tokenizer, messages):  # no mask at all
        return tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"]

    assert not ch01_formats.check_labels(every_token, tok)

    def without_end(tokenizer, messages):  # forgets to train <|end|>
        end = tokenizer.convert_tokens_to_ids("<|end|>")
        return [-100 if t == end else t for t in reference(tokenizer, messages)]

    assert not ch01_formats.check_labels(without_end, tok)


def test_bad_lines_both_ways():
    def reference(records):
        bad = []
        for line, record in enumerate(records, start=1):
            try:
                validate_record(record, "messages", line=line)
            except DataFormatError:
                bad.append(line)
        return bad

    assert ch01_formats.check_bad_lines(reference)
    constant = reference(ch01_formats.EX4_BATCH)  # right for the first batch only
    assert not ch01_formats.check_bad_lines(lambda records: constant)
    assert not ch01_formats.check_bad_lines(lambda records: [i for i, _ in enumerate(records) if i])  # 0-based
    assert not ch01_formats.check_bad_lines(lambda records: reference(records)[:1])  # stops at the first
