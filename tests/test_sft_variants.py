"""Chapters 2 and 3's SFT variants as stages: the quality filter, and filtered SFT, LoRA and QLoRA
trained for two steps each, returned as plain models that save and load like any cached stage."""

import dataclasses

import pytest
import torch

from posttrain_utils.runtime import models
from posttrain_utils.lora import adapters
from posttrain_utils.sft import filtered as sft_variants
from posttrain_utils.runtime import checkpoints, profiles

TINY = {"max_steps": 2, "per_device_train_batch_size": 4, "learning_rate": 5e-3}
NEW_STAGES = ("sft-filtered", "lora", "qlora")


@pytest.fixture(scope="module")
def profile():
    """The ``cpu`` profile with 2-step ``sft`` and ``peft`` budgets."""
    torch.set_num_threads(1)
    return dataclasses.replace(profiles.CPU, budgets={**profiles.CPU.budgets, "sft": TINY, "peft": TINY})


def _chat(reply):
    return {"messages": [{"role": "user", "content": "What is the capital of Varnia?"},
                         {"role": "assistant", "content": reply}]}


def _batch(tok):
    """One chat prompt and the reply it asks for, as a model input."""
    text = tok.apply_chat_template(_chat("It is Olt.")["messages"], tokenize=False)
    return tok([text], return_tensors="pt")


def test_good_quality_keeps_short_polite_replies_only():
    assert sft_variants.good_quality(_chat("The capital of Varnia is Olt."))
    assert not sft_variants.good_quality(_chat("What a silly question. It is Olt."))
    assert not sft_variants.good_quality(_chat(" ".join(["word"] * 21)))
    assert sft_variants.good_quality(_chat(" ".join(["word"] * 20)))
    with pytest.raises(ValueError, match="messages"):
        sft_variants.good_quality({"prompt": "hi"})


def test_the_three_stages_are_in_the_graph():
    for name, train in zip(NEW_STAGES, ("train_filtered", "train_lora", "train_qlora")):
        stage = checkpoints.STAGES[name]
        assert stage.upstream == ("base",)
        module = sft_variants if name == "sft-filtered" else adapters
        assert stage.module == module.__name__ and stage.train == train
        assert callable(getattr(module, train))
    assert checkpoints.STAGES["sft-filtered"].budget == "sft"
    assert checkpoints.STAGES["lora"].budget == checkpoints.STAGES["qlora"].budget == "peft"
    prints = {checkpoints.fingerprint(name, profiles.CPU) for name in ("sft", *NEW_STAGES)}
    assert len(prints) == 4  # every stage is cached on its own


def test_merge_adapter_unties_the_embedding_and_keeps_outputs(profile):
    from peft import get_peft_model

    model, tok = models.load_model(profile=profile, for_training=False)
    peft_model = get_peft_model(model, adapters.lora_config())
    torch.manual_seed(0)
    with torch.no_grad():  # a trained-looking adapter: every B (and embedding A) non-zero
        for name, p in peft_model.named_parameters():
            if "lora_" in name:
                p.normal_(std=0.05)
    batch = _batch(tok)
    with torch.no_grad():
        adapter_logits = peft_model(**batch).logits
        merged = adapters.merge_adapter(peft_model)
        merged_logits = merged(**batch).logits
    assert not any("lora_" in name for name, _ in merged.named_parameters())
    assert merged.config.tie_word_embeddings is False
    assert (adapter_logits - merged_logits).abs().max().item() < 1e-4


@pytest.mark.parametrize("train", ["train_filtered", "train_lora", "train_qlora"])
def test_each_variant_trains_and_saves_as_a_plain_model(train, profile, tmp_path):
    base = profile.model_name_or_path
    module = sft_variants if train == "train_filtered" else adapters
    model, tok = getattr(module, train)(profile, tmp_path / "run", base)
    assert type(model).__name__ == "LlamaForCausalLM"  # no peft wrapper left
    assert not any("lora_" in name for name, _ in model.named_parameters())
    if train == "train_qlora":
        assert (tmp_path / "run" / adapters.ADAPTER_DIR / "adapter_config.json").exists()
        assert all(p.dtype == torch.float32 for p in model.parameters())  # not 4-bit
    folder = checkpoints.save(model, tok, tmp_path / "stage", "fingerprint")
    loaded, _ = models.load_model(folder, profile, for_training=False)
    base_model, _ = models.load_model(base, profile, for_training=False)
    batch = _batch(tok)
    with torch.no_grad():
        ours = model.eval()(**batch).logits
        assert (ours - loaded(**batch).logits).abs().max().item() < 1e-5  # saved as trained
        assert (ours - base_model(**batch).logits).abs().max().item() > 1e-4  # it did train
