"""Sampling replies and scoring their tokens: what PPO, best-of-n, the DPO sweep and the report
card share.

Introduced in chapter 5 ("RLHF with PPO"). `sample_responses` draws left-padded rollouts at a
temperature and cuts each at its first EOS (`truncate_at_eos`); `response_logprobs` recomputes the
log-probability of every response token under any model at the same temperature (positions from
the attention mask, `position_ids_from`); `sampled_kl` estimates KL(policy || reference) per reply
from replies the policy samples. `ppo.trainer.PPOTrainer` runs on these, and so do chapter 5's
`reward.overoptimization.drift_report` and chapter 9's report card.
"""

from __future__ import annotations

import torch

def position_ids_from(attention_mask):
    """Position ids that start at 0 on the first real token of each left-padded row.

    Models with learned absolute positions (GPT-2) need them; with rotary embeddings (Llama) only
    relative positions matter, so there they only keep the numbers identical to `generate`'s.
    """
    return (attention_mask.long().cumsum(1) - 1).clamp(min=0)


def truncate_at_eos(responses, eos_token_id: int, pad_token_id: int):
    """Cut each response after its first EOS.

    Args:
        responses: `(batch, T)` sampled token ids.
        eos_token_id, pad_token_id: the tokenizer's (they must differ).

    Returns:
        `(responses, mask, ended)`: the ids with every token after the first EOS set to the pad id;
        `(batch, T)` 1 up to and including the first EOS, 0 after it; `(batch,)` whether an EOS came.
    """
    is_eos = (responses == eos_token_id).long()
    after_eos = (is_eos.cumsum(1) - is_eos) > 0
    return responses.masked_fill(after_eos, pad_token_id), (~after_eos).long(), is_eos.bool().any(1)


@torch.no_grad()
def sample_responses(policy, tokenizer, prompts, max_new_tokens: int, temperature: float = 1.0,
                     seed: int = 0) -> dict:
    """Sample one response per prompt from the policy's full distribution, cut at the first EOS.

    No top-k and no top-p: the log-probs PPO recomputes (and a KL estimate from them) are those of
    the distribution the tokens were drawn from.

    Args:
        policy: a causal LM.
        tokenizer: its tokenizer, with a pad token other than EOS.
        prompts: chat conversations ending with a user turn (or plain strings, used as they are).
        max_new_tokens: the longest response.
        temperature: the sampling temperature.
        seed: seeds the sampling.

    Returns:
        A dict: ``query_responses`` and ``attention_mask`` (left-padded prompts, then responses),
        ``context_length``, ``responses``, ``mask`` (1 up to and including the first EOS), ``ended``
        (whether an EOS came) and ``replies`` (the decoded text, without the EOS).
    """
    texts = [p if isinstance(p, str)
             else tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p in prompts]
    tokenizer.padding_side = "left"
    device = next(policy.parameters()).device
    enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
    context_length = enc["input_ids"].shape[1]
    torch.manual_seed(seed)
    out = policy.generate(**enc, max_new_tokens=max_new_tokens, do_sample=True, temperature=temperature,
                          top_k=0, top_p=1.0, eos_token_id=tokenizer.eos_token_id,
                          pad_token_id=tokenizer.pad_token_id)
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    responses, mask, ended = truncate_at_eos(out[:, context_length:], eos, pad)
    keep = (mask == 1) & (responses != eos)  # the reply's text, without its EOS
    replies = [tokenizer.decode(r[k].tolist(), skip_special_tokens=True).strip() for r, k in zip(responses, keep)]
    return {"query_responses": torch.cat([enc["input_ids"], responses], 1),
            "attention_mask": torch.cat([enc["attention_mask"], mask], 1),
            "context_length": context_length, "responses": responses, "mask": mask, "ended": ended,
            "replies": replies}


def response_logprobs(model, query_responses, attention_mask, context_length: int, temperature: float = 1.0):
    """Log-probs of the response tokens, at the temperature they were sampled at.

    Args:
        model: a causal LM.
        query_responses: `(batch, context_length + T)` left-padded prompts followed by responses.
        attention_mask: 1 on real prompt and response tokens.
        context_length: the padded prompt length; responses start there.
        temperature: the sampling temperature; the logits are divided by it.

    Returns:
        `(logp, logits)`: `(batch, T)` log-probs of the response tokens and the `(batch, T, vocab)`
        temperature-scaled logits that predicted them.
    """
    logits = model(input_ids=query_responses, attention_mask=attention_mask,
                   position_ids=position_ids_from(attention_mask), use_cache=False).logits
    logits = logits[:, context_length - 1:-1].float() / temperature
    responses = query_responses[:, context_length:]
    return logits.log_softmax(-1).gather(-1, responses.unsqueeze(-1)).squeeze(-1), logits


def sampled_kl(policy, reference, tokenizer, prompts, max_new_tokens: int, *,
               batch_size: int = 64, seed: int = 0) -> float:
    """KL(policy || reference) per reply, from one reply per prompt sampled from `policy` at
    temperature 1: the mean over replies of ``sum_t log p(token) - log ref(token)``, unbiased
    because the tokens come from the policy. Batch ``i`` samples with seed ``seed + i``."""
    kls = []
    with torch.no_grad():
        for start in range(0, len(prompts), batch_size):
            out = sample_responses(policy, tokenizer, list(prompts[start:start + batch_size]),
                                   max_new_tokens, seed=seed + start)
            args = (out["query_responses"], out["attention_mask"], out["context_length"])
            logp, _ = response_logprobs(policy, *args)
            ref_logp, _ = response_logprobs(reference, *args)
            kls += ((logp - ref_logp) * out["mask"]).sum(1).tolist()
    return sum(kls) / len(kls)
