"""LoRA from scratch (`posttrain_utils.lora`): zero-init identity, equality with peft, merging, errors."""

import copy

import pytest
import torch
from torch import nn

from posttrain_utils import lora


def tiny_llama(seed: int = 0):
    """A randomly initialised small Llama with the same module names as the course's tiny base."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=97, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=64,
                         tie_word_embeddings=True)
    return LlamaForCausalLM(config).eval()


def randomise_b(model, seed: int = 1):
    """Give every B a non-zero value, so the low-rank path actually contributes."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)


INPUT = torch.randint(0, 97, (3, 11), generator=torch.Generator().manual_seed(2))


def test_zero_init_b_keeps_the_output():
    base = nn.Linear(16, 8)
    layer = lora.LoRALinear(copy.deepcopy(base), r=4, alpha=8)
    x = torch.randn(5, 16)
    assert torch.equal(layer.lora_B, torch.zeros(8, 4)) and layer.lora_A.abs().sum() > 0
    assert torch.allclose(layer(x), base(x), atol=0)
    model = tiny_llama()
    reference = copy.deepcopy(model)
    names = lora.apply_lora(model, r=4, target_modules=lora.ALL_LINEAR)
    assert len(names) == 2 * 7
    with torch.no_grad():
        assert torch.equal(model(INPUT).logits, reference(INPUT).logits)


def test_only_lora_parameters_train():
    model = tiny_llama()
    lora.apply_lora(model, r=2, target_modules=("q_proj", "v_proj"))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_A" in n or "lora_B" in n for n in trainable)
    assert len(trainable) == 2 * 2 * 2  # 2 layers x (q, v) x (A, B)
    expected = 2 * (2 * (32 + 32) + 2 * (32 + 32))  # r * (in + out) per wrapped layer
    assert sum(p.numel() for n, p in model.named_parameters() if p.requires_grad) == expected


@pytest.mark.parametrize("r, alpha, targets", [(4, 8, lora.ALL_LINEAR), (2, 16, ("q_proj", "v_proj")),
                                               (8, 8, lora.ATTENTION)])
def test_equals_peft_forward(r, alpha, targets):
    from peft import LoraConfig, get_peft_model

    ours = tiny_llama()
    theirs = get_peft_model(copy.deepcopy(ours), LoraConfig(r=r, lora_alpha=alpha, target_modules=list(targets),
                                                            lora_dropout=0.0, task_type="CAUSAL_LM"))
    randomise_b(theirs)
    lora.apply_lora(ours, r=r, alpha=alpha, target_modules=targets)
    assert lora.copy_peft_weights(ours, theirs) == 2 * len(targets)
    assert all(m.scaling == alpha / r for m in lora.lora_layers(ours).values())
    theirs.eval()
    with torch.no_grad():
        a, b = ours(INPUT).logits, theirs(INPUT).logits
        plain = theirs.get_base_model()
        with theirs.disable_adapter():
            base = plain(INPUT).logits
    assert (a - base).abs().max() > 1e-3  # the adapter changes the output ...
    assert torch.allclose(a, b, atol=1e-5, rtol=0)  # ... in the same way in both implementations


def test_merge_equals_unmerged_and_unmerge_restores():
    model = tiny_llama()
    original = {n: p.clone() for n, p in model.named_parameters()}
    lora.apply_lora(model, r=4, alpha=16)
    randomise_b(model)
    layer = next(iter(lora.lora_layers(model).values()))
    x = torch.randn(2, 32)
    before = layer(x)
    layer.merge()
    assert torch.allclose(layer(x), before, atol=1e-5)
    with pytest.raises(RuntimeError, match="already merged"):
        layer.merge()
    layer.unmerge()
    assert torch.allclose(layer.base.weight, original["model.layers.0.self_attn.q_proj.weight"], atol=1e-6)
    with pytest.raises(RuntimeError, match="not merged"):
        layer.unmerge()
    with torch.no_grad():
        unmerged = model(INPUT).logits
        lora.merge_lora(model)
        merged = model(INPUT).logits
    assert not lora.lora_layers(model)
    assert all(type(m) is nn.Linear for n, m in model.named_modules() if n.endswith("_proj"))
    assert (merged - unmerged).abs().max() < 1e-5
    assert set(dict(model.named_parameters())) == set(original)


