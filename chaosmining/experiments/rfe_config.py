"""Feature-selection configurations: the task (:class:`RFEDataConfig`) and the comparison (:class:`RFEConfig`)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..attribution import resolve_params
from ..config import ConfigBase
from ..data.formulas import get_formula
from ..models.mlp import MLPConfig
from ..registry import Registry
from ..selection import get_selector, selector_names
from ..training import TrainConfig
from ..validation import check_bool, check_choice, check_float, check_int, param_error
from .rfe_tasks import TASK_KINDS, TASK_TYPE_SPECS, TaskKind

__all__ = [
    "DEFAULT_SELECTORS",
    "UNKNOWN_TRUTH_TARGET",
    "RFEDataConfig",
    "StrategySpec",
    "STRATEGIES",
    "RFEConfig",
    "rfe_config_from_dict",
]

DEFAULT_SELECTORS = ("saliency", "deeplift", "integrated_gradients", "feature_ablation", "linear", "svm", "tree")
UNKNOWN_TRUTH_TARGET = 3  # the paper's Figure 6 keeps three features of Santander

_FILE_HASHES: dict[tuple[str, float, int], str] = {}


def _file_digest(path: str) -> str:
    p = Path(path).expanduser().resolve()
    st = p.stat()
    key = (str(p), st.st_mtime, st.st_size)
    if key not in _FILE_HASHES:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _FILE_HASHES[key] = h.hexdigest()
    return _FILE_HASHES[key]


_DATA_OWNER = "RFEDataConfig"


@dataclass(frozen=True, kw_only=True)
class RFEDataConfig(ConfigBase):
    """Which task to select features for.

    Parameters
    ----------
    task : ``"formula:ID"``, ``"tabular:NAME"`` or ``"csv:PATH"`` (see :data:`TASK_KINDS`).
    noise_features : noise columns added (formula: 150, the paper's protocol; tables: up to 369 columns).
    samples : rows generated (formula 10,000; Santander-like 20,000 before undersampling), or drawn from a
        fixed data set (0 = all rows).
    label_noise : standard deviation of the Gaussian noise on the training target (formula only).
    label : label column of a CSV (default: TARGET, target, label, class or y).
    undersample : undersample the majority class to the minority's size (tables and CSV; the paper does).
    val_fraction : share of the training split held out for selection (attributions are computed there).
    test_fraction : share of all rows held out for the reported test error.
    """

    task: str = "formula:11"
    noise_features: int | None = None
    samples: int | None = None
    label_noise: float = 0.01
    label: str | None = None
    undersample: bool = True
    val_fraction: float = 0.2
    test_fraction: float = 0.2

    def __post_init__(self) -> None:
        if not isinstance(self.task, str) or ":" not in self.task:
            raise param_error("task", _DATA_OWNER, f"'KIND:ARG' with KIND one of {TASK_KINDS.names()}", self.task)
        kind, arg = (s.strip() for s in self.task.split(":", 1))
        spec = TASK_KINDS.get(kind)
        if not arg:
            raise param_error("task", _DATA_OWNER, f"'{kind}:ARG' ({spec.help})", self.task)
        object.__setattr__(self, "task", f"{kind}:{arg}")
        noise = spec.default_noise(arg) if self.noise_features is None else self.noise_features
        samples = spec.default_samples(arg) if self.samples is None else self.samples
        object.__setattr__(
            self, "noise_features", check_int(noise, "noise_features", owner=_DATA_OWNER, low=0, high=100_000)
        )
        object.__setattr__(self, "samples", check_int(samples, "samples", owner=_DATA_OWNER, low=0, high=10_000_000))
        object.__setattr__(
            self, "label_noise", check_float(self.label_noise, "label_noise", owner=_DATA_OWNER, low=0.0, high=100.0)
        )
        if self.label is not None and not isinstance(self.label, str):
            raise param_error("label", _DATA_OWNER, "a column name or None", self.label)
        check_bool(self.undersample, "undersample", owner=_DATA_OWNER)
        for name in ("val_fraction", "test_fraction"):
            value = check_float(getattr(self, name), name, owner=_DATA_OWNER, low=0.0, high=0.9, low_open=True)
            object.__setattr__(self, name, value)
        spec.validate(self)

    @property
    def kind(self) -> str:
        return self.task.split(":", 1)[0]

    @property
    def arg(self) -> str:
        return self.task.split(":", 1)[1]

    @property
    def kind_spec(self) -> TaskKind:
        return TASK_KINDS.get(self.kind)

    @property
    def task_type(self) -> str:
        return self.kind_spec.task_type

    @property
    def n_features(self) -> int | None:
        """The number of feature columns when known without reading data (``None`` for a CSV)."""
        return self.kind_spec.n_features(self)

    def hash_payload(self) -> dict[str, Any]:
        d = super().hash_payload()
        if self.kind == "formula":
            d["task"] = f"formula:{get_formula(self.arg).key}"
        elif self.kind == "csv":  # the file's content, not its name, identifies the data
            d["task"] = f"csv-sha256:{_file_digest(self.arg)}"
        return d


@dataclass(frozen=True)
class StrategySpec:
    name: str
    display_name: str
    description: str


STRATEGIES: Registry[StrategySpec] = Registry("strategy")
for _s in (
    StrategySpec(
        "uni",
        "Uni-module",
        "Each selector's own model predicts: the network for RFEwNA, the linear model / SVM / tree for classic RFE "
        "(paper Figures 6a-b and 7).",
    ),
    StrategySpec(
        "bi",
        "Bi-module",
        "Classic RFE selects, and a network trained on the selected features predicts, so the feature sets are "
        "compared with the same predictor (paper Figures 6c-d).",
    ),
):
    STRATEGIES.register(_s.name, _s)

_OWNER = "RFEConfig"


@dataclass(frozen=True, kw_only=True)
class RFEConfig(ConfigBase):
    """One feature-selection comparison.

    ``target=0`` keeps as many features as there are true ones (3 when the truth is unknown).
    ``model`` and ``train`` default to the task type's protocol (see :data:`TASK_TYPE_SPECS`); the
    training loss always follows the task type. ``method_params`` holds ``(method, ((name, value),
    ...))`` pairs for the attribution selectors.
    """

    data: RFEDataConfig = field(default_factory=RFEDataConfig)
    selectors: tuple[str, ...] = DEFAULT_SELECTORS
    drop_rate: float = 0.5
    target: int = 0
    strategy: str = "uni"
    model: MLPConfig | None = None
    train: TrainConfig | None = None
    method_params: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = ()
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.selectors, str) or not self.selectors:
            raise param_error("selectors", _OWNER, "a non-empty list of selector names", self.selectors)
        for s in self.selectors:
            get_selector(s)
        order = {n: i for i, n in enumerate(selector_names())}
        object.__setattr__(self, "selectors", tuple(sorted(set(self.selectors), key=order.__getitem__)))
        object.__setattr__(
            self,
            "drop_rate",
            check_float(self.drop_rate, "drop_rate", owner=_OWNER, low=0.0, high=1.0, low_open=True, high_open=True),
        )
        n = self.data.n_features
        target = check_int(
            self.target,
            "target",
            owner=_OWNER,
            low=0,
            high=n,
            hint="" if n is None else f"The task has {n} features (0 keeps as many as there are true features).",
        )
        object.__setattr__(self, "target", target)
        check_choice(self.strategy, "strategy", owner=_OWNER, choices=STRATEGIES.names())
        spec = TASK_TYPE_SPECS.get(self.data.task_type)
        object.__setattr__(self, "model", self.model or spec.model)
        train = self.train or spec.train
        object.__setattr__(self, "train", replace(train, loss=spec.train.loss))
        resolved = tuple(
            (m, tuple(sorted(resolve_params(m, dict(p)).items())))
            for m, p in self.method_params
            if m in {get_selector(s).method for s in self.selectors}
        )
        object.__setattr__(self, "method_params", tuple(sorted(resolved)))
        object.__setattr__(self, "seed", check_int(self.seed, "seed", owner=_OWNER, low=0, high=2**31 - 1))

    @property
    def task_type(self) -> str:
        return self.data.task_type

    def params_for(self, method: str) -> dict[str, Any]:
        return resolve_params(method, dict(dict(self.method_params).get(method, ())))

    def resolved_target(self, n_features: int, true_features: Sequence[int] | None) -> int:
        """The number of features to stop at for data with ``n_features`` columns."""
        if self.target == 0:
            wanted = len(true_features) if true_features else UNKNOWN_TRUTH_TARGET
            return max(1, min(wanted, n_features))
        if self.target > n_features:
            raise param_error(
                "target",
                _OWNER,
                f"an int in [0, {n_features}]",
                self.target,
                f"The task has {n_features} features after preprocessing.",
            )
        return self.target


def rfe_config_from_dict(d: Mapping[str, Any]) -> RFEConfig:
    """Inverse of ``RFEConfig.to_dict()`` (used by ``rerun`` and the workers)."""
    return RFEConfig(
        data=RFEDataConfig(**d.get("data", {})),
        selectors=tuple(d.get("selectors", DEFAULT_SELECTORS)),
        drop_rate=d.get("drop_rate", 0.5),
        target=d.get("target", 0),
        strategy=d.get("strategy", "uni"),
        model=MLPConfig(**d["model"]) if d.get("model") else None,
        train=TrainConfig(**d["train"]) if d.get("train") else None,
        method_params=tuple((m, tuple(tuple(p) for p in ps)) for m, ps in d.get("method_params", ())),
        seed=d.get("seed", 0),
    )
