"""Small conveniences for the chapter notebooks: the setup banner, exercise feedback, quiet trainers.

Introduced in chapter 0; every chapter's setup cell calls `show_setup`, and every trainer the book
runs goes through `quiet`.
"""

from __future__ import annotations

import functools
import platform
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


@functools.cache
def _quiet_progress_class():
    from transformers.trainer_callback import ProgressCallback

    class QuietProgressCallback(ProgressCallback):
        """Transformers' progress bar without the printed metrics dict at every logging step.

        The metrics still land in `trainer.state.log_history`, which the chapters plot; printed,
        they would fill the rendered book with dozens of lines per run.
        """

        def on_log(self, args, state, control, logs=None, **kwargs):
            return None

    return QuietProgressCallback


def quiet(trainer):
    """Give `trainer` a progress bar that does not print its logged metrics; returns `trainer`.

    Explicit and local: only this trainer changes (undo with ``trainer.remove_callback`` and
    ``trainer.add_callback(ProgressCallback)``). Used on every trainer the book runs.
    """
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    quiet_cls = _quiet_progress_class()
    had_bar = any(type(cb) is ProgressCallback for cb in trainer.callback_handler.callbacks)
    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)
    if had_bar:
        trainer.add_callback(quiet_cls)
    return trainer

