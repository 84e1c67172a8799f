"""Loading models and tokenizers: one function for both profiles.

Introduced in chapter 0. `load_model` takes a local directory (the ``cpu`` profile's tiny base
model, or any checkpoint a chapter saved) or a Hub id (the ``gpu`` profile's SmolLM2). It always
loads safetensors, never runs remote code, and makes sure the tokenizer carries a chat template
with generation markers, so that TRL's assistant-only loss works on every model the course uses.
`load_reward_model` (chapter 4) loads the same checkpoints as one-output sequence classifiers.
Called without a source, both load the profile's base model (`base_model_source`): in the ``gpu``
profile that is SmolLM2 after reading the tiny world (the ``world-base`` stage, trained on first use).
"""

from __future__ import annotations

from pathlib import Path

from ..tinyworld.chat import CHAT_TEMPLATE
from .graph import base_model_source
from .profiles import Profile, resolve

# ChatML, used when a Hub base model (e.g. SmolLM2) has <|im_start|>/<|im_end|> but no usable
# template with generation markers. Same structure as the tiny model's CHAT_TEMPLATE.
CHATML_TEMPLATE = (
    CHAT_TEMPLATE.replace("'<|assistant|>\n'", "'<|im_start|>assistant\n'")
    .replace("'<|end|>'", "'<|im_end|>'")
    .replace("'<|' + message['role'] + '|>\n'", "'<|im_start|>' + message['role'] + '\n'")
    .replace("'<|end|>\n'", "'<|im_end|>\n'")
)


def load_tokenizer(source: str | Path, profile: Profile | None = None):
    """Load a tokenizer and give it the course's chat conventions if it lacks them.

    Args:
        source: a local directory or a Hub id.
        profile: decides whether the network may be used (default: the active profile).

    Returns:
        A `PreTrainedTokenizerFast` whose template marks assistant turns with `{% generation %}`,
        whose `eos_token` ends a chat turn and which pads on the left (for generation).
    """
    from transformers import AutoTokenizer

    profile = resolve(profile)
    tok = AutoTokenizer.from_pretrained(str(source), local_files_only=profile.offline)
    if "{% generation %}" not in (tok.chat_template or ""):
        if "<|im_end|>" not in tok.get_vocab():
            raise ValueError(f"tokenizer at {source} has no chat template with generation markers and no "
                             "<|im_start|>/<|im_end|> tokens to build one from")
        tok.chat_template = CHATML_TEMPLATE
        tok.eos_token = "<|im_end|>"
    if tok.pad_token is None or tok.pad_token == tok.eos_token:
        # a pad token separate from EOS, so that masking padding never masks a real end of turn
        tok.pad_token = tok.unk_token or "<|endoftext|>"
    tok.padding_side = "left"
    return tok


def load_model(source: str | Path | None = None, profile: Profile | None = None, *, for_training: bool = True,
               quantization_config=None, dtype: str | None = None):
    """Load a causal LM and its tokenizer, the same way in every profile.

    Args:
        source: a local directory or Hub id; defaults to the profile's base model (`base_model_source`).
        profile: the run profile (default: the active one) for device, dtype and offline mode.
        for_training: keep dropout settings as saved and the model in train mode; otherwise eval mode.
        quantization_config: e.g. a `BitsAndBytesConfig` for 4-bit QLoRA (chapter 3). A quantized
            model is placed by its loader and is not moved afterwards.
        dtype: the weights' dtype (default: the profile's), e.g. ``"bfloat16"``.

    Returns:
        `(model, tokenizer)`: a transformers `PreTrainedModel` on the profile's device and its tokenizer.
    """
    import torch
    from transformers import AutoModelForCausalLM

    profile = resolve(profile)
    source = str(source or base_model_source(profile))
    if profile.offline and not Path(source).is_dir():
        raise FileNotFoundError(f"profile {profile.name!r} is offline and {source!r} is not a local directory")
    tokenizer = load_tokenizer(source, profile)
    extra = {}
    if quantization_config is not None:  # bitsandbytes places the quantized weights itself
        extra = {"quantization_config": quantization_config, "device_map": {"": profile.device}}
    model = AutoModelForCausalLM.from_pretrained(source, dtype=getattr(torch, dtype or profile.dtype),
                                                 local_files_only=profile.offline, use_safetensors=True, **extra)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.config.pad_token_id = tokenizer.pad_token_id
    if quantization_config is None:
        model.to(profile.device)
    model.train(for_training)
    return model, tokenizer


def load_reward_model(source: str | Path | None = None, profile: Profile | None = None, *,
                      for_training: bool = True, dtype: str | None = None):
    """Load a reward model: a sequence-classification model with one output (the reward) and its tokenizer.

    Introduced in chapter 4 ("Reward modelling"). Loading a causal-LM checkpoint (e.g. the ``sft``
    stage) keeps its transformer and adds a newly initialised linear ``score`` head; that head is
    drawn from ``profile.seed`` (in a forked RNG, so the caller's random state is untouched), so the
    same profile always gets the same reward model. A saved reward model loads with its own head.

    Args:
        source: a local directory or Hub id; defaults to the profile's base model (`base_model_source`).
        profile: the run profile (default: the active one) for device, dtype, seed and offline mode.
        for_training: keep the model in train mode; otherwise eval mode.
        dtype: the weights' dtype (default: the profile's).

    Returns:
        `(model, tokenizer)`: an `AutoModelForSequenceClassification` with ``num_labels=1`` and
        ``config.pad_token_id`` set (it finds each sequence's last token by it), on the profile's
        device, and the tokenizer from `load_tokenizer`.
    """
    import torch
    from transformers import AutoModelForSequenceClassification
    from trl.trainer.reward_trainer import suppress_seqcls_warning  # hides the expected "score.weight" report

    profile = resolve(profile)
    source = str(source or base_model_source(profile))
    if profile.offline and not Path(source).is_dir():
        raise FileNotFoundError(f"profile {profile.name!r} is offline and {source!r} is not a local folder")
    tokenizer = load_tokenizer(source, profile)
    with torch.random.fork_rng(devices=[]), suppress_seqcls_warning():
        torch.manual_seed(profile.seed)  # the new score head is initialised on the CPU, from this seed
        model = AutoModelForSequenceClassification.from_pretrained(
            source, num_labels=1, dtype=getattr(torch, dtype or profile.dtype),
            local_files_only=profile.offline, use_safetensors=True, trust_remote_code=False)
    if model.config.num_labels != 1:
        raise ValueError(f"{source} has num_labels={model.config.num_labels}; a reward model has exactly one")
    model.config.pad_token_id = tokenizer.pad_token_id
    model.to(profile.device)
    model.train(for_training)
    return model, tokenizer


def count_parameters(model) -> tuple[int, int]:
    """`(trainable, total)` parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())
