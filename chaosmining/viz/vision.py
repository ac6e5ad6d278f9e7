"""Figures and image overlays of the vision modality.

Overlays are plain RGB arrays (the app shows them with ``st.image``, exports write them as PNG); the
charts are Plotly figures. Boxes follow the paper's Figure 9: the true box yellow, the box the protocol
retrieves from a saliency map red.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go
from PIL import Image, ImageDraw
from plotly.subplots import make_subplots

from .common import FLOOR_COLOR, PRED_COLOR, TRUE_COLOR, method_color, method_label, reference_line
from .common import layout as _layout

if TYPE_CHECKING:  # pragma: no cover
    from ..experiments.vision import VisionResult

__all__ = [
    "heat_colors",
    "overlay",
    "png_bytes",
    "gallery_overlays",
    "gallery_figure",
    "detail_figure",
    "iou_bars",
    "box_free_bars",
    "iou_distribution",
    "training_curve",
    "confusion_figure",
    "conditions_figure",
    "vision_figures",
]

# Inferno-like colour ramp (dark -> purple -> orange -> pale yellow), interpolated linearly.
_RAMP_STOPS = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
_RAMP_RGB = np.array([[0, 0, 4], [66, 10, 104], [147, 38, 103], [221, 81, 58], [252, 255, 164]], dtype=np.float32)
_DISPLAY = 224


def heat_colors(values: np.ndarray) -> np.ndarray:
    """Map values in [0, 1] (any shape) to RGB floats (shape + (3,)) on an inferno-like ramp."""
    v = np.clip(np.asarray(values, dtype=np.float32), 0.0, 1.0)
    return np.stack([np.interp(v, _RAMP_STOPS, _RAMP_RGB[:, c]) for c in range(3)], axis=-1)


def _hex(color: str) -> tuple[int, int, int]:
    h = color.lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


def overlay(
    image: np.ndarray,
    heat: np.ndarray | None = None,
    opacity: float = 0.6,
    true_box: Sequence[int] | None = None,
    pred_box: Sequence[int] | None = None,
) -> np.ndarray:
    """``image`` (``(H, W, 3)`` uint8) with a saliency ``heat`` map in [0, 1] blended over it and the boxes.

    The heat is blended with a per-pixel weight ``opacity * heat``, so unimportant pixels stay visible.
    Boxes are ``(top, left, height, width)``; the true one is drawn yellow just outside the foreground,
    the predicted one red on its corner coordinates. Small canvases are enlarged (nearest neighbour) to
    at least 224 px so lines stay crisp. Returns uint8 ``(H', W', 3)``.
    """
    img = np.asarray(image, dtype=np.float32)
    if heat is not None:
        a = np.clip(opacity, 0.0, 1.0) * np.clip(np.asarray(heat, dtype=np.float32), 0.0, 1.0)[..., None]
        img = img * (1.0 - a) + heat_colors(heat) * a
    out = Image.fromarray(np.clip(np.rint(img), 0, 255).astype(np.uint8))
    scale = max(1, -(-_DISPLAY // out.width))
    if scale > 1:
        out = out.resize((out.width * scale, out.height * scale), Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(out)
    width = max(2, out.width // 112)
    if true_box is not None:
        t, left, h, w = (int(v) * scale for v in true_box)
        draw.rectangle(
            (left - width, t - width, left + w + width - 1, t + h + width - 1), outline=_hex(TRUE_COLOR), width=width
        )
    if pred_box is not None:
        t, left, h, w = (int(v) * scale for v in pred_box)
        draw.rectangle((left, t, left + w, t + h), outline=_hex(PRED_COLOR), width=width)
    return np.asarray(out)


def png_bytes(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _data_uri(image: np.ndarray) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(image)).decode()


def gallery_overlays(
    result: VisionResult, images: np.ndarray, method: str | None, opacity: float = 0.6
) -> list[np.ndarray]:
    """One overlay per gallery image: ``method``'s smoothed map, the true and the predicted box.

    ``method=None`` shows the images with the true box only.
    """
    out = []
    for j, image in enumerate(images):
        heat = pred = None
        if method is not None and f"map_{method}" in result.arrays:
            heat = result.gallery_map(method, j)
            pred = result.arrays[f"box_{method}"][j]
        out.append(overlay(image, heat, opacity, result.arrays["true_boxes"][j], pred))
    return out


def _caption(result: VisionResult, j: int, method: str | None) -> str:
    a = result.arrays
    names = result.class_names
    text = f"#{j} true {names[int(a['labels'][j])]}, predicted {names[int(a['preds'][j])]}"
    if method is not None and f"iou_{method}" in a:
        text += f", IoU {float(a[f'iou_{method}'][j]):.2f}"
    return text


def _image_grid(panels: Sequence[np.ndarray], titles: Sequence[str], cols: int, title: str) -> go.Figure:
    rows = max(1, -(-len(panels) // cols))
    fig = make_subplots(
        rows=rows, cols=cols, subplot_titles=list(titles), horizontal_spacing=0.01, vertical_spacing=0.06
    )
    for i, panel in enumerate(panels):
        fig.add_trace(go.Image(source=_data_uri(panel), name=titles[i]), row=i // cols + 1, col=i % cols + 1)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_annotations(font_size=11)
    return _layout(fig, title, height=max(300, 260 * rows), margin=dict(l=10, r=10, t=80, b=10))


def gallery_figure(
    result: VisionResult, images: np.ndarray, method: str, opacity: float = 0.6, cols: int = 4
) -> go.Figure:
    """The gallery as one figure (for exports): overlays of ``method`` with both boxes and captions."""
    panels = gallery_overlays(result, images, method, opacity)
    titles = [_caption(result, j, method) for j in range(len(panels))]
    return _image_grid(
        panels,
        titles,
        cols,
        f"{method_label(method)}: saliency, true box (yellow) and retrieved box (red) - {result.condition}",
    )


def detail_figure(result: VisionResult, images: np.ndarray, j: int, opacity: float = 0.6) -> go.Figure:
    """One gallery image with every method's map and boxes side by side (the paper's Figure 9)."""
    methods = [m for m in result.scores if f"map_{m}" in result.arrays]
    panels = [overlay(images[j], None, 0.0, result.arrays["true_boxes"][j])]
    titles = ["image and true box"]
    for m in methods:
        panels.append(
            overlay(
                images[j],
                result.gallery_map(m, j),
                opacity,
                result.arrays["true_boxes"][j],
                result.arrays[f"box_{m}"][j],
            )
        )
        titles.append(f"{method_label(m)}: IoU {float(result.arrays[f'iou_{m}'][j]):.2f}")
    return _image_grid(panels, titles, min(len(panels), 5), _caption(result, j, None))


def iou_bars(result: VisionResult) -> go.Figure:
    """Mean IoU per method (error bars: standard deviation over images) with the floor and ceiling."""
    methods = list(result.scores)
    vals = [result.scores[m].iou for m in methods]
    fig = go.Figure(
        go.Bar(
            x=[method_label(m) for m in methods],
            y=vals,
            error_y=dict(type="data", array=[result.scores[m].iou_std for m in methods], visible=True),
            marker_color=[method_color(m) for m in methods],
            text=[f"{v:.3f}" for v in vals],
            textposition="inside",
            insidetextanchor="start",
            name="IoU",
        )
    )
    reference_line(fig, result.random_iou, f"random map {result.random_iou:.3f}")
    reference_line(fig, result.perfect_iou, f"perfect map {result.perfect_iou:.3f}", dash="dot", color="#000")
    return _layout(
        fig,
        f"IoU of the retrieved box per method ({result.condition}, accuracy {result.accuracy:.1%})",
        yaxis=dict(range=[0, 1.1], title="IoU (mean, std over images)"),
    )


def box_free_bars(result: VisionResult) -> go.Figure:
    """Pointing game and attribution mass inside the box per method, beside their chance level."""
    methods = list(result.scores)
    fig = go.Figure()
    for key, label, pattern in (("pointing", "pointing game", ""), ("mass", "mass inside box", "/")):
        vals = [getattr(result.scores[m], key) for m in methods]
        fig.add_trace(
            go.Bar(
                x=[method_label(m) for m in methods],
                y=vals,
                name=label,
                marker_color=[method_color(m) for m in methods],
                marker_pattern_shape=pattern,
                text=[f"{v:.2f}" for v in vals],
                textposition="outside",
            )
        )
    reference_line(fig, result.pointing_chance, f"chance {result.pointing_chance:.3f}")
    return _layout(
        fig,
        "Pointing game (solid) and mass inside the box (hatched)",
        barmode="group",
        yaxis=dict(range=[0, 1.1], title="share"),
    )


def iou_distribution(result: VisionResult) -> go.Figure:
    """Per-image IoU of each method, with the random-map floor and the perfect-map ceiling."""
    fig = go.Figure()
    for m in result.scores:
        fig.add_trace(
            go.Violin(
                y=result.arrays[f"iou_{m}"],
                name=method_label(m),
                line_color=method_color(m),
                box_visible=True,
                meanline_visible=True,
                points=False,
            )
        )
    fig.add_trace(
        go.Violin(
            y=result.arrays["floor_iou"], name="random map", line_color=FLOOR_COLOR, box_visible=True, points=False
        )
    )
    fig.add_trace(
        go.Violin(y=result.arrays["ceiling_iou"], name="perfect map", line_color="#000", box_visible=True, points=False)
    )
    return _layout(
        fig,
        f"IoU per image ({result.eval_images} validation images)",
        yaxis=dict(range=[-0.02, 1.02], title="IoU"),
        showlegend=False,
    )


def training_curve(history: Mapping[str, Sequence[float]], title: str = "Training") -> go.Figure:
    """Training loss and validation accuracy per epoch."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    epochs = list(history.get("epoch", []))
    fig.add_trace(go.Scatter(x=epochs, y=list(history.get("loss", [])), name="training loss", line_color="#333"))
    fig.add_trace(
        go.Scatter(x=epochs, y=list(history.get("val_accuracy", [])), name="validation accuracy", line_color="#2ca02c"),
        secondary_y=True,
    )
    if history.get("train_accuracy"):
        fig.add_trace(
            go.Scatter(
                x=epochs,
                y=list(history["train_accuracy"]),
                name="training accuracy",
                line=dict(color="#2ca02c", dash="dot"),
            ),
            secondary_y=True,
        )
    fig.update_yaxes(title_text="cross-entropy", secondary_y=False)
    fig.update_yaxes(title_text="accuracy", range=[0, 1], secondary_y=True)
    return _layout(fig, title, xaxis=dict(title="epoch"))


