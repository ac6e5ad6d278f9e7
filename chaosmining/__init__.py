"""ChaosMining Explorer: do post-hoc attribution methods find the few predictive features hidden among
many irrelevant ones? Data with known ground truth, Captum attributions, and the metrics of the
ChaosMining benchmark (Shi et al., 2024, https://arxiv.org/abs/2406.12150).

The library never imports Streamlit; the app (``app.py``, ``pages/``) and the CLI
(``python -m chaosmining``) call the same functions.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
