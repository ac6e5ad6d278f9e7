"""Every public config rejects bad values with the standard message naming the parameter."""

from __future__ import annotations

import pytest

from chaosmining.data.symbolic import SymbolicDataConfig
from chaosmining.errors import ChaosMiningError
from chaosmining.experiments.symbolic import EvalConfig, SymbolicConfig
from chaosmining.models.mlp import MLPConfig
from chaosmining.runtime import resolve_device
from chaosmining.training import TrainConfig

BAD = [
    (SymbolicDataConfig, "formula", ["", "k", "99", None]),
    (SymbolicDataConfig, "noise_features", [-1, 2.5, "ten", True]),
    (SymbolicDataConfig, "samples", [0, -5, 1.5, None]),
    (SymbolicDataConfig, "label_noise", [-0.1, float("nan"), "x"]),
    (SymbolicDataConfig, "test_fraction", [0.0, 1.0, 2.0]),
    (SymbolicDataConfig, "feature_scale", [0.0, -1.0]),
    (MLPConfig, "width", [0, -3, 1.5]),
    (MLPConfig, "depth", [0, 100]),
    (MLPConfig, "dropout", [-0.1, 1.0]),
    (MLPConfig, "activation", ["softmax", 3]),
    (TrainConfig, "optimizer", ["lbfgs", None]),
    (TrainConfig, "lr", [0.0, -1e-3, float("inf")]),
    (TrainConfig, "epochs", [0, -1, 2.5]),
    (TrainConfig, "batch_size", [-1]),
    (TrainConfig, "snapshots", [0]),
    (SymbolicConfig, "seed", [-1, 2**40, "zero"]),
    (EvalConfig, "methods", [(), ("nope",)]),
    (EvalConfig, "samples", [-1]),
]


@pytest.mark.parametrize("cls,field,values", BAD, ids=[f"{c.__name__}.{f}" for c, f, _ in BAD])
def test_bad_values_name_the_parameter(cls, field, values):
    for v in values:
        with pytest.raises(ChaosMiningError) as exc:
            cls(**{field: v})
        msg = str(exc.value)
        assert f"'{field}'" in msg or (field == "methods" and "method" in msg), msg
        assert "Got" in msg or "Unknown" in msg or "at least one" in msg, msg


def test_configs_are_frozen_and_hash_stably():
    a = SymbolicConfig()
    with pytest.raises(AttributeError):
        a.seed = 3  # type: ignore[misc]
    assert a.config_hash == SymbolicConfig().config_hash
    assert a.config_hash != a.replace(seed=1).config_hash
    assert SymbolicConfig.from_dict(a.to_dict()) == a


def test_a_model_too_large_for_memory_is_refused_with_what_to_change():
    from chaosmining.errors import ResourceError

    with pytest.raises(ResourceError, match="Reduce 'width', 'depth' or 'samples'"):
        SymbolicConfig(data=SymbolicDataConfig(samples=2_000_000), model=MLPConfig(width=8192, depth=16))
    assert SymbolicConfig().estimated_bytes() < 100 * 2**20


def test_device_choice_is_validated():
    assert resolve_device("cpu").type == "cpu"
    with pytest.raises(ChaosMiningError, match="'device' parameter"):
        resolve_device("tpu")
