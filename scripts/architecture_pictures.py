"""Pictures of the architectural envs for the README: one row per unseen brief (written out above
the row), with the rule-based design, the raw generator's (latent 0) and, given an agent, the
agent's side by side; a caption under each, a legend for the whole figure, and for massing a
north-south section under each plan.

    python scripts/architecture_pictures.py --env FloorPlan-v2 --agent runs/<run> --out docs/floorplan.png
    python scripts/architecture_pictures.py --env Massing-v2 --agent pretrained --out docs/massing.png
    python scripts/architecture_pictures.py --env Massing-v2 --out docs/massing.png   # without an agent
"""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path

import gymnasium as gym
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import ListedColormap, Normalize  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch, Rectangle  # noqa: E402

from designgym.agents.evaluation import load_agent  # noqa: E402
from designgym.envs.architecture import floorplan, massing  # noqa: E402
from designgym.envs.registration import resolve_env_id  # noqa: E402

WIDTH, DPI, FONT = 8.0, 200, 9  # inches at the README's ~800 px, so 9 pt reads as 9 pt; 1600 px saved
SHORT = {floorplan.LIVING: "living", floorplan.KITCHEN: "kitchen", floorplan.BEDROOM: "bed",
         floorplan.BATHROOM: "bath", floorplan.CIRCULATION: "hall"}
SHORTER = {"living": "liv.", "kitchen": "kit."}  # for rooms too narrow for the full name
SKY, LIMIT, BAND = "tab:blue", "black", (1.0, 0.85, 0.6)


def rgb(colour) -> tuple[float, ...]:
    return tuple(c / 255 for c in colour)


def caption(who: str, evaluation, objective: str) -> tuple[str, bool]:
    text = f"{who}: {objective} {evaluation.objectives[objective]:.2f}\n"
    if evaluation.feasible:
        return text + "meets every rule", True
    # Non-breaking spaces inside a rule's name: lines break between rules only.
    broken = ", ".join(k.replace("_", "\u00a0") for k, v in evaluation.violations.items() if v > 0)
    return text + "\n".join(textwrap.wrap("breaks " + broken, 34)), False


def brief_text(problem, c) -> str:
    if problem.name == "floor_plan":
        rows, cols = np.nonzero(problem.footprint_mask(c))
        w, d = (np.ptp(cols) + 1) * problem.cell_m, (np.ptp(rows) + 1) * problem.cell_m
        words = [f"{floorplan.FOOTPRINTS[int(c['footprint'])]} {w:.1f} x {d:.1f} m",
                 f"{int(c['bedrooms'])} bedroom{'s' * (int(c['bedrooms']) > 1)}",
                 f"{int(c['bathrooms'])} bathroom{'s' * (int(c['bathrooms']) > 1)}"]
        words += ["kitchen next to living"] * int(c["kitchen_living"])
        words += ["bathroom next to a bedroom"] * int(c["bath_bedroom"])
        return ", ".join(words)
    top, bottom, left, right = problem.parcel_rect(c)
    return (f"parcel {(right - left) * problem.cell_m:.0f} x {(bottom - top) * problem.cell_m:.0f} m, "
            f"FAR {c['far']:.1f}, height limit {c['max_height']:.0f} m, sky plane {c['sky_plane_base']:.0f} m "
            f"+ {c['sky_plane_slope']:.1f}:1, {c['latitude']:.0f}°N")


def plain_plan(problem, design, image: np.ndarray) -> np.ndarray:
    """The render without its tiny labels: every pixel that is not wall, outline or door gets its
    cell's fill colour back (the labels are drawn last, over the fills)."""
    grid = problem.check_design(design).astype(np.int64)
    palette = np.array([floorplan._COLOURS[c] for c in range(len(floorplan.ROOM_TYPES))], np.uint8)
    fill = np.kron(palette[grid], np.ones((problem.cell_px, problem.cell_px, 1), np.uint8))
    keep = np.zeros(image.shape[:2], bool)
    for colour in (floorplan._WALL, floorplan._OUTLINE, floorplan._DOOR):
        keep |= np.all(image == colour, axis=-1)
    return np.where(keep[..., None], image, fill)


def centre_in_run(run: np.ndarray, i: int) -> tuple[float, float]:
    """Where to centre a label near cell ``i`` of a run of True cells: ``(centre, half room)`` in
    cells. The centre moves at most half a cell from cell ``i``'s centre toward the run's middle
    (a two-cell corridor gets its label between its cells); the half room is the distance from
    it to the nearer end of the run."""
    before, after = np.flatnonzero(~run[:i]), np.flatnonzero(~run[i:])
    lo, hi = (before[-1] + 1 if before.size else 0), i + (after[0] if after.size else len(run) - i)
    centre = i + 0.5 + float(np.clip((lo + hi) / 2 - (i + 0.5), -0.5, 0.5))
    return centre, min(centre - lo, hi - centre)


