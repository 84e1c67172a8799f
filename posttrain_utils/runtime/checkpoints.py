"""Loading a stage of the stage graph: `get("sft", profile)` is the chapter's one call.

Introduced in chapter 2. The graph itself (what each stage is, how it is fingerprinted, trained
and cached) is `runtime.graph`; this module puts a loader on top (`get`) and is the command line
that `make test` trains the shared stages with:
``python -m posttrain_utils.runtime.checkpoints sft reward``. The graph's names are re-exported
here, so ``checkpoints.path``, ``checkpoints.STAGES`` and ``checkpoints.cache_dir`` keep working.
"""

from __future__ import annotations

from . import graph
from .graph import (FINGERPRINT_FILE, WORLD_BASE, Stage, all_stages, base_model_source,  # noqa: F401
                    base_stage, cache_dir, fingerprint, get_stage, is_cached, path,
                    resolve_upstream, run_dir, save)
from .profiles import Profile, resolve


def __getattr__(name: str):
    if name == "STAGES":
        return graph.all_stages()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def get(name: str, profile: Profile | None = None):
    """Stage `name` as `(model, tokenizer)`, trained and cached on first use.

    Args:
        name: a stage in `STAGES`, e.g. ``"sft"``.
        profile: the run profile (default: the active one, `profiles.current()`).

    Returns:
        A transformers model on the profile's device (loaded by the stage's `Stage.loader`), and
        its tokenizer.
    """
    from . import models

    profile = resolve(profile)
    loader = getattr(models, get_stage(name).loader)
    return loader(path(name, profile), profile)


def main(argv=None) -> None:
    """``python -m posttrain_utils.runtime.checkpoints sft reward``: train (or find) stages now.

    `make test` runs it before the notebooks, so that the stages several chapters share are trained
    once, by a process of their own, instead of inside whichever chapter asks first.
    """
    import argparse
    import time

    from . import profiles

    parser = argparse.ArgumentParser(description="Train the named stages (and their upstream stages) "
                                                 "into the cache, unless they are cached already.")
    parser.add_argument("stages", nargs="+", choices=sorted(all_stages()), help="stage names, e.g. sft reward")
    args = parser.parse_args(argv)
    profile = profiles.activate()
    for name in args.stages:
        start, cached = time.time(), is_cached(name, profile)
        folder = path(name, profile)
        print(f"{name}: {'cached' if cached else f'trained in {time.time() - start:.0f} s'} ({folder})")


if __name__ == "__main__":
    main()