def confusion_figure(result: VisionResult) -> go.Figure:
    """Confusion matrix of the validation split (rows: true class, columns: predicted)."""
    cm = np.asarray(result.arrays["confusion"])
    names = list(result.class_names)
    fig = go.Figure(go.Heatmap(z=cm, x=names, y=names, colorscale="Blues", colorbar=dict(title="images")))
    fig.update_yaxes(autorange="reversed", title="true")
    fig.update_xaxes(title="predicted")
    return _layout(fig, f"Confusion matrix (accuracy {result.accuracy:.1%})", height=420)


def conditions_figure(results: Mapping[str, VisionResult]) -> go.Figure:
    """The what-if: accuracy and IoU per method under each noise condition (Tables 2 and 3)."""
    codes = list(results)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("accuracy", "IoU per method"), column_widths=[0.3, 0.7])
    fig.add_trace(
        go.Bar(
            x=codes,
            y=[results[c].accuracy for c in codes],
            marker_color="#2ca02c",
            name="accuracy",
            showlegend=False,
            text=[f"{results[c].accuracy:.2f}" for c in codes],
            textposition="outside",
        ),
        row=1,
        col=1,
    )
    chance = next(iter(results.values())).chance_accuracy if results else 0.1
    fig.add_hline(y=chance, line_dash="dash", line_color=FLOOR_COLOR, row=1, col=1)
    methods = list(dict.fromkeys(m for r in results.values() for m in r.scores))
    for m in methods:
        fig.add_trace(
            go.Bar(
                x=codes,
                y=[results[c].scores[m].iou if m in results[c].scores else None for c in codes],
                name=method_label(m),
                marker_color=method_color(m),
            ),
            row=1,
            col=2,
        )
    fig.add_trace(
        go.Scatter(
            x=codes,
            y=[results[c].random_iou for c in codes],
            mode="markers",
            marker=dict(symbol="line-ew-open", size=30, color=FLOOR_COLOR),
            name="random map",
        ),
        row=1,
        col=2,
    )
    fig.add_trace(
        go.Scatter(
            x=codes,
            y=[results[c].perfect_iou for c in codes],
            mode="markers",
            marker=dict(symbol="line-ew-open", size=30, color="#000"),
            name="perfect map",
        ),
        row=1,
        col=2,
    )
    fig.update_yaxes(range=[0, 1.1])
    model = next(iter(results.values())).config.model if results else ""
    return _layout(
        fig,
        f"Noise conditions for {model}: RB/SB = random/structured background, FP/RP = fixed/random position",
        barmode="group",
        height=420,
    )


def vision_figures(result: VisionResult) -> dict[str, go.Figure]:
    """Every chart of a vision result, keyed by a file-friendly name (used by exports)."""
    return {
        "iou": iou_bars(result),
        "box_free_scores": box_free_bars(result),
        "iou_distribution": iou_distribution(result),
        "training": training_curve(result.history, f"Training {result.config.model} ({result.condition})"),
        "confusion": confusion_figure(result),
    }
