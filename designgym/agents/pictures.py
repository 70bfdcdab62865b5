"""PNG pictures of runs: a grid of designs and a learning curve."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from designgym.agents.files import atomic_path  # noqa: E402


def save_design_grid(
    path: Path, images: Sequence[np.ndarray], captions: Sequence[str], title: str = "", columns: int = 4,
    legend: Sequence[tuple[str, tuple[int, int, int]]] = (),
) -> Path:
    """Save RGB design pictures side by side with a caption under each, and a legend of colours
    (``(label, RGB)`` pairs, such as a problem's ``LEGEND``) under the grid."""
    fig = _grid_figure(images, captions, title, columns, legend)
    _save(fig, path)
    return path


def design_grid_image(
    images: Sequence[np.ndarray], captions: Sequence[str], title: str = "", columns: int = 4
) -> np.ndarray:
    """The picture of :func:`save_design_grid` as an RGB array ``(H, W, 3)`` (for TensorBoard)."""
    fig = _grid_figure(images, captions, title, columns)
    fig.set_dpi(100)
    fig.canvas.draw()
    rgb = np.asarray(fig.canvas.buffer_rgba())[:, :, :3].copy()
    plt.close(fig)
    return rgb


def caption(info: dict[str, Any], main: str) -> str:
    """The caption of a design in a grid: its ``main`` objective, and "feasible" or its worst violation."""
    objectives, violations = info["objectives"], info["violations"]
    worst = max(violations, key=violations.get) if violations else ""
    status = "feasible" if info["feasible"] else f"{worst} {violations[worst]:.3g}"
    return f"{main} {objectives[main]:.2f}\n{status}"


def _grid_figure(images: Sequence[np.ndarray], captions: Sequence[str], title: str, columns: int,
                 legend: Sequence[tuple[str, tuple[int, int, int]]] = ()) -> plt.Figure:
    n = len(images)
    if n == 0:
        raise ValueError("no designs to draw")
    cols = min(columns, n)
    rows = (n + cols - 1) // cols
    # Rows as tall as the tallest design, plus room for the longest caption; the title may wrap.
    aspect = max(image.shape[0] / image.shape[1] for image in images)
    caption_lines = max((c.count("\n") + 1 for c in captions), default=1)
    title_lines = title.count("\n") + 1 if title else 0
    legend_rows = (len(legend) + 1) // 2
    height = (2.6 * aspect + 0.15 * caption_lines + 0.2) * rows + 0.2 * title_lines + 0.2 + 0.25 * legend_rows
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, height), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, image, caption in zip(axes.ravel(), images, captions, strict=False):
        ax.imshow(image, interpolation="nearest")
        ax.set_title(caption, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    if legend:
        from matplotlib.patches import Patch

        handles = [Patch(facecolor=np.array(rgb) / 255.0, edgecolor="black", label=label) for label, rgb in legend]
        fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 2), fontsize=8, frameon=False)
        fig.tight_layout(rect=(0, 0.25 * legend_rows / height + 0.02, 1, 1))
    else:
        fig.tight_layout()
    return fig


def read_monitor(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """Episode returns and lengths from every SB3 ``*.monitor.csv`` in ``folder``, in time order.

    A row's time is the file's ``t_start`` plus its ``t``. A resumed run appends to the same files
    without a new header, and its ``t`` starts again from 0: such rows are placed after the rows
    before them.
    """
    rows = []
    for file in sorted(Path(folder).glob("*monitor.csv")):
        lines = file.read_text().splitlines()
        try:
            start = float(json.loads(lines[0].lstrip("#")).get("t_start", 0.0)) if lines else 0.0
        except (json.JSONDecodeError, AttributeError):
            start = 0.0
        base, last = start, -1.0
        for line in lines[2:]:  # a JSON comment line, then the header r,l,t,...
            ret, length, t = line.split(",")[:3]
            if float(t) < last:  # the run was resumed: times start again
                base += last
            last = float(t)
            rows.append((base + float(t), float(ret), int(length)))
    rows.sort()
    returns = np.array([r for _, r, _ in rows], dtype=np.float64)
    lengths = np.array([n for _, _, n in rows], dtype=np.int64)
    return returns, lengths


def save_learning_curve(
    path: Path, monitor_dir: Path, random_return: float | None = None, title: str = "", window: int = 100
) -> Path:
    """Episode return against environment steps (a moving average), from SB3 monitor files."""
    returns, lengths = read_monitor(monitor_dir)
    fig, ax = plt.subplots(figsize=(6, 3.6))
    if len(returns):
        steps = np.cumsum(lengths)
        w = max(1, min(window, len(returns) // 5 or 1))
        smooth = np.convolve(returns, np.ones(w) / w, mode="valid")
        ax.plot(steps, returns, ".", ms=2, alpha=0.25, color="tab:blue", label="episode return")
        ax.plot(steps[w - 1 :], smooth, color="black", lw=1.5, zorder=3, label=f"mean of {w} episodes")
    if random_return is not None:
        ax.axhline(random_return, color="tab:red", ls="--", label="random policy")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("episode return")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    _save(fig, path)
    return path


def _save(fig: plt.Figure, path: Path) -> None:
    """Write the figure as a PNG under a temporary name and rename it: never half a picture."""
    try:
        with atomic_path(Path(path)) as tmp:
            fig.savefig(tmp, dpi=100, format="png")
    finally:
        plt.close(fig)
