"""The from-scratch SFT loss: masking and agreement with transformers' own loss."""

import pytest
import torch

from posttrain_utils.sft import IGNORE_INDEX, mask_labels, sft_loss


def test_mask_labels():
    ids = torch.tensor([[5, 6, 7, 8]])
    labels = mask_labels(ids, torch.tensor([[0, 0, 1, 1]]))
    assert labels.tolist() == [[IGNORE_INDEX, IGNORE_INDEX, 7, 8]]
    with pytest.raises(ValueError):
        mask_labels(ids, torch.tensor([[1, 1]]))


def test_sft_loss_matches_transformers_and_ignores_masked_tokens():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=2))
    ids = torch.randint(0, 50, (2, 10))
    labels = mask_labels(ids, (torch.arange(10) >= 4).long().expand(2, 10))
    out = model(input_ids=ids, labels=labels)
    assert torch.allclose(sft_loss(out.logits, labels), out.loss, atol=1e-6)
    # by hand: only positions 4..9 are trained, each predicted from the previous position
    logp = out.logits.log_softmax(-1)
    manual = -torch.stack([logp[b, t - 1, ids[b, t]] for b in range(2) for t in range(4, 10)]).mean()
    assert torch.allclose(sft_loss(out.logits, labels), manual, atol=1e-6)

def test_sft_loss_rejects_fully_masked_batch():
    with pytest.raises(ValueError, match="no trained tokens"):
        sft_loss(torch.zeros(1, 4, 10), torch.full((1, 4), IGNORE_INDEX))
