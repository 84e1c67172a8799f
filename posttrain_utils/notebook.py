"""Small conveniences for the chapter notebooks: the setup banner and exercise feedback.

Introduced in chapter 0; every chapter's setup cell calls `show_setup`.
"""

from __future__ import annotations

import platform
import sys
from importlib import metadata

LIBRARIES = ("torch", "transformers", "trl", "peft", "datasets", "accelerate", "bitsandbytes")


def versions(libraries=LIBRARIES) -> dict[str, str]:
    """Installed versions of `libraries` ("not installed" when missing)."""
    out = {"python": platform.python_version()}
    for lib in libraries:
        try:
            out[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            out[lib] = "not installed"
    return out


def show_setup(profile) -> None:
    """Print library versions and the active profile (model, device, threads)."""
    print(" | ".join(f"{k} {v}" for k, v in versions().items()))
    print(f"profile: {profile.name} | model: {profile.model_name_or_path.split('posttrain_utils/')[-1]} | "
          f"device: {profile.device} | threads: {profile.num_threads or 'default'}")


def feedback(exercise: str, passed: bool, hint: str) -> bool:
    """Print a uniform verdict for an exercise checker and return `passed`."""
    print(f"[{exercise}] {'correct!' if passed else 'not yet: ' + hint}")
    return passed
