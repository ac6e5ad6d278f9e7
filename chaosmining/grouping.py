"""Batched groups for sweeps and reproductions: many symbolic cells trained as a few ``symbolic-group`` runs.

A sweep or a reproduction first turns its uncached ``symbolic`` cells into group runs (:func:`plan_groups`),
submits them and waits (:func:`train_in_groups`); then it submits its cells as before, and each finds its
result in the cache. A group that fails leaves its cells to run alone (and report their own errors), so
batching can only save time, never lose a cell. Batching is on by default on CUDA and asked for on a CPU
(``--batched``; :func:`chaosmining.batched.batched_by_default`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from .batched import batched_by_default
from .cache import Cache
from .errors import JobCancelled
from .experiments.symbolic import MODEL_KIND, RESULT_KIND, EvalConfig, SymbolicConfig, _result_key
from .experiments.symbolic_group import (
    GROUP_KIND,
    MAX_GROUP,
    SymbolicGroup,
    batch_key,
    group_configs,
    symbolic_member_bytes,
)
from .runs import Executor, RunHandle, RunSpec
from .runs.spec import WORKER_BASE_BYTES
from .runtime import resolve_device

__all__ = ["plan_groups", "group_limits", "train_in_groups", "use_batching"]


def use_batching(batched: bool | None, device: str = "auto") -> bool:
    """``batched`` when given, else the default for ``device`` (on CUDA yes, on a CPU no)."""
    return batched_by_default(device) if batched is None else bool(batched)


def group_limits(executor: Executor | None, device: str = "auto") -> tuple[int, int | None]:
    """``(parts, max_bytes)`` for :func:`plan_groups` on ``executor``: one group per worker that can run at
    once, each within the memory the executor's budget leaves it (and half a GPU's memory on CUDA)."""
    if executor is None:
        return 1, None
    parts = max(1, executor.capacity)
    budget = (executor.memory_budget - executor.capacity * WORKER_BASE_BYTES) // parts
    dev = torch.device(device) if device != "auto" else resolve_device(device)
    if dev.type == "cuda" and torch.cuda.is_available():  # a Ray driver may see no GPU: the host budget then
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        budget = min(budget, torch.cuda.get_device_properties(index).total_memory // (2 * parts))
    return parts, max(1, int(budget))


def plan_groups(
    specs: Sequence[RunSpec], cache: Cache, *, parts: int = 1, max_bytes: int | None = None
) -> list[RunSpec]:
    """``symbolic-group`` runs for the ``symbolic`` specs worth batching.

    Only specs whose result and model are both missing from ``cache`` are grouped (a cached model needs no
    training); specs that cannot be batched, or whose group would have one member, are left out (they run
    as plain ``symbolic`` runs). Groups are split into at least ``parts`` pieces (the workers that can
    train at once) and so that each fits in ``max_bytes`` (:meth:`SymbolicGroup.estimated_bytes`).
    """
    todo: dict[tuple[str, str], list[tuple[SymbolicConfig, EvalConfig]]] = {}
    seen: set[str] = set()
    for spec in specs:
        if spec.kind != "symbolic" or spec.key in seen:
            continue
        seen.add(spec.key)
        c, e = spec.config, spec.eval
        key = batch_key(c)
        if key is None or cache.has(RESULT_KIND, _result_key(c, e)) or cache.has(MODEL_KIND, c.config_hash):
            continue
        todo.setdefault((spec.device, key), []).append((c, e))
    out = []
    for (device, _), members in todo.items():
        configs = list({c.config_hash: c for c, _ in members}.values())
        first = configs[0]
        per = symbolic_member_bytes(first) + first.data.samples * (first.data.n_features + 1) * 8
        max_size = MAX_GROUP if max_bytes is None else max(1, (max_bytes - first.estimated_bytes()) // per)
        for chunk in group_configs(configs, max_size=min(MAX_GROUP, max_size), parts=parts):
            if len(chunk) < 2:
                continue
            hashes = {c.config_hash for c in chunk}
            chosen = tuple(m for m in members if m[0].config_hash in hashes)
            out.append(RunSpec(GROUP_KIND, SymbolicGroup(members=chosen), None, device))
    return out


def train_in_groups(
    specs: Sequence[RunSpec],
    *,
    submit: Callable[[RunSpec], RunHandle],
    cache: Cache,
    executor: Executor | None = None,
    report: Callable[..., None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> set[str]:
    """Train the uncached, batchable ``symbolic`` cells among ``specs`` as group runs and wait for them.

    Returns the run keys of the cells the groups finished (their results are then cached, so a caller can
    tell them from cells that were cached before). A group that failed or was stopped elsewhere is not an
    error here: its cells run alone afterwards. Stop (``should_stop``) stops the groups and raises
    :class:`JobCancelled`.
    """
    parts, max_bytes = group_limits(executor, specs[0].device if specs else "auto")
    groups = plan_groups(specs, cache, parts=parts, max_bytes=max_bytes)
    if not groups:
        return set()
    member_keys = {k for g in groups for k in g.config.result_keys()}
    grouped = {s.key: s for s in specs if s.kind == "symbolic" and _result_key(s.config, s.eval) in member_keys}
    handles = [submit(g) for g in groups]
    members = sum(len(g.config.configs) for g in groups)
    stage = f"training {members} models in {len(groups)} batched groups"
    finished, shown = 0, None
    while finished < len(handles):
        if should_stop is not None and should_stop():
            for h in handles:
                if not h.done:
                    h.stop()
            raise JobCancelled(f"Stopped by the user while training in groups ({finished} of {len(handles)} done).")
        finished = sum(1 for h in handles if h.done)
        if report:
            # the group furthest behind stands for all (its members train in lockstep, one step per epoch)
            snaps = [h.snapshot() for h in handles if not h.done]
            progress = [(s.latest("epoch"), s.latest("epochs")) for s in snaps]
            progress = [(e, n) for e, n in progress if e is not None and n]
            event = {"stage": stage, "done": finished, "total": len(groups)}
            if progress:
                epoch, epochs = min(progress, key=lambda p: p[0] / p[1])
                event |= {"epoch": epoch, "epochs": epochs}
            if event != shown:
                report(**event)
                shown = event
        if finished < len(handles):
            next(h for h in handles if not h.done).wait(0.25)
    return {key for key, spec in grouped.items() if cache.has(RESULT_KIND, _result_key(spec.config, spec.eval))}
