"""posttrain_utils: the helper package of the course "Post-training LLMs, hands-on".

One folder per chapter's method, each with the learner's names in its ``__init__`` (so a notebook
writes ``from posttrain_utils import dpo`` and then ``dpo.dpo_loss``) and its stages of the stage
graph in its own ``stages.py``. CONTRIBUTING.md says where a new method goes.

    data         chapter 1: TRL's formats, validators, source formats, conversion, strict loading
    sft          chapter 2: the SFT loss, the `sft_config` recipe, the sft and sft-filtered stages
    lora         chapter 3: LoRA from scratch; peft's LoRA and QLoRA, the lora and qlora stages
    reward       chapter 4: Bradley-Terry, `reward_config`, scoring, calibration, the gold score,
                 best-of-n; the reward stage
    ppo          chapter 5: PPO's losses, `PPOConfig`, `PPOTrainer`, the ppo and ppo-hack stages
    dpo          chapter 6: the DPO family's losses, six methods on one budget, the sweep, online
                 DPO; the dpo and dpo-sweep stages
    cai          chapter 7: the constitution, critique and revision, prompts, SL-CAI and RL-CAI;
                 the sl-cai, rl-cai and cai-ablations stages
    grpo         chapter 8: verifiers, group advantages and the loss, the sums task; the grpo and
                 grpo-variants stages
    evaluation   chapters 0 and 9: generation and judgements, shared rollouts, metrics, win rates,
                 judges, perplexity, contamination (the sft-contaminated stage), the report card
    scaling      chapter 11: the training scripts, memory arithmetic, launching
    runtime      profiles, the stage graph (graph, checkpoints, sources), seeds, network guard,
                 notebook helpers, models, plotting, results files, the pipeline
    tinyworld    the world, tokenizer and chat template, base-model pretraining, the datasets,
                 the gpu profile's world-base stage
    exercises    chNN_<chapter>.py: every chapter's exercise checkers
    teaching     the student edition, grading, the instructor's guide's data
"""
