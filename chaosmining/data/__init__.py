"""Data generators and loaders. Each documents where the signal lives."""

from .formulas import FORMULAS, PAPER_FORMULAS, Formula, get_formula, parse_formula
from .symbolic import SymbolicDataConfig, SymbolicDataset, ground_truth, make_symbolic_data

__all__ = [
    "FORMULAS",
    "PAPER_FORMULAS",
    "Formula",
    "get_formula",
    "parse_formula",
    "SymbolicDataConfig",
    "SymbolicDataset",
    "ground_truth",
    "make_symbolic_data",
]
