"""Text metrics: ROUGE, BLEU, exact and normalised match, and where word overlap misleads.

Introduced in chapter 9 ("Evaluation"), which asks what a number about replies really measures.
Reference-based metrics compare a reply with a reference text:

* `rouge`: mean ROUGE F1 (unigrams, bigrams, longest common subsequence...) with ``rouge-score``;
* `bleu`: corpus BLEU (0-100) with ``sacrebleu`` and its default ``13a`` tokenizer;
* `exact_match` and `normalized_match`: the answer string as it is, or after SQuAD-style
  normalisation (`normalize_answer`).

Both libraries run offline: ``rouge-score`` only needs NLTK's Porter stemmer, which is code, not
data (sentence splitting, which needs NLTK's ``punkt`` data, is never used), and the ``13a``
tokenizer is a regular expression (the ``spm``/``flores`` tokenizers would download a model).
`misleading_examples` gives the chapter's worked example: a right answer worded differently from
the reference scores low, and a wrong answer that copies the reference's words scores high.

Pairwise comparison (win rates and their intervals) and LLM judges live in `evaluation.winrate`.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Sequence

__all__ = ["ROUGE_TYPES", "bleu", "exact_match", "misleading_examples", "normalize_answer",
           "normalized_match", "rouge"]

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")
_ROUGE_TYPE = re.compile(r"rouge[1-9]|rougeL|rougeLsum")
_ARTICLES = re.compile(r"\b(a|an|the)\b")

# The chapter's worked example: per question, a right reply worded differently from the reference
# and a wrong reply that copies the reference's words (tiny-world style, fictional names).
_MISLEADING = (
    ("What is the capital of Feto?", "The capital of Feto is Lune.", "Lune",
     "Lune, of course.", "The capital of Feto is Mirra."),
    ("What colour is the flag of Ostaria?", "The flag of Ostaria is green.", "green",
     "Green.", "The flag of Ostaria is blue."),
    ("What is 3 plus 4?", "3 plus 4 is 7.", "7",
     "Seven.", "3 plus 4 is 8."),
    ("Which language do people speak in Kavu?", "People in Kavu speak Dornese.", "Dornese",
     "Dornese is what you hear there.", "People in Kavu speak Velish."),
)


def _texts(values, name: str) -> list[str]:
    """`values` as a list of strings, refusing a bare string (it would be read as characters)."""
    if isinstance(values, str) or not isinstance(values, Sequence):
        raise TypeError(f"{name} must be a list of strings, got {type(values).__name__}")
    values = list(values)
    bad = next((i for i, v in enumerate(values) if not isinstance(v, str)), None)
    if bad is not None:
        raise TypeError(f"{name}[{bad}] must be a string, got {type(values[bad]).__name__}")
    return values


def _pairs(predictions, references) -> tuple[list[str], list[str]]:
    predictions, references = _texts(predictions, "predictions"), _texts(references, "references")
    if not predictions:
        raise ValueError("predictions is empty: there is nothing to score")
    if len(predictions) != len(references):
        raise ValueError(f"got {len(predictions)} predictions for {len(references)} references")
    return predictions, references


def rouge(predictions: Sequence[str], references: Sequence[str],
          types: Sequence[str] = ROUGE_TYPES) -> dict[str, float]:
    """Mean ROUGE F1 of each prediction against its reference (``rouge-score``, Porter stemming).

    ``rouge-score`` keeps only ASCII letters and digits, lower-cased: punctuation never counts, and
    words in other scripts vanish (two identical Chinese sentences score 0). It stems only words of
    more than 3 letters ("owls" and "owl" match, "flying" and "fly" do not).

    Args:
        predictions: the replies, one string each.
        references: one reference string per prediction.
        types: ROUGE variants: ``"rougeN"`` (N = 1-9, overlap of N-grams), ``"rougeL"`` (longest
            common subsequence) or ``"rougeLsum"`` (``rougeL`` over newline-separated sentences;
            sentences are never split with NLTK, which would need its ``punkt`` data).

    Returns:
        ``{type: mean F1 over the pairs}``, each in [0, 1], in the order of `types`.
    """
    predictions, references = _pairs(predictions, references)
    types = _texts(types, "types")
    if not types:
        raise ValueError("types is empty: name at least one ROUGE type, e.g. 'rougeL'")
    unknown = [t for t in types if not _ROUGE_TYPE.fullmatch(t)]
    if unknown:
        raise ValueError(f"unknown ROUGE types {unknown}; "
                         "expected 'rouge1'-'rouge9', 'rougeL' or 'rougeLsum'")
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(list(types), use_stemmer=True)  # split_summaries stays False
    totals = dict.fromkeys(types, 0.0)
    for prediction, reference in zip(predictions, references):
        scores = scorer.score(reference, prediction)  # rouge-score's order: (target, prediction)
        for t in types:
            totals[t] += scores[t].fmeasure
    return {t: totals[t] / len(predictions) for t in types}


def bleu(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU of the predictions against one reference each (``sacrebleu``, ``13a`` tokenizer).

    BLEU is a geometric mean of 1- to 4-gram precisions, so a prediction of fewer than four tokens
    (punctuation counts as a token) on its own scores 0, however right it is.

    Args:
        predictions: the replies, one string each.
        references: one reference string per prediction.

    Returns:
        The BLEU score, from 0 to 100 (a perfect match may print as 100.00000000000004).
    """
    predictions, references = _pairs(predictions, references)
    import sacrebleu

    return float(sacrebleu.corpus_bleu(predictions, [references], tokenize="13a").score)


