"""The course's chat format: special tokens, the chat template, and the tokenizer built on them.

Introduced in chapter 0 (the tiny base model) and taken apart in chapter 1 (data formats), where the
loss mask is made visible. The template marks assistant turns with `{% generation %}` so that
TRL's `assistant_only_loss=True` can train on assistant tokens only.
"""

from __future__ import annotations

from collections.abc import Iterable

DOC_SEPARATOR = "<|endoftext|>"  # separates pretraining documents (the base model's BOS)
PAD = "<|pad|>"
END = "<|end|>"  # ends every chat turn; the chat EOS token
ROLE_TOKENS = {"system": "<|system|>", "user": "<|user|>", "assistant": "<|assistant|>", "tool": "<|tool|>"}
SPECIAL_TOKENS = [DOC_SEPARATOR, PAD, END, *ROLE_TOKENS.values()]

# Jinja chat template. Every turn is "<|role|>\n{content}<|end|>\n"; assistant content and its
# <|end|> are wrapped in generation markers (the tokens the model must learn to produce).
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] not in ['system', 'user', 'assistant', 'tool'] -%}"
    "{{ raise_exception('unknown role ' + message['role'] + '; expected system, user, assistant or tool') }}"
    "{%- endif -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "{{ '<|assistant|>\n' }}{% generation %}{{ message['content'] + '<|end|>' }}{% endgeneration %}{{ '\n' }}"
    "{%- else -%}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + '<|end|>\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|assistant|>\n' }}{%- endif -%}"
)


def train_tokenizer(corpus: Iterable[str], vocab_size: int = 2048):
    """Train a byte-level BPE tokenizer (digits split one per token) and wrap it for transformers.

    Args:
        corpus: the pretraining documents.
        vocab_size: the target vocabulary size; BPE may saturate below it on a small world.

    Returns:
        A `PreTrainedTokenizerFast` with the chat special tokens and `CHAT_TEMPLATE` set,
        `eos_token` = `<|end|>`, `bos_token` = `<|endoftext|>`, `pad_token` = `<|pad|>`.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=DOC_SEPARATOR, eos_token=END, pad_token=PAD,
                                   additional_special_tokens=list(ROLE_TOKENS.values()))
    fast.chat_template = CHAT_TEMPLATE
    fast.padding_side = "left"  # generation pads on the left; trainers set their own side
    return fast
