"""Two sessions asking what a shared model can run, at the same moment (the issue's IndexError)."""

from __future__ import annotations

import threading

import torch

from chaosmining.attribution import trace_model
from chaosmining.models.vision import build_model


def test_concurrent_traces_of_one_shared_model_do_not_see_each_others_hooks():
    model = build_model("compact_cnn", 10, 64).eval()
    example = torch.zeros(1, 3, 64, 64)
    alone = trace_model(model, example)
    errors: list[BaseException] = []
    traces = []

    def probe() -> None:
        try:
            for _ in range(5):
                traces.append(trace_model(model, example))
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=probe) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert all(t == alone for t in traces)
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())  # nothing left behind