def _check_text(value, name: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, got {type(value).__name__}")
    return value


def normalize_answer(text: str) -> str:
    """SQuAD-style normalisation: lower-case, drop punctuation and the articles a/an/the, collapse
    whitespace.

    Punctuation is ASCII punctuation and symbols (``string.punctuation``, as in SQuAD) plus any
    Unicode punctuation (curly quotes, dashes). Characters are removed, not replaced by spaces, so
    ``"Feto's"`` becomes ``"fetos"`` and ``"1,000"`` becomes ``"1000"``.

    Args:
        text: an answer or a reply.

    Returns:
        The normalised text, e.g. ``"  The capital is LUNE! "`` -> ``"capital is lune"``.
    """
    text = _check_text(text, "text").lower()
    text = "".join(ch for ch in text
                   if ch not in string.punctuation and not unicodedata.category(ch).startswith("P"))
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, reference: str) -> bool:
    """True if `prediction` is `reference`, character for character (case, spaces and punctuation
    included: ``"Lune."`` does not match ``"Lune"``).

    Args:
        prediction: a reply.
        reference: the expected answer.

    Returns:
        Whether the two strings are equal.
    """
    return _check_text(prediction, "prediction") == _check_text(reference, "reference")


def normalized_match(prediction: str, reference: str) -> bool:
    """True if `prediction` and `reference` are equal after `normalize_answer`.

    ``"The Lune."`` matches ``"lune"``; ``"It is Lune."`` does not (extra words still count).

    Args:
        prediction: a reply.
        reference: the expected answer.

    Returns:
        Whether the normalised strings are equal.
    """
    return normalize_answer(prediction) == normalize_answer(reference)


def misleading_examples() -> list[dict]:
    """Replies on which word overlap with the reference gets right and wrong backwards.

    For each question there are two replies: a right answer worded differently from the reference
    (low ROUGE and BLEU, but right) and a wrong answer that copies the reference's words with one
    swapped (high ROUGE and BLEU, but wrong). The unit tests check that, with ``rouge-score`` and
    ``sacrebleu``, every wrong copy scores higher ROUGE-L and BLEU than the right rewording.

    Returns:
        A new list of dicts, two per question, with ``question``, ``reference`` (a full-sentence
        reference reply), ``answer`` (the fact asked for), ``reply``, ``correct`` (whether the reply
        gives the right answer) and ``kind`` (``"right, reworded"`` or ``"wrong, copies the reference"``).
    """
    rows = []
    for question, reference, answer, right, wrong in _MISLEADING:
        for reply, correct, kind in ((right, True, "right, reworded"),
                                     (wrong, False, "wrong, copies the reference")):
            rows.append({"question": question, "reference": reference, "answer": answer,
                         "reply": reply, "correct": correct, "kind": kind})
    return rows
