"""Chapter 3's adapters as cached stages: ``lora`` and ``qlora``, trained with peft and merged.

Chapter 3 ("Parameter-efficient fine-tuning") trains LoRA and QLoRA adapters in its notebook. Here
are the same recipes (same data, config and budget) as functions of the stage graph, so that
chapter 9's report card can score them at every seed:

* `train_lora` (stage ``lora``): a peft LoRA adapter (`LORA_R`, `LORA_ALPHA`, all linear layers
  and the input embedding) on the ``peft`` budget, without padding, merged into the base model;
* `train_qlora` (stage ``qlora``): the same adapter trained on the base model quantised to 4-bit
  NF4, then merged into the *full-precision* base model (see `train_qlora`).

Each returns a plain transformers model (no peft layers). The base model ties its input embedding
to its output layer, and the embedding adapter changes only the input side, so `merge_adapter`
unties the two before merging, as chapter 3 does: the merged model computes what the adapter
model computes. Run it: ``checkpoints.get("lora", profile)`` returns ``(model, tokenizer)``.
"""

from __future__ import annotations

from pathlib import Path

from ..sft.recipe import DATA_FILES, run_sft, sft_config

LORA_R, LORA_ALPHA = 4, 8  # chapter 3's rank and alpha (alpha = 4 * sqrt(r), rank-stabilised)


ADAPTER_DIR = "adapter"  # where `train_qlora` saves the trained adapter, under its output_dir


# chapter 3's "no padding" settings: one packed row per batch, positions restarted at every chat
NO_PADDING = dict(padding_free=True, max_length=None, eval_strategy="no")


def lora_config():
    """Chapter 3's adapter as a peft `LoraConfig`: rank 4, alpha 8, no dropout, on every linear
    layer (`lora.ALL_LINEAR`) and on the input embedding."""
    from peft import LoraConfig

    from ..lora.scratch import ALL_LINEAR

    return LoraConfig(r=LORA_R, lora_alpha=LORA_ALPHA, lora_dropout=0.0,
                      target_modules=[*ALL_LINEAR, "embed_tokens"], task_type="CAUSAL_LM")


def merge_adapter(peft_model):
    """Fold a peft LoRA adapter into its base model and return the plain transformers model.

    If the output layer is tied to the input embedding (the course's base models), it first gets
    its own copy of the original matrix, as in chapter 3: merged into the shared matrix, the
    embedding adapter would change the output layer as well.

    Args:
        peft_model: a `peft.PeftModel` holding a LoRA adapter.
    """
    from torch import nn

    model = peft_model.get_base_model()
    head, embedding = model.get_output_embeddings(), model.get_input_embeddings()
    embedding = getattr(embedding, "base_layer", embedding)  # peft's wrapper holds the base weight
    if head is not None and head.weight is embedding.weight:
        head.weight = nn.Parameter(head.weight.detach().clone(),
                                   requires_grad=head.weight.requires_grad)
        model.config.tie_word_embeddings = False
    return peft_model.merge_and_unload()


def peft_args(profile, output_dir: str | Path):
    """Chapter 3's trainer config: the SFT recipe on the ``peft`` budget, without padding."""
    return sft_config(profile, output_dir, **profile.budget("peft"), **NO_PADDING)


def train_lora(profile, output_dir: str | Path, base: str | Path):
    """Train the ``lora`` stage: chapter 3's LoRA adapter on all ``sft_train`` chats, merged.

    Args:
        profile: the run profile (its ``peft`` budget).
        output_dir: the trainer's scratch folder.
        base: the folder (or Hub id) of the upstream ``base`` stage.

    Returns:
        `(model, tokenizer)`: the base model with the trained adapter merged in (`merge_adapter`).
    """
    from ..data.loading import load_dataset
    from ..runtime.models import load_model
    from ..runtime.profiles import seed_everything

    seed_everything(profile.seed)
    model, tokenizer = load_model(base, profile)
    peft_model = run_sft(model, tokenizer, peft_args(profile, output_dir),
                            load_dataset(DATA_FILES[0], columns=["messages"]),
                            peft_config=lora_config())
    return merge_adapter(peft_model), tokenizer


def qlora_quantization_config(profile):
    """Chapter 3's `BitsAndBytesConfig`: 4-bit NF4 with double quantisation, computing in bf16 on
    CUDA and in fp32 on the CPU."""
    import torch
    from transformers import BitsAndBytesConfig

    compute = "bfloat16" if profile.device == "cuda" else "float32"
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                              bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=getattr(torch, compute))


def train_qlora(profile, output_dir: str | Path, base: str | Path):
    """Train the ``qlora`` stage: chapter 3's LoRA adapter on the 4-bit NF4 base model.

    The base model is loaded quantised (`qlora_quantization_config`), frozen by peft's
    ``prepare_model_for_kbit_training`` (without gradient checkpointing, as in chapter 3) and
    trained with `lora_config` on the ``peft`` budget, like `train_lora`. A 4-bit model cannot be
    saved merged (the sum would have to be re-quantised), so the trained adapter is saved to
    ``output_dir/adapter``, put on the base model loaded again *unquantised* in the profile's dtype,
    and merged there (`merge_adapter`). That full-precision merge is what QLoRA users deploy; its
    figures can differ slightly from those of the 4-bit adapter model chapter 3 measures.

    Args:
        profile: the run profile (its ``peft`` budget).
        output_dir: the trainer's scratch folder; the adapter is saved in its ``adapter`` folder.
        base: the folder (or Hub id) of the upstream ``base`` stage.

    Returns:
        `(model, tokenizer)`: the full-precision base model with the trained adapter merged in.
    """
    from peft import PeftModel, prepare_model_for_kbit_training

    from ..data.loading import load_dataset
    from ..runtime.models import load_model
    from ..runtime.profiles import seed_everything

    seed_everything(profile.seed)
    quantization = qlora_quantization_config(profile)
    qbase, tokenizer = load_model(base, profile, quantization_config=quantization, dtype="float32")
    qbase = prepare_model_for_kbit_training(qbase, use_gradient_checkpointing=False)
    peft_model = run_sft(qbase, tokenizer, peft_args(profile, output_dir),
                            load_dataset(DATA_FILES[0], columns=["messages"]),
                            peft_config=lora_config())
    adapter_dir = Path(output_dir) / ADAPTER_DIR
    peft_model.save_pretrained(adapter_dir, save_embedding_layers=False)  # A and B only
    del peft_model, qbase
    full, _ = load_model(base, profile)
    return merge_adapter(PeftModel.from_pretrained(full, adapter_dir)), tokenizer
