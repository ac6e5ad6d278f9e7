"""The trainer's contract: progress events, a stop between batches, resume from a checkpoint, the same
result on 1 and 2 threads, a typed history; on a tiny linearly separable problem."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from chaosmining.errors import JobCancelled, TrainingDivergedError
from chaosmining.trainer import TrainerHooks, TrainingHistory, train_classifier

N, D, BATCH = 64, 4, 16


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N, D, generator=g)
    return x, (x[:, 0] > 0).long()


def _train(epochs=4, hooks=None, resume=None, lr=0.5, model=None):
    x, y = _data()
    torch.manual_seed(0)
    model = model or nn.Linear(D, 2)
    opt = torch.optim.SGD(model.parameters(), lr=lr)

    def batches(epoch, gen):
        order = torch.randperm(N, generator=gen)
        for i in range(0, N, BATCH):
            idx = order[i : i + BATCH]
            yield x[idx], y[idx]

    def validate(m):
        with torch.no_grad():
            return float((m(x).argmax(1) == y).float().mean())

    history = train_classifier(
        model,
        epochs=epochs,
        batches=batches,
        steps_per_epoch=N // BATCH,
        loss_fn=nn.functional.cross_entropy,
        optimizer=opt,
        schedule=torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.9),
        schedule_per_batch=False,
        validate=validate,
        generator=torch.Generator().manual_seed(3),
        device=torch.device("cpu"),
        hooks=hooks,
        resume=resume,
    )
    return model, history


def test_it_learns_and_returns_a_typed_history():
    _, history = _train()
    assert isinstance(history, TrainingHistory) and [r.epoch for r in history.records] == [1, 2, 3, 4]
    assert history.records[-1].val_accuracy > 0.8, history.records
    d = history.as_dict()
    assert set(d) == {"epoch", "loss", "train_accuracy", "val_accuracy", "seconds"} and len(d["loss"]) == 4


def test_progress_events_per_batch_and_per_epoch():
    events = []
    _train(epochs=2, hooks=TrainerHooks(report=lambda **e: events.append(e), every=2))
    fractional = [e["epoch"] for e in events if "val_accuracy" not in e]
    assert fractional == [0.5, 1.0, 1.5, 2.0]
    per_epoch = [e for e in events if "val_accuracy" in e]
    assert [e["epoch"] for e in per_epoch] == [1, 2] and all(e["stage"] == "training" for e in events)


def test_stop_raises_between_batches():
    calls = []

    def stop():
        calls.append(1)
        return len(calls) > 5

    with pytest.raises(JobCancelled, match="epoch 2 of 4"):
        _train(hooks=TrainerHooks(should_stop=stop))


def test_resume_from_a_checkpoint_gives_the_uninterrupted_result():
    full, _ = _train(epochs=4)
    saved = []
    _train(epochs=2, hooks=TrainerHooks(checkpoint=saved.append))
    resumed, history = _train(epochs=4, resume=saved[-1])
    assert saved[-1].epoch == 2 and [r.epoch for r in history.records] == [1, 2, 3, 4]
    for a, b in zip(full.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b)


def test_same_result_on_one_and_two_threads():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one, _ = _train()
        torch.set_num_threads(2)
        two, _ = _train()
    finally:
        torch.set_num_threads(before)
    for a, b in zip(one.parameters(), two.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def test_a_diverging_loss_is_named():
    model = nn.Linear(D, 2)
    with torch.no_grad():
        model.weight.fill_(float("inf"))
    with pytest.raises(TrainingDivergedError, match="diverged in epoch 1"):
        _train(model=model)
