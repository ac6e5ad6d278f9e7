"""Evaluating the evaluators: ROAR/KAR, ROAD, the blur bias, sanity checks and faithfulness curves.

Every evaluation follows one pattern: a frozen configuration (a :class:`TaskConfig` plus the estimators
to compare), a ``run_*`` function that computes or loads the cached result, and a typed result with
``summary()`` (the CLI's JSON), ``bundle()`` (re-runnable export), ``table()`` and ``reading()`` (a
plain-language reading). Tasks (:data:`TASKS`) plug in behind a small registry: ``toy16``,
``formula:ID``, ``vision``, ``audio`` and ``vision-quick`` (the Vision page's quick preset and its cached model).
"""

from .blur import boundary_ratio, connected_components, coverage, mask_probe, mask_statistics
from .blur_bias import BlurConfig, BlurResult, run_blur
from .common import Curve, MethodsConfig, auc
from .estimators import CONTROLS, estimator_label, estimator_names
from .faithfulness import FaithfulnessConfig, FaithfulnessResult, run_faithfulness, sensitivity_n
from .imputation import IMPUTERS, fit_imputer, impute_image_linear, impute_time_linear
from .removal import AGGREGATIONS, POSTPROCESS, apply_mask, postprocess, rank_units, removal_mask, unit_scores
from .road import ORDERS, RoadConfig, RoadResult, run_road
from .roar import RoarConfig, RoarResult, default_fractions, run_roar
from .sanity import SANITY_TESTS, SanityConfig, SanityResult, parametrised_layers, randomised, run_sanity
from .similarity import SIMILARITIES, similarity, ssim
from .tasks import TASKS, LoadedTask, TaskConfig, load_task, task_names
from .toy16 import DISTRACTORS, least_squares, make_toy16

__all__ = [
    "AGGREGATIONS",
    "BlurConfig",
    "BlurResult",
    "CONTROLS",
    "Curve",
    "DISTRACTORS",
    "FaithfulnessConfig",
    "FaithfulnessResult",
    "IMPUTERS",
    "LoadedTask",
    "MethodsConfig",
    "ORDERS",
    "POSTPROCESS",
    "RoadConfig",
    "RoadResult",
    "RoarConfig",
    "RoarResult",
    "SANITY_TESTS",
    "SIMILARITIES",
    "SanityConfig",
    "SanityResult",
    "TASKS",
    "TaskConfig",
    "apply_mask",
    "auc",
    "boundary_ratio",
    "connected_components",
    "coverage",
    "default_fractions",
    "estimator_label",
    "estimator_names",
    "fit_imputer",
    "impute_image_linear",
    "impute_time_linear",
    "least_squares",
    "load_task",
    "make_toy16",
    "mask_probe",
    "mask_statistics",
    "parametrised_layers",
    "postprocess",
    "randomised",
    "rank_units",
    "removal_mask",
    "run_blur",
    "run_faithfulness",
    "run_road",
    "run_roar",
    "run_sanity",
    "sensitivity_n",
    "similarity",
    "ssim",
    "task_names",
    "unit_scores",
]
