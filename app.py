"""ChaosMining Explorer: the entry point (``make run``, or ``streamlit run app.py``).

It names the pages for the sidebar (the home page would otherwise be listed as "app", after this file)
and keeps the url paths the multipage layout gives them (``/Symbolic_functions``, ``/Vision``, ...).
"""

import pandas as pd
import streamlit as st

from chaosmining.errors import PluginError
from chaosmining.plugins import load_plugins
from ui.common import cache_summary, device_badge, get_cache, jobs, setup_page

try:  # $CHAOSMINING_PLUGINS and installed entry points: code chosen by whoever started the server
    load_plugins()
except PluginError as exc:
    st.error(f"A plugin could not be loaded: {exc}")

PAGES = [  # (file, sidebar title, icon, the home page's words on it); the url path is the file name without its number
    (
        "pages/1_Symbolic_functions.py",
        "Symbolic functions",
        ":material/functions:",
        (
            "The paper's 15 formulas or any formula you type, with noise features and label noise, fitted by an "
            "MLP. Saliency, DeepLift, Integrated Gradients and Feature Ablation are scored by **FPrec** (are the "
            "top-k features the relevant ones?) and **UScore** (do they match the analytic derivative, ablation "
            "or path integral from sympy?). Watch FPrec converge while the model trains, and sweep one factor at "
            "a time as in the paper's Figure 4."
        ),
    ),
    (
        "pages/2_Vision.py",
        "Vision",
        ":material/image:",
        (
            "A small labelled foreground (procedural shapes, scikit-learn digits, or your CIFAR-10 / Fashion-MNIST "
            "copy) pasted on a 224-px canvas of random pixels or natural structure, at a fixed or a random place. "
            "The paper's eight torchvision architectures and a compact CPU CNN; a gallery of saliency overlays with "
            "the true box (yellow) and the box each method retrieves (red), **IoU** beside the random-map floor and "
            "the perfect-map ceiling, the pointing game, and a what-if over the four noise conditions (Tables 2, 3)."
        ),
    ),
    (
        "pages/3_Audio.py",
        "Audio",
        ":material/graphic_eq:",
        (
            "Ten channels of one second at 16 kHz: a spoken command word (espeak-ng, formant pseudo-words or your "
            "Speech Commands copy) in one channel, Gaussian noise or a rainforest soundscape in the others. RNN, LSTM, "
            "TCN and Transformer classifiers; each method's **channel FPrec** (the speech channel's share of "
            "|attribution|, chance 1/10), its top-1 hit rate and its attribution over time, with waveforms, "
            "spectrograms and an audio player per channel (the paper's Table 4)."
        ),
    ),
    (
        "pages/4_Feature_selection.py",
        "Feature selection",
        ":material/filter_alt:",
        (
            "Recursive feature elimination driven by an MLP and an attribution method (**RFEwNA**, the paper's "
            "Algorithm 1) against scikit-learn's RFE with a linear model, a linear SVM and a decision tree, on a "
            "symbolic formula with 150 noise features (Figure 7), an embedded table with known informative columns "
            "(Santander-like or breast cancer + noise) or your own CSV (Figure 6). Watch the error and the precision "
            "of the kept features fill in round by round; uni- and bi-module strategies."
        ),
    ),
    (
        "pages/5_Evaluate_the_evaluators.py",
        "Evaluate the evaluators",
        ":material/rule:",
        (
            "Do the tests that rank attribution methods measure what they claim? Remove-and-retrain (**ROAR**, KAR) "
            "with random and ground-truth baselines, opening on Hooker et al.'s 16-d example that shows why removal "
            "without retraining misleads; **ROAD**'s noisy linear imputation; the **blur bias** of removal benchmarks "
            "(with mask blurriness and a mask-only probe); Adebayo et al.'s **sanity checks** (parameter and label "
            "randomisation, random logit); deletion/insertion AUC and **Sensitivity-n**."
        ),
    ),
    (
        "pages/6_Results.py",
        "Results",
        ":material/leaderboard:",
        (
            "Every recorded run in one place: a **leaderboard** of the methods per modality, noise condition, model "
            "and metric (mean and spread over seeds, ranks) beside the paper's published numbers, two runs side by "
            "side, and whether FPrec, IoU, channel FPrec, ROAR, ROAD and the sanity checks **agree** on the ranking. "
            "Fill it from any page, `results rebuild` or `reproduce`."
        ),
    ),
]


def home() -> None:
    setup_page("Home", ":material/home:")
    st.title("ChaosMining Explorer")
    st.markdown(
        """
    **Do post-hoc attribution methods find the few predictive features hidden among many irrelevant ones?**

    ChaosMining Explorer generates data whose ground truth is known by construction - a handful of
    relevant features drowned in noise features and label noise - trains a model on it, explains the model
    with [Captum](https://captum.ai)'s attribution methods, and scores each explanation against the truth
    with the metrics of the ChaosMining benchmark
    ([Shi et al., 2024](https://arxiv.org/abs/2406.12150)). Everything runs on this machine: the default
    data are generated, models train on the CPU (or a GPU when there is one) and are cached.
    """
    )

    st.subheader("Modalities and pages")
    for file, title, icon, words in PAGES:
        st.page_link(file, label=title, icon=icon)
        st.markdown(words)

    st.subheader("This machine")
    st.write(device_badge())
    stats = jobs().stats()
    st.write(
        f"Runs: {stats['running']} running and {stats['queued']} waiting on the {stats['backend']} executor "
        f"({stats['capacity']} at once, memory budget {stats['memory_budget_gb']:.1f} GB, "
        f"{stats['memory_reserved_gb']:.1f} GB reserved by running runs)."
    )
    running = [j for j in jobs().active() if j.status == "running"]
    if running:
        st.caption("Running: " + "; ".join(j.description for j in running))

    cache = get_cache()
    summary = cache_summary(str(cache.root))
    st.write(f"Cache folder: `{cache.root}`")
    if summary:
        st.table(  # a static table: the interactive grid's script is the heaviest thing on this page to load
            pd.DataFrame(
                [{"kind": k, "entries": v["entries"], "MiB": round(v["bytes"] / 2**20, 2)} for k, v in summary.items()]
            ).set_index("kind")
        )
    else:
        st.caption("The cache is empty: the first run of each configuration trains it, later visits load it at once.")

    st.subheader("Metrics in one line each")
    st.markdown(
        """
    - **FPrec**: for each sample, the share of the top-k attributed features that are relevant (k = number of relevant features); a random ranking scores k/d.
    - **UScore**: mean of 1 - |a - b| / (|a| + |b|), here between the L1-normalised attribution and the analytic ground truth on the relevant features; also between predictions and noise-free targets.
    - **Consistency**: how often a sample's top-k agrees with the data set's top-k (Figure 5).
    - **Convergence**: the mean FPrec over training (area under the FPrec curve, Figure 5).
    """
    )


def url_path(file: str) -> str:
    return file.split("/")[-1].removesuffix(".py").split("_", 1)[1]


st.navigation(
    [st.Page(home, title="Home", icon=":material/home:", default=True)]
    + [st.Page(file, title=title, icon=icon, url_path=url_path(file)) for file, title, icon, _ in PAGES]
).run()
