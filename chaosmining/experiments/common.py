"""What the results of the modality runs (symbolic, vision, audio) share."""

from __future__ import annotations

import math
from typing import Any, ClassVar

__all__ = ["LEARNED_FACTOR", "ClassifierRunResult", "ModelRunResult", "learned", "learning_note"]

LEARNED_FACTOR = 1.5
"""A model whose accuracy is below this multiple of chance has not learned: its maps say nothing."""


def learned(accuracy: float, chance: float, factor: float = LEARNED_FACTOR) -> bool:
    """True when ``accuracy`` is at least ``factor`` x ``chance`` (False for a NaN accuracy).

    Examples
    --------
    >>> learned(0.15, 0.1), learned(0.6, 0.1)
    (True, True)
    >>> learned(0.14, 0.1)
    False
    """
    return bool(math.isfinite(accuracy) and accuracy >= factor * chance - 1e-12)


def learning_note(accuracy: float, chance: float, factor: float = LEARNED_FACTOR) -> str | None:
    """The warning to show before a model's maps when it has not learned, else None.

    One wording for every modality, shown first by the CLI and the pages.
    """
    if learned(accuracy, chance, factor):
        return None
    return (
        f"This model has not learned: its accuracy {accuracy:.3f} is below {factor:g}x chance ({chance:.3f}), "
        "so its attribution maps say nothing about where the signal is. Train longer or pick a larger preset "
        "before reading them."
    )


class ModelRunResult:
    """Mixin for the result of one model configuration and one evaluation configuration.

    The dataclass using it has ``config`` (with ``to_dict()`` and ``config_hash``), ``eval``,
    ``train_seconds``, ``seconds``, ``cached`` and ``device``; ``bundle_task`` names the run for
    ``python -m chaosmining rerun``.
    """

    bundle_task: ClassVar[str]

    def run_fields(self) -> dict[str, Any]:
        """The summary's closing fields: timings, provenance and the configurations."""
        return {
            "train_seconds": self.train_seconds,  # type: ignore[attr-defined]
            "seconds": self.seconds,  # type: ignore[attr-defined]
            "cached": self.cached,  # type: ignore[attr-defined]
            "device": self.device,  # type: ignore[attr-defined]
            "config": self.config.to_dict(),  # type: ignore[attr-defined]
            "eval": self.eval.to_dict(),  # type: ignore[attr-defined]
            "model_key": self.config.config_hash,  # type: ignore[attr-defined]
        }

    def bundle(self) -> dict[str, Any]:
        """The re-runnable JSON bundle (``python -m chaosmining rerun bundle.json``)."""
        from ..export import bundle_json

        return bundle_json(
            self.bundle_task,
            {"model": self.config.to_dict(), "eval": self.eval.to_dict()},  # type: ignore[attr-defined]
            self.summary(),  # type: ignore[attr-defined]
        )


class ClassifierRunResult(ModelRunResult):
    """Mixin for a classifier's result (vision, audio): ``accuracy`` and ``chance_accuracy`` give
    :attr:`learned` and :attr:`learning_note`, which the CLI and the pages show before any map."""

    @property
    def learned(self) -> bool:
        """Whether the model's accuracy reaches 1.5x chance (see :func:`learned`)."""
        return learned(self.accuracy, self.chance_accuracy)  # type: ignore[attr-defined]

    @property
    def learning_note(self) -> str | None:
        """The "has not learned" warning, or None (see :func:`learning_note`)."""
        return learning_note(self.accuracy, self.chance_accuracy)  # type: ignore[attr-defined]

    def learning_fields(self) -> dict[str, Any]:
        """The summary's ``learned`` and ``learning_note`` fields."""
        return {"learned": self.learned, "learning_note": self.learning_note}
