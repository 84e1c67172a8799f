"""Continued pretraining on the tiny world: the ``gpu`` profile's base model, the ``world-base`` stage.

Introduced in chapter 0. The ``cpu`` profile's tiny base model was pretrained on the tiny world's
corpus (`tinyworld.build_base`), so it knows each country's capital, flag, animal, language and
population before any post-training. SmolLM2-135M, the ``gpu`` profile's model, has never read
that corpus: without this stage it could not answer the held-out fact questions, and every lesson
about facts (kept or lost by SFT, PPO, DPO) would fail. So in the ``gpu`` profile the course first
continues SmolLM2's pretraining on the same corpus, next-token prediction on packed blocks, as the
tiny model was pretrained.

`runtime.checkpoints` trains and caches it as the ``world-base`` stage, on first use, for every
profile with a ``world_base`` budget (``gpu``); there `runtime.models.load_model()` returns it as the base
model, and ``sft`` (and ORPO) start from it.

The budget (``profiles.GPU``'s ``world_base``), unmeasured (no GPU run yet): 60 000 documents are
12.7 M characters, 2.5 M words: 3.4 M tokens with the tiny base model's tokenizer (trained on this
corpus, so a lower bound); SmolLM2's English BPE, which splits digits and invented names, should
need about 4 M. 1 000 steps x 16 blocks x 256 tokens = 4.1 M tokens, about one pass, in which
every country's facts are read ~540 times (45 % of the documents are encyclopedia entries, each
stating all facts of one of 50 countries). 1e-4, cosine, is a common continued-pretraining step
for a ~100 M model. 6 x 135 M x 4.1 M = 3.3e15 FLOPs: an estimated 5 minutes on a T4 at a
realistic 10-15 TFLOP/s in fp16.

Run it: ``checkpoints.get("world-base", profile)`` returns ``(model, tokenizer)``, trained if missing.
"""

from __future__ import annotations

import json
from pathlib import Path

BUDGET = "world_base"  # the profile budget it reads: Trainer arguments, plus `n_docs`


def corpus_blocks(tokenizer, n_docs: int, block_size: int):
    """The tiny world's first `n_docs` documents as `(n_blocks, block_size)` token ids.

    Packed as the tiny base model was (`tinyworld.build_base.pack_corpus`): each document opens with
    the tokenizer's BOS token, SmolLM2's ``<|endoftext|>``, the end-of-document token it was
    pretrained with, and never ``<|im_end|>``, which `runtime.models.load_tokenizer` makes the chat EOS.

    Args:
        tokenizer: the profile's tokenizer (from `runtime.models.load_model`).
        n_docs: documents to read from `tinyworld.world.make_corpus` (always the same first ones).
        block_size: tokens per block (the profile's `max_length`).
    """
    from .build_base import pack_corpus
    from .world import make_corpus

    if tokenizer.bos_token_id is None:
        raise ValueError("the tokenizer has no BOS token to separate the corpus' documents with")
    return pack_corpus(make_corpus(n_docs), tokenizer, block_size=block_size)


def world_base_config(profile, output_dir: str | Path, **overrides):
    """The recipe as transformers `TrainingArguments`: the profile's budget, seed and precision,
    a cosine schedule with 5 % warm-up, AdamW with beta2 0.95 and weight decay 0.1, and gradient
    clipping at 1, as in `tinyworld.build_base.pretrain`.

    Args:
        profile: the run profile.
        output_dir: the trainer's scratch folder (use `runtime.checkpoints.run_dir`).
        **overrides: replace any field, e.g. ``max_steps=10``.
    """
    from transformers import TrainingArguments

    budget = profile.budget(BUDGET)
    budget.pop("n_docs", None)
    kwargs = dict(profile.trainer_kwargs(), **budget)
    kwargs.update(output_dir=str(output_dir), lr_scheduler_type="cosine",
                  warmup_steps=budget["max_steps"] // 20, weight_decay=0.1, adam_beta2=0.95, max_grad_norm=1.0)
    kwargs.update(overrides)
    return TrainingArguments(**kwargs)


def train(profile, output_dir: str | Path, base: str | Path):
    """Train the ``world-base`` stage: the profile's base model after reading the tiny world.

    Also writes the trainer's log (the training loss) to ``output_dir/log_history.json``.

    Args:
        profile: the run profile; its ``world_base`` budget gives the Trainer arguments and
            `n_docs`, its `max_length` the block size.
        output_dir: the trainer's scratch folder.
        base: the folder (or Hub id) of the upstream ``base`` stage.

    Returns:
        `(model, tokenizer)` after training.
    """
    from datasets import Dataset
    from transformers import Trainer, default_data_collator

    from ..runtime.models import load_model
    from ..runtime.notebook import quiet
    from ..runtime.profiles import seed_everything

    seed_everything(profile.seed)
    model, tokenizer = load_model(base, profile)
    blocks = corpus_blocks(tokenizer, profile.budget(BUDGET)["n_docs"], profile.max_length).tolist()
    # labels are the inputs (the model shifts them). Not DataCollatorForLanguageModeling: it would
    # mask the pad token, which is <|endoftext|> here, the separator the model must learn to predict.
    dataset = Dataset.from_dict({"input_ids": blocks, "labels": blocks})
    trainer = Trainer(model=model, args=world_base_config(profile, output_dir), train_dataset=dataset,
                      data_collator=default_data_collator, processing_class=tokenizer)
    quiet(trainer).train()
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    (Path(output_dir) / "log_history.json").write_text(json.dumps(trainer.state.log_history, indent=1))
    return trainer.model, tokenizer
