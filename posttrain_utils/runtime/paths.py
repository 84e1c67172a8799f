"""Where the course's files live: the one place that names them.

Introduced in chapter 0. Every module that reads the shipped data, the shipped tiny base model or
the checkpoint cache takes its path from here.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent.parent
REPO_ROOT = PACKAGE_DIR.parent
DATA_DIR = REPO_ROOT / "data"  # the shipped JSONL datasets (data/README.md)
TINY_BASE_DIR = PACKAGE_DIR / "assets" / "tiny-base"  # the cpu profile's base model
CACHE_ENV = "POSTTRAIN_CACHE"
DEFAULT_CACHE = REPO_ROOT / ".cache" / "checkpoints"


def cache_root() -> Path:
    """The checkpoint cache: ``$POSTTRAIN_CACHE`` if set, else ``.cache/checkpoints``."""
    return Path(os.environ.get(CACHE_ENV, DEFAULT_CACHE))
