"""Chapter 2's other SFT run as a cached stage: ``sft-filtered``, SFT on the chats a filter keeps.

Chapter 2 ("Supervised fine-tuning") retrains the base model on quality-filtered chats inside its
notebook. `train_filtered` is the same recipe as a stage of the graph (`sft.train`'s config, budget
and held-out loss every 20 steps, on the chats `good_quality` keeps, at most `MAX_WORDS` words and
never rude), so that chapter 9's report card can score it at every seed.

Run it: ``checkpoints.get("sft-filtered", profile)`` returns ``(model, tokenizer)``.
"""


from __future__ import annotations

from pathlib import Path

from .recipe import DATA_FILES, run_sft, sft_config

MAX_WORDS = 20  # chapter 2's filter: the longest reply it keeps, in words


def good_quality(record: dict) -> bool:
    """Chapter 2's quality filter: the chat's last reply has no rude phrase and at most 20 words.

    Args:
        record: an ``sft_train`` record (a ``messages`` list whose last turn is the reply).

    Raises:
        ValueError: if the record has no ``messages`` list.
    """
    from ..evaluation.judgements import is_rude

    messages = record.get("messages") if isinstance(record, dict) else None
    if not isinstance(messages, list) or not messages:
        raise ValueError(f"good_quality needs a non-empty 'messages' list, got {record!r}")
    reply = messages[-1]["content"]
    return not is_rude(reply) and len(reply.split()) <= MAX_WORDS


def train_filtered(profile, output_dir: str | Path, base: str | Path):
    """Train the ``sft-filtered`` stage: chapter 2's SFT on the chats `good_quality` keeps.

    The recipe, budget (``sft``) and held-out loss of `sft.train`, from the same base model; only
    the training chats differ.

    Args:
        profile: the run profile.
        output_dir: the trainer's scratch folder.
        base: the folder (or Hub id) of the upstream ``base`` stage.

    Returns:
        `(model, tokenizer)` after training.
    """
    from datasets import Dataset

    from ..data.loading import load_dataset, load_records
    from ..runtime.models import load_model
    from ..runtime.profiles import seed_everything

    seed_everything(profile.seed)
    records = [{"messages": r["messages"]} for r in load_records(DATA_FILES[0]) if good_quality(r)]
    if not records:
        raise ValueError(f"good_quality kept none of the {DATA_FILES[0]} chats")
    model, tokenizer = load_model(base, profile)
    model = run_sft(model, tokenizer, sft_config(profile, output_dir),
                       Dataset.from_list(records),
                       eval_dataset=load_dataset(DATA_FILES[1], columns=["messages"]))
    return model, tokenizer


