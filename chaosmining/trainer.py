"""One training loop for the classifiers of every modality (vision, audio, the evaluation tasks).

:func:`train_classifier` runs epochs of mini-batch steps (forward, loss, backward, optimizer, a schedule
stepped per batch or per epoch) and returns a typed :class:`TrainingHistory`. What differs between
modalities comes in as arguments: the batches of an epoch, the loss, the validation score, and the
autocast and loss-scaling settings. Hooks give progress events (``report``), a stop between batches
(``should_stop``) and a checkpoint after every epoch (``checkpoint``); ``resume`` continues from one.

The symbolic MLPs keep their compiled full-batch step (:mod:`chaosmining.training`), which this loop
does not replace.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .errors import JobCancelled, TrainingDivergedError
from .runtime import lend_idle_cores

__all__ = ["EpochRecord", "TrainingHistory", "Checkpoint", "TrainerHooks", "train_classifier"]


@dataclass(frozen=True)
class EpochRecord:
    """One epoch: mean training loss and accuracy, the validation score, seconds since the start."""

    epoch: int
    loss: float
    train_accuracy: float
    val_accuracy: float
    seconds: float


@dataclass
class TrainingHistory:
    """The epochs trained so far; :meth:`as_dict` gives the per-epoch lists the results store, with the
    validation score under ``val_key`` (``val_accuracy`` for vision, ``test_accuracy`` for audio)."""

    records: list[EpochRecord] = field(default_factory=list)
    val_key: str = "val_accuracy"

    def as_dict(self) -> dict[str, list[float]]:
        return {
            "epoch": [r.epoch for r in self.records],
            "loss": [r.loss for r in self.records],
            "train_accuracy": [r.train_accuracy for r in self.records],
            self.val_key: [r.val_accuracy for r in self.records],
            "seconds": [r.seconds for r in self.records],
        }


@dataclass
class Checkpoint:
    """Everything needed to continue training after ``epoch``: model, optimizer, schedule, scaler and
    batch-order generator states, and the history so far."""

    epoch: int
    model: dict[str, Any]
    optimizer: dict[str, Any]
    schedule: dict[str, Any]
    scaler: dict[str, Any]
    generator: torch.Tensor
    history: TrainingHistory


@dataclass
class TrainerHooks:
    """``report(**event)`` gets ``stage='training'``, ``epoch`` (fractional within an epoch), ``epochs``,
    ``loss``, and after each epoch the accuracies; ``should_stop()`` is polled before every batch;
    ``checkpoint(Checkpoint)`` is called after every epoch; ``every`` batches between progress events."""

    report: Callable[..., None] | None = None
    should_stop: Callable[[], bool] | None = None
    checkpoint: Callable[[Checkpoint], None] | None = None
    every: int = 10


def train_classifier(
    model: nn.Module,
    *,
    epochs: int,
    batches: Callable[[int, torch.Tensor], Iterable[tuple[torch.Tensor, torch.Tensor]]],
    steps_per_epoch: int,
    loss_fn: Callable[[Any, torch.Tensor], torch.Tensor],
    logits_fn: Callable[[Any], torch.Tensor] = lambda out: out,
    optimizer: torch.optim.Optimizer,
    schedule: Any,
    schedule_per_batch: bool,
    validate: Callable[[nn.Module], float],
    generator: torch.Generator,
    device: torch.device,
    autocast_dtype: torch.dtype | None = None,
    hooks: TrainerHooks | None = None,
    resume: Checkpoint | None = None,
    val_key: str = "val_accuracy",
    diverged_hint: str = "",
) -> TrainingHistory:
    """Train ``model`` in place for ``epochs`` epochs and return the history.

    ``batches(epoch, order_generator)`` yields ``(inputs, labels)`` on ``device`` for one epoch, drawing
    its order from the generator (whose state a checkpoint keeps, so a resumed run continues the same
    sequence). ``autocast_dtype`` switches on autocast on ``device`` (float16 also scales the loss).

    Raises
    ------
    JobCancelled
        When ``hooks.should_stop()`` turns true (checked before every batch).
    TrainingDivergedError
        When the loss is not finite; ``diverged_hint`` says what to change.
    """
    hooks = hooks or TrainerHooks()
    amp = autocast_dtype is not None
    scaler = torch.amp.GradScaler(device.type, enabled=amp and autocast_dtype == torch.float16)
    history = TrainingHistory(val_key=val_key)
    first = 1
    if resume is not None:
        model.load_state_dict(resume.model)
        optimizer.load_state_dict(resume.optimizer)
        schedule.load_state_dict(resume.schedule)
        scaler.load_state_dict(resume.scaler)
        generator.set_state(resume.generator)
        history = TrainingHistory(list(resume.history.records), val_key)
        first = resume.epoch + 1
    start = time.perf_counter() - (history.records[-1].seconds if history.records else 0.0)
    for epoch in range(first, epochs + 1):
        lend_idle_cores()  # in a worker pool: take a share of the cores other workers left idle
        model.train()
        total, correct, seen = 0.0, 0, 0
        for step, (x, y) in enumerate(batches(epoch, generator), 1):
            if hooks.should_stop and hooks.should_stop():
                raise JobCancelled(f"Training stopped by the user in epoch {epoch} of {epochs}.")
            with torch.autocast(device.type, dtype=autocast_dtype or torch.float32, enabled=amp):
                out = model(x)
                logits = logits_fn(out)
                loss = loss_fn(out, y)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            if schedule_per_batch:
                schedule.step()
            value = float(loss.detach())
            if not math.isfinite(value):
                raise TrainingDivergedError(
                    f"Training diverged in epoch {epoch}: the loss became {value}. {diverged_hint}".strip()
                )
            total += value * len(y)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(y)
            if hooks.report and (step % hooks.every == 0 or step == steps_per_epoch):
                hooks.report(
                    stage="training", epoch=epoch - 1 + step / steps_per_epoch, epochs=epochs, loss=total / seen
                )
        if not schedule_per_batch:
            schedule.step()
        record = EpochRecord(
            epoch, total / max(seen, 1), correct / max(seen, 1), float(validate(model)), time.perf_counter() - start
        )
        history.records.append(record)
        if hooks.report:
            hooks.report(
                stage="training",
                epoch=epoch,
                epochs=epochs,
                loss=record.loss,
                train_accuracy=record.train_accuracy,
                **{val_key: record.val_accuracy},
            )
        if hooks.checkpoint:
            hooks.checkpoint(
                Checkpoint(
                    epoch,
                    {k: v.detach().clone() for k, v in model.state_dict().items()},
                    copy.deepcopy(optimizer.state_dict()),
                    copy.deepcopy(schedule.state_dict()),
                    scaler.state_dict(),
                    generator.get_state(),
                    TrainingHistory(list(history.records), val_key),
                )
            )
    return history
