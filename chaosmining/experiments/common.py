"""What the results of the modality runs (symbolic, vision, audio) share."""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = ["ModelRunResult"]


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