def label_rooms(ax, problem, design) -> list:
    """Room names at the cell render labels (the room's cell nearest its centroid), with the
    half-extent of the room around it in pixels, so that names too big can be dropped later."""
    labels, codes = problem.rooms(design)
    px, out = problem.cell_px, []
    for room, code in enumerate(codes, start=1):
        rows, cols = np.nonzero(labels == room)
        k = int(np.argmin((rows - rows.mean()) ** 2 + (cols - cols.mean()) ** 2))
        r, c = rows[k], cols[k]
        (x, half_w), (y, half_h) = centre_in_run(labels[r] == room, c), centre_in_run(labels[:, c] == room, r)
        text = ax.text(x * px, y * px, SHORT[int(code)], fontsize=8, ha="center", va="center")
        out.append((ax, text, half_w * px, half_h * px))
    return out


def drop_overflowing(fig, texts) -> None:
    """Shorten, or else remove, the room names wider or taller than their room."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax, text, half_w, half_h in texts:
        (x0, y0), (x1, y1) = ax.transData.transform([(0, 0), (half_w, half_h)])
        for name in (text.get_text(), SHORTER.get(text.get_text())):
            text.set_text(name or "")
            box = text.get_window_extent(renderer)
            if name and box.width / 2 <= abs(x1 - x0) - 2 and box.height / 2 <= abs(y1 - y0):
                break
        else:
            text.remove()


def section(ax, problem, design, c) -> int:
    """A north-south section through the column holding the tallest built cell; returns the column."""
    h = problem.as_built(design)
    col = int(np.unravel_index(np.argmax(h), h.shape)[1]) if h.max() > 0 else problem.size // 2
    m, n = problem.cell_m, problem.size
    top, bottom, _, _ = problem.buildable_rect(c)
    ax.axvspan(top * m, bottom * m, color=BAND, alpha=0.5, lw=0)
    ax.axvspan((n - problem.street_rows) * m, n * m, color=rgb((205, 205, 205)), lw=0)
    ax.bar(np.arange(n) * m, h[:, col], width=m, align="edge",
           color=massing._ramp(h[:, col] / problem.max_height_m) / 255, edgecolor="none")
    x = (np.arange(n) + 0.5) * m
    ax.plot(x, problem.sky_plane(c)[:, col], color=SKY, lw=1.5)
    ax.axhline(c["max_height"], color=LIMIT, ls="--", lw=1.2)
    ax.set_xlim(0, n * m)
    ax.set_ylim(0, 1.15 * max(c["max_height"], h.max(), problem.sky_plane(c).min() + 6))  # show the plane
    ax.set_xlabel("north → south (m)", fontsize=FONT, labelpad=1)
    ax.set_ylabel("height (m)", fontsize=FONT, labelpad=1)
    ax.set_title(f"section, {(col + 0.5) * m:.0f} m from west", fontsize=FONT, pad=2)
    ax.tick_params(labelsize=FONT - 1, pad=1, length=2)
    return col


def legend(fig, problem, height: float) -> None:
    kw = dict(loc="lower center", frameon=False, fontsize=FONT, handlelength=1.6, columnspacing=1.2)
    if problem.name == "floor_plan":
        handles = [Patch(facecolor=rgb(floorplan._COLOURS[code]), edgecolor=rgb(floorplan._WALL), lw=0.6,
                       label=name if SHORT[code] == name else f"{name} ({SHORT[code]})")
                   for code, name in enumerate(floorplan.ROOM_TYPES) if code]
        handles += [Patch(facecolor=rgb(floorplan._COLOURS[0]), edgecolor="0.6", lw=0.6, label="outside"),
                    Line2D([], [], color=rgb(floorplan._OUTLINE), lw=2, label="footprint outline"),
                    Line2D([], [], color=rgb(floorplan._WALL), lw=1, label="wall"),
                    Patch(color=rgb(floorplan._DOOR), label="front door")]
        fig.legend(handles=handles, ncol=5, bbox_to_anchor=(0.5, 0.1 / height), **kw)
        return
    handles = [Line2D([], [], color=rgb((150, 20, 20)), lw=2, label="parcel"),  # colours as Massing.render's
               Line2D([], [], color=rgb((235, 140, 20)), ls="--", lw=1.5, label="buildable area (setbacks)"),
               Patch(color=rgb((205, 205, 205)), label="street"),
               Patch(color=rgb((0.6 * 242,) * 3), label="midday winter shadow"),
               Line2D([], [], color="black", ls=":", lw=1.2, label="section line"),
               Patch(color=BAND, alpha=0.5, label="buildable band (section)"),
               Line2D([], [], color=LIMIT, ls="--", lw=1.2, label="height limit"),
               Line2D([], [], color=SKY, lw=1.5, label="sky-exposure plane")]
    fig.legend(handles=handles, ncol=3, bbox_to_anchor=(0.5, 0.1 / height), **kw)
    bar = fig.add_axes([0.3, 0.95 / height, 0.4, 0.1 / height])
    ramp = ListedColormap(massing._ramp(np.linspace(0, 1, 256)) / 255)
    colourbar = fig.colorbar(plt.cm.ScalarMappable(Normalize(0, problem.max_height_m), ramp), cax=bar,
                             orientation="horizontal")
    bar.set_title("building height (m)", fontsize=FONT, pad=3)
    colourbar.ax.tick_params(labelsize=FONT - 1)


def draw(problem, rows, title: str, out: Path) -> None:
    """``rows``: per brief ``(brief in words, conditions, [(design, caption, feasible), ...])``."""
    is_plan = problem.name == "floor_plan"
    cols = max(len(panels) for _, _, panels in rows)
    gap = 0.2  # inches between panels; a panel is at most 3 in wide
    pw = min(3.0, (WIDTH - 0.2 - gap * (cols - 1)) / cols)
    x0 = (WIDTH - cols * pw - gap * (cols - 1)) / 2
    cap = 0.2 + 0.16 * max(c.count("\n") + 1 for _, _, panels in rows for _, c, _ in panels)
    sec = 0 if is_plan else 1.62  # a title, the section's axes and its tick labels
    row_h = 0.35 + pw + sec + cap
    legend_h = 0.75 if is_plan else 1.4
    height = 0.45 + len(rows) * row_h + legend_h
    fig = plt.figure(figsize=(WIDTH, height), dpi=DPI)
    fig.text(0.5, 1 - 0.25 / height, title, ha="center", va="center", fontsize=FONT + 1, weight="bold")
    texts = []
    for i, (brief, conditions, panels) in enumerate(rows):
        y = height - 0.45 - i * row_h  # top of this row, inches from the bottom
        fig.text(0.1 / WIDTH, (y - 0.15) / height, f"Brief {i + 1}: {brief}", fontsize=FONT, va="center",
                 weight="bold")
        for j, (design, text, ok) in enumerate(panels):
            x = x0 + j * (pw + gap)
            ax = fig.add_axes([x / WIDTH, (y - 0.35 - pw) / height, pw / WIDTH, pw / height])
            ax.set_axis_off()
            image = problem.render(design, conditions)
            if is_plan:
                ax.imshow(plain_plan(problem, design, image), interpolation="nearest")
                texts += label_rooms(ax, problem, design)
                r, c = problem.entrance_cell(conditions)  # the door again, thicker than render's
                px = problem.cell_px
                ax.add_patch(Rectangle((c * px + 1, (r + 1) * px - 6), px - 2, 6, color=rgb(floorplan._DOOR)))
            else:
                ax.imshow(image, interpolation="nearest")
                sax = fig.add_axes([(x + 0.45) / WIDTH, (y - 0.35 - pw - sec + 0.32) / height,
                                    (pw - 0.45) / WIDTH, 1.0 / height])
                col = section(sax, problem, design, conditions)
                ax.axvline((col + 0.5) * problem.cell_px, color="black", ls=":", lw=1.2)
            fig.text((x + pw / 2) / WIDTH, (y - 0.35 - pw - sec - 0.03) / height, text, ha="center", va="top",
                     fontsize=FONT, color="black" if ok else (0.6, 0.1, 0.1), linespacing=1.25)
    legend(fig, problem, height)
    drop_overflowing(fig, texts)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=DPI)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", required=True)
    p.add_argument("--agent", "--run", dest="agent",
                   help="a training run folder, a model .zip, or 'pretrained' (its designs join the picture)")
    p.add_argument("--briefs", type=int, default=2)
    p.add_argument("--seed", type=int, default=20_000, help="episode seeds of the briefs (unseen in training)")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    env_id = resolve_env_id(args.env)
    env = gym.make(env_id)
    problem = env.unwrapped.problem
    agent = None
    if args.agent:
        try:
            agent = load_agent(args.agent, env_id=env_id)
        except (FileNotFoundError, ValueError) as exc:
            if args.agent != "pretrained":
                p.error(str(exc))
            print(f"no agent column: {exc}".splitlines()[0])
    if agent is not None and agent.model.observation_space.shape != env.observation_space.shape:
        p.error(f"agent {agent.source} was trained on {agent.env_id}, whose observations differ from {env_id}'s")
    if problem.name == "floor_plan":
        from designgym.envs.architecture.floorplan_data import make_plan as make_rule_based
    else:
        from designgym.envs.architecture.massing_data import make_massing as make_rule_based
    objective, rows = problem.objective.name, []
    for i in range(args.briefs):
        env.reset(seed=args.seed + i)
        brief = dict(env.unwrapped.conditions)
        panels = []
        rule_based = make_rule_based(problem, brief, np.random.default_rng(args.seed + i))
        if rule_based is not None:
            panels.append((rule_based, *caption("rule-based", problem.evaluate(rule_based, brief), objective)))
        env.step(np.zeros(env.action_space.shape, np.float32))
        generated = np.array(env.unwrapped.design)
        panels.append((generated, *caption("generator, z = 0", env.unwrapped.evaluation, objective)))
        if agent is not None:
            obs, _ = env.reset(seed=args.seed + i)
            env.step(agent.act(obs))
            panels.append((np.array(env.unwrapped.design), *caption("agent", env.unwrapped.evaluation, objective)))
        rows.append((brief_text(problem, brief), brief, panels))
    where = "street side at the bottom" if problem.name == "floor_plan" else "plans north up, street at the bottom"
    draw(problem, rows, f"{env_id}: designs for unseen briefs ({where})", args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
