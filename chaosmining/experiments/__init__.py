"""End-to-end experiments, one module per task; the CLI and the app call these."""

from .symbolic import DEFAULT_METHODS, EvalConfig, SymbolicConfig, SymbolicResult, run_symbolic

__all__ = ["DEFAULT_METHODS", "EvalConfig", "SymbolicConfig", "SymbolicResult", "run_symbolic"]