def test_bad_arguments_raise():
    linear = nn.Linear(8, 4)
    with pytest.raises(TypeError, match="nn.Linear"):
        lora.LoRALinear(nn.Conv1d(2, 2, 1), r=1)
    for bad_r in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="positive integer"):
            lora.LoRALinear(linear, r=bad_r)
    with pytest.raises(ValueError, match="exceeds"):
        lora.LoRALinear(linear, r=5)
    with pytest.raises(ValueError, match="alpha"):
        lora.LoRALinear(linear, r=2, alpha=0)
    with pytest.raises(ValueError, match="dropout"):
        lora.LoRALinear(linear, r=2, dropout=1.0)
    with pytest.raises(ValueError, match="no nn.Linear"):
        lora.apply_lora(tiny_llama(), r=2, target_modules=("c_attn",))
    with pytest.raises(ValueError, match="empty"):
        lora.apply_lora(tiny_llama(), r=2, target_modules=())
    with pytest.raises(ValueError, match="apply_lora first"):
        lora.copy_peft_weights(tiny_llama(), tiny_llama())


def test_copy_peft_weights_rejects_mismatches():
    from peft import LoraConfig, get_peft_model

    model = tiny_llama()
    peft_model = get_peft_model(copy.deepcopy(model), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj"]))
    rank_2 = copy.deepcopy(model)
    lora.apply_lora(rank_2, r=2, alpha=4, target_modules=("q_proj",))
    with pytest.raises(ValueError, match="rank"):
        lora.copy_peft_weights(rank_2, peft_model)
    other_alpha = copy.deepcopy(model)
    lora.apply_lora(other_alpha, r=4, alpha=4, target_modules=("q_proj",))
    with pytest.raises(ValueError, match="scaling"):
        lora.copy_peft_weights(other_alpha, peft_model)
    more_targets = copy.deepcopy(model)
    lora.apply_lora(more_targets, r=4, alpha=8, target_modules=("q_proj", "v_proj"))
    with pytest.raises(ValueError, match="matches"):
        lora.copy_peft_weights(more_targets, peft_model)
    with pytest.raises(ValueError, match="adapter 'other'"):
        lora.copy_peft_weights(copy.deepcopy(other_alpha), peft_model, adapter_name="other")


def test_exercise_checkers(tmp_path, capsys):
    """The chapter-3 checkers accept the right answer and reject a wrong one."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    from posttrain_utils.exercises import ch03_peft as exercises_peft

    model = tiny_llama()
    right = sum(8 * (m.in_features + m.out_features) for n, m in model.named_modules() if n.split(".")[-1] in lora.ATTENTION)
    assert exercises_peft.check_lora_param_count(right, model, r=8, target_modules=lora.ATTENTION)
    assert not exercises_peft.check_lora_param_count(right + 1, model, r=8, target_modules=lora.ATTENTION)

    peft_model = get_peft_model(copy.deepcopy(model), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj"]))
    randomise_b(peft_model)
    layer = peft_model.get_submodule("base_model.model.model.layers.0.self_attn.q_proj")
    with torch.no_grad():
        merged = layer.base_layer.weight + layer.lora_B["default"].weight @ layer.lora_A["default"].weight * 2.0
    assert exercises_peft.check_manual_merge(merged, peft_model, "layers.0.self_attn.q_proj")
    assert not exercises_peft.check_manual_merge(layer.base_layer.weight, peft_model, "layers.0.self_attn.q_proj")
    assert not exercises_peft.check_manual_merge(merged, peft_model, "layers.9.self_attn.q_proj")

    model.save_pretrained(tmp_path)
    quantized = AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.float32, quantization_config=BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=torch.float32))
    import bitsandbytes.functional as bnbf

    q = quantized.model.layers[0].mlp.down_proj
    w = model.model.layers[0].mlp.down_proj.weight
    error = (bnbf.dequantize_4bit(q.weight.data, q.weight.quant_state).float() - w).abs().mean().item()
    assert 0 < error < w.abs().mean().item()
    assert exercises_peft.check_nf4_error(error, w, q)
    assert not exercises_peft.check_nf4_error(2 * error, w, q)
    assert "not yet" in capsys.readouterr().out
    # inference on an AVX-512 BF16 CPU repacks the weight into a layout dequantize_4bit cannot read
    # (the flag below); the checker refuses such a layer instead of passing a meaningless number
    from copy import copy as shallow_copy

    q.weight.quant_state = shallow_copy(q.weight.quant_state)
    q.weight.quant_state.packing_format_for_cpu = True
    assert not exercises_peft.check_nf4_error(error, w, q)


def lora_batches(n_batches: int = 2, size: int = 4, length: int = 12):
    """Random token batches with SFT-style labels (the first third of each row untrained, one row padded)."""
    gen = torch.Generator().manual_seed(3)
    batches = []
    for _ in range(n_batches):
        ids = torch.randint(2, 97, (size, length), generator=gen)
        attention = torch.ones_like(ids)
        attention[0, -3:] = 0
        labels = ids.masked_fill(attention == 0, -100)
        labels[:, : length // 3] = -100
        batches.append({"input_ids": ids, "attention_mask": attention, "labels": labels})
    return batches


class ScratchLoRA(nn.Module):
    """The chapter's TinyLoRA, with knobs for the wrong versions the checker must reject."""

    def __init__(self, base, r, alpha, scaling=None, b_std=0.0):
        super().__init__()
        self.base, self.scaling = base, alpha / r if scaling is None else scaling
        self.A = nn.Parameter(torch.randn(r, base.in_features) / base.in_features**0.5)
        self.B = nn.Parameter(torch.randn(base.out_features, r) * b_std)

    def forward(self, x):
        return self.base(x) + (x @ self.A.T @ self.B.T) * self.scaling


def make_add_lora(freeze=True, scaling=None, b_std=0.0, skip=()):
    """add_lora for peft-ex4: the reference with the defaults, a wrong version otherwise."""
    def add_lora(model, r, alpha, target_modules):
        if freeze:
            model.requires_grad_(False)
        for name, module in list(model.named_modules()):
            short = name.split(".")[-1]
            if isinstance(module, nn.Linear) and short in target_modules and short not in skip:
                parent, _, child = name.rpartition(".")
                wrapped = ScratchLoRA(module, r, alpha, None if scaling is None else scaling(r, alpha), b_std)
                setattr(model.get_submodule(parent), child, wrapped)
        return model
    return add_lora


def test_lora_training_checker_both_ways(capsys):
    from posttrain_utils.exercises import ch03_peft as exercises_peft

    model, batches = tiny_llama(), lora_batches()
    before = copy.deepcopy(model.state_dict())
    assert exercises_peft.check_lora_training(make_add_lora(), model, batches)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # trains copies only
    assert exercises_peft.check_lora_training(make_add_lora(), model, batches, r=2, alpha=16,
                                              target_modules=("q_proj", "v_proj"))

    def with_library(model, r, alpha, target_modules):  # the course's LoRALinear is right too
        lora.apply_lora(model, r=r, alpha=alpha, target_modules=target_modules)
        return model

    assert exercises_peft.check_lora_training(with_library, model, batches)
    wrong = {"base not frozen": make_add_lora(freeze=False),
             "scaling alpha": make_add_lora(scaling=lambda r, alpha: alpha),
             "scaling r / alpha": make_add_lora(scaling=lambda r, alpha: r / alpha),
             "B not zero": make_add_lora(b_std=0.01),
             "a target left out": make_add_lora(skip=("down_proj",)),
             "the model unchanged": lambda model, r, alpha, target_modules: model,
             "nothing returned": lambda model, r, alpha, target_modules: None}
    for name, fn in wrong.items():
        assert not exercises_peft.check_lora_training(fn, model, batches), name
    out = capsys.readouterr().out
    assert "freeze every base weight" in out and "B must start at zero" in out
    with pytest.raises(ValueError, match="no batches"):
        exercises_peft.check_lora_training(make_add_lora(), model, [])
