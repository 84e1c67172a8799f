"""A shortened pretraining run: same code as `build_base`, fewer documents and steps."""

import torch

from posttrain_utils.tinyworld import build_base, chat, world


def _run(seed=0):
    torch.manual_seed(0)
    docs = world.make_corpus(1500)
    tok = chat.train_tokenizer(docs, vocab_size=512)
    blocks = build_base.pack_corpus(docs, tok, block_size=64)
    model = build_base.make_model(tok, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                  num_attention_heads=2, num_key_value_heads=2)
    return build_base.pretrain(model, blocks, steps=40, batch_size=16, lr=3e-3, warmup=5, log_every=20,
                               progress=False, seed=seed)


def test_short_pretraining_loss_falls_and_is_reproducible():
    torch.set_num_threads(1)
    history = _run()
    first, last = history["val_loss"][0][1], history["val_loss"][-1][1]
    print(f"val loss {first:.2f} -> {last:.2f}")
    assert last < first - 1.0  # more than one nat below the untrained model
    assert _run()["val_loss"] == history["val_loss"]


def test_tokenizer_keeps_digits_apart_and_names_whole():
    docs = world.make_corpus(3000)
    tok = chat.train_tokenizer(docs)
    assert [t for t in tok.tokenize("12") if t.strip("Ġ")] == ["1", "2"]
    country = world.make_countries()[0]
    assert len(tok.tokenize(" " + country.name)) == 1
    for special in chat.SPECIAL_TOKENS:
        assert len(tok.tokenize(special)) == 1
