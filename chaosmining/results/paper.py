"""The paper's published numbers, as data: ``paper.csv`` beside this module.

Every row names where it comes from. ``document == "paper"`` rows are the cells of Tables 2, 3 and 4 of
Shi et al. (2024), https://arxiv.org/abs/2406.12150, copied from the text in
``../shared/reference/chaosmining-paper.txt`` (``text`` keeps each cell as printed; the one empty cell,
ViT-B/16's DeepLift IoU on RBFP, is absent). The text has no page markers, so ``page`` is empty; the
table number is the source. Figures 4 to 7 give no numbers in the text, so there are no rows for them
from the paper. The RFEwNA final precisions on formulas 11-15 (the quantity of Figure 7b) are the
original code's reference result, ``document == "original code"``.

Printed names are normalised to this package's registries: ``Vit_1_32`` is ViT-L/32 (``vit_l_32``),
SA/DL/IG/FA are ``saliency``/``deeplift``/``integrated_gradients``/``feature_ablation`` and a ``Pred``
cell (top-1 accuracy in percent) has ``method == ""``.
"""

from __future__ import annotations

import csv
import functools
from dataclasses import dataclass
from importlib import resources

from ..errors import ConfigError

__all__ = ["PaperValue", "paper_reference", "PAPER_TARGETS"]


@dataclass(frozen=True)
class PaperValue:
    """One published number: ``value`` (and ``std`` over the paper's 5 seeds when printed) of ``metric``."""

    document: str
    source: str
    page: str
    modality: str
    setting: str
    model: str
    architecture: str
    method: str
    label: str
    metric: str
    value: float
    std: float | None
    text: str


# reproduce targets -> the sources that hold their published numbers
PAPER_TARGETS: dict[str, tuple[str, ...]] = {
    "table2": ("Table 2",),
    "table3": ("Table 3",),
    "table4": ("Table 4",),
    "figure4": (),
    "figure5": (),
    "figure6": (),
    "figure7": ("RFEwNA reference result (final precision, formulas 11-15)",),
}


@functools.cache
def _all() -> tuple[PaperValue, ...]:
    text = resources.files(__package__).joinpath("paper.csv").read_text(encoding="utf-8")
    rows = []
    for r in csv.DictReader(text.splitlines()):
        rows.append(
            PaperValue(
                document=r["document"],
                source=r["source"],
                page=r["page"],
                modality=r["modality"],
                setting=r["setting"],
                model=r["model"],
                architecture=r["architecture"],
                method=r["method"],
                label=r["label"],
                metric=r["metric"],
                value=float(r["value"]),
                std=float(r["std"]) if r["std"] else None,
                text=r["text"],
            )
        )
    return tuple(rows)


def paper_reference(target: str | None = None) -> list[PaperValue]:
    """The published numbers of a ``reproduce`` target (``table2``, ..., ``figure7``), or all with ``None``.

    Examples
    --------
    >>> [v.value for v in paper_reference("table2") if v.model == "resnet18" and v.setting == "RBFP"][:2]
    [77.44, 0.678]
    """
    if target is None:
        return list(_all())
    if target not in PAPER_TARGETS:
        raise ConfigError(
            f"The 'target' parameter of paper_reference must be one of {list(PAPER_TARGETS)}. Got {target!r} instead."
        )
    sources = PAPER_TARGETS[target]
    return [v for v in _all() if v.source in sources]
