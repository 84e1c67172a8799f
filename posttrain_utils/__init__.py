"""posttrain_utils: the helper package of the course "Post-training LLMs, hands-on".

The package is grouped by who reads it.

The learner's API, one module per method, shaped like TRL's Config + Trainer:
    sft          the SFT loss, the course's `SFTConfig` recipe, the ``sft`` stage (chapter 2)
    lora         LoRA from scratch, checked against peft (chapter 3)
    reward       the Bradley-Terry loss, the `RewardConfig` recipe, the ``reward`` stage (chapter 4)
    overoptimization   the gold score and best-of-n against a proxy reward (chapter 4)
    ppo, ppo_trainer   PPO from scratch: losses, GAE, `PPOConfig`, `PPOTrainer`, the ``ppo`` stage
                 (chapter 5); ppo_hack: the ``ppo-hack`` stage (beta 0)
    dpo          the DPO, IPO, SimPO and ORPO losses from scratch, `DPOConfig` (chapter 6)
    dpo_family, dpo_sweep   six preference methods on one budget (the ``dpo`` stage); beta,
                 over-optimisation, online DPO and best-of-n (the ``dpo-sweep`` stage) (chapter 6)
    cai          the constitution, critique, revision and the AI critic's labels (chapter 7, being
                 written)
    evaluation   generation and the judgements every chapter's Check rests on (chapter 0 on)
    formats      validators for TRL's data formats; fields: their shared field checks (chapter 1)
    validate     `formats.validate_file` and ``python -m posttrain_utils.formats FILE``: check your own file
    source_formats, convert   data as it is found, and its conversion into TRL's formats (chapter 1)
    data, jsonl  reading the shipped datasets strictly (chapter 0, chapter 1)
    models       one loader for both profiles; plotting: the book's curves and bars
    world_base   the gpu profile's base model: SmolLM2 after reading the tiny world, the
                 ``world-base`` stage (chapter 0)

The course's runtime (`posttrain_utils.runtime`):
    profiles     the cpu and gpu profiles, the seed, `activate()` (chapter 0)
    checkpoints  the stage graph: `get("sft")` trains a stage when it is missing (chapter 2)
    seeds        ``make seeds``: a chapter's Check at seeds 0, 1 and 2 (chapter 0)
    netguard, notebook, paths   network guard, notebook helpers, where files live

The tiny world's generators (`posttrain_utils.tinyworld`):
    world, chat, build_base, make_data   the world, its tokenizer and chat template, the base
                                         model's pretraining, the shipped datasets (``make world``)

The exercise checkers (`posttrain_utils.exercises`): ``chNN_<chapter>.py``, one per chapter.
"""
