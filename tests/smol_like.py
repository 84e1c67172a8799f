"""A tiny offline stand-in for SmolLM2-135M, the ``gpu`` profile's base model, for the tests.

No test may download SmolLM2. What makes it differ from the ``cpu`` profile's tiny base model is
its *shape*: grouped-query attention, tied embeddings, and a ChatML tokenizer (``<|im_start|>`` /
``<|im_end|>``) whose saved BOS and EOS are ``<|endoftext|>`` and whose chat template has no
generation markers. `build_smol_like` saves a random model and tokenizer of that shape in a few
hundred milliseconds; `smol_profile` is `profiles.GPU` pointed at it, on the CPU, with budgets of a
few steps. Used by ``test_gpu_path.py`` (every chapter's code path) and ``test_world_base.py``.
"""

from __future__ import annotations

import dataclasses

import torch

from posttrain_utils.runtime import profiles
from posttrain_utils.tinyworld import world

IM_START, IM_END, ENDOFTEXT = "<|im_start|>", "<|im_end|>", "<|endoftext|>"
# SmolLM2-135M's own template (its base model's tokenizer): ChatML, no {% generation %} markers
HUB_CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content']"
              " + '<|im_end|>' + '\n' }}{% endfor %}"
              "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
# SmolLM2-135M's shape, scaled down: 4 query heads share 2 key/value heads; tied embeddings
SHAPE = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=512, tie_word_embeddings=True)


def build_smol_like(folder):
    """Save a random SmolLM2-shaped Llama and a ChatML byte-level BPE tokenizer into `folder`.

    Special tokens as in SmolLM2 (ids 0, 1, 2: ``<|endoftext|>``, ``<|im_start|>``, ``<|im_end|>``;
    BOS, EOS and UNK are ``<|endoftext|>``), trained on a slice of the tiny world's corpus.
    """
    from tokenizers import Tokenizer, decoders, models as tok_models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    bpe = Tokenizer(tok_models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)])
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(world.make_corpus(1000), trainer=trainers.BpeTrainer(
        vocab_size=512, special_tokens=[ENDOFTEXT, IM_START, IM_END], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token=ENDOFTEXT, eos_token=ENDOFTEXT,
                                        unk_token=ENDOFTEXT, additional_special_tokens=[IM_START, IM_END])
    tokenizer.chat_template = HUB_CHATML
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), bos_token_id=0, eos_token_id=0, **SHAPE))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def smol_profile(folder, budgets: dict) -> profiles.Profile:
    """`profiles.GPU` with the stand-in at `folder` as its model, on the CPU, offline, with `budgets`."""
    return dataclasses.replace(profiles.GPU, model_name_or_path=str(folder), device="cpu", offline=True,
                               dtype="float32", num_threads=1, max_new_tokens=12, n_eval=8, budgets=budgets)
