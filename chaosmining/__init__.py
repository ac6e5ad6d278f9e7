"""ChaosMining Explorer: do post-hoc attribution methods find the few predictive features hidden among
many irrelevant ones? Data with known ground truth, Captum attributions, and the metrics of the
ChaosMining benchmark (Shi et al., 2024, https://arxiv.org/abs/2406.12150).

The library never imports Streamlit; the app (``app.py``, ``pages/``) and the CLI
(``python -m chaosmining``) call the same functions.
"""

import os as _os

# Results must not depend on how many threads computed them: the sweep and RFE pools lend idle cores
# to their last tasks (chaosmining.runtime.lend_cores_from, used by the run layer's local workers) and CHAOSMINING_THREADS may change the count.
# MKL's strict conditional numerical reproducibility makes its matrix products give the same bits for
# any thread count (measured: a training with 1 and 2 threads differs by 2e-7 without it, 0 with it;
# no cost on one thread). MKL reads the setting at its first call, so it is set at import; a user's
# own MKL_CBWR is kept.
_os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

__version__ = "0.1.0"

__all__ = ["__version__", "register_method"]


def __getattr__(name: str):  # noqa: ANN202 - lazy, so that ``import chaosmining`` stays light (no torch)
    if name == "register_method":
        from .plugins import register_method

        return register_method
    raise AttributeError(f"module 'chaosmining' has no attribute {name!r}")
