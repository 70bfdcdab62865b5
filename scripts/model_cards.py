"""Write docs/model-cards.md from the cards of the generators shipped in designgym/generators/weights/.

The JSON cards are written by scripts/train_generator.py next to the weights; this page shows
them for people. A test checks that the page matches the cards, so rerun this after retraining:

    python scripts/model_cards.py
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from designgym.generators import registry

DOC = Path(__file__).resolve().parents[1] / "docs" / "model-cards.md"

# What each metric means, in the order the page lists them. Metrics not named here follow.
METRIC_NOTES = {
    "heldout_designs": "SIMP designs held out of training (the last tenth of the data set)",
    "heldout_iou_mean": "mean intersection over union of a held-out design and its encode-decode round trip",
    "heldout_compliance_ratio_median": (
        "median compliance of the round trip over that of its SIMP source (1 = as stiff)"
    ),
    "heldout_compliance_ratio_p90": "90th percentile of that ratio",
    "heldout_within_10pct_of_simp": "share of round trips within 10 % of their SIMP source's compliance",
    "heldout_log_stiffness_gain_mean": "mean reward objective log(c_uniform / c) of the round trips",
    "heldout_simp_log_stiffness_gain_mean": "the same for the SIMP sources",
    "heldout_feasible_rate": "share of round trips that meet every rule of the problem",
    "heldout_floating_rate": "share of round trips with floating material",
    "prior_samples": "designs decoded from z ~ N(0, I) for the prior_ metrics",
    "prior_floating_rate": "share of prior samples with any floating material",
    "prior_floating_fraction_mean": "mean fraction of a prior sample's solid that floats",
    "prior_load_path_rate": "share of prior samples whose solid joins the load (random load case) to the supports",
    "prior_volume_fraction_mean": "mean solid fraction of prior samples",
    "prior_volume_fraction_std": "its standard deviation",
    "prior_diversity_mean_pairwise_1_minus_iou": "mean 1 - IoU between pairs of prior samples",
    "samples": "prior samples for the metrics below",
    "valid_rate": "share meeting every extrusion rule",
    "one_piece_rate": "share in one piece",
    "min_wall_rate": "share meeting the minimum wall",
    "mean_area_fraction": "mean solid fraction",
    "diversity_mean_pairwise_1_minus_iou": "mean 1 - IoU between pairs",
    "heldout_cell_accuracy": "share of cells right after an encode-decode round trip of held-out designs",
    "briefs": "unseen briefs (conditions) the raw generator is judged on",
    "prior_feasible_rate": "share of raw samples (z ~ N(0, I), one per unseen brief) that meet every rule",
    "prior_mean_feasible_rate": "the same for the prior mean, z = 0",
    "diversity_same_brief": "mean difference between 8 samples for one brief (share of cells for plans, "
    "height over the largest height for massings)",
    "heldout_mean_abs_error_m": "mean height error of the round trip, metres",
}
# Per-rule rates of the architectural generators ("prior_meets/<rule>") are explained by their prefix.
PREFIX_NOTES = {
    "prior_raw_meets/": "share of raw samples that meet this rule before the env's repair",
    "prior_repaired_meets/": "share of raw samples that meet this rule after the env's repair",
    "prior_mean_raw_meets/": "share of prior-mean designs (z = 0) that meet this rule before the env's repair",
    "prior_mean_repaired_meets/": "share of prior-mean designs (z = 0) that meet this rule after the env's repair",
    "prior_raw_feasible": "share of raw samples meeting every rule before the env's repair",
    "prior_repaired_feasible": "share of raw samples meeting every rule after the env's repair",
    "prior_mean_raw_feasible": "the same for z = 0 before the repair",
    "prior_mean_repaired_feasible": "the same for z = 0 after the repair",
    "prior_mean_ms": "milliseconds per decode of z = 0",
    "prior_ms": "milliseconds per decode of a raw sample",
    "prior_meets/": "share of raw samples that meet this rule",
    "prior_mean_meets/": "share of prior-mean designs (z = 0) that meet this rule",
    "prior_mean_mean_": "mean reward objective of prior-mean designs",
    "prior_mean_": "mean reward objective of raw samples",
}


def _note(key: str) -> str:
    if key in METRIC_NOTES:
        return METRIC_NOTES[key]
    return next((note for prefix, note in PREFIX_NOTES.items() if key.startswith(prefix)), "")


def render(directory: Path = registry.WEIGHTS_DIR) -> str:
    lines = [
        "# Model cards of the shipped generators",
        "",
        "Written by `scripts/model_cards.py` from the JSON cards in `designgym/generators/weights/`,",
        "which `scripts/train_generator.py`, `scripts/train_architecture_generator.py` and",
        "`scripts/make_layout_generator.py` write beside each",
        "generator's weights. Load one with",
        '`designgym.generators.load("<name>")`; the sha256 below is checked on every load.',
        "",
    ]
    for name in registry.available(directory):
        card = json.loads((directory / f"{name}.json").read_text())
        weights = directory / f"{name}.pt"
        lines += [
            f"## {name}",
            "",
            card.get("description", ""),
            "",
            f"- architecture: `{card['architecture']}` `{json.dumps(card['config'])}`, latent {card['latent_dim']}, "
            f"designs {card['design_shape'][0]} x {card['design_shape'][1]}",
            f"- weights: `{weights.name}`, {weights.stat().st_size / 1e6:.2f} MB, sha256 `{card['sha256']}`",
            f"- made by: `{card['command']}`",
        ]
        if "train_seconds" in card:  # a trained generator
            lines += [
                f"- trained on: {card.get('trained_on', 'CPU')}, {card['train_seconds']} s, "
                f"torch {card['torch_version']}",
                f"- data: `{json.dumps(card['data'], sort_keys=True)}`",
                f"- training: `{json.dumps(card['training'], sort_keys=True)}`",
                f"- final loss: reconstruction {card['final_loss']['reconstruction']:.2f}, "
                f"KL {card['final_loss']['kl']:.2f}",
            ]
        else:
            lines.append(f"- data: {card['data']['source']}")
        if "parameters" in card:
            lines.append(f"- latent numbers, in order: {', '.join(f'`{p}`' for p in card['parameters'])}")
        lines += _table(card["metrics"])
        for other, metrics in card.get("compared_with", {}).items():
            lines += [f"The same measures of `{other}` on the same briefs and latents:", ""]
            lines += _table(metrics)
        for env_id, metrics in card.get("env_metrics", {}).items():
            lines += [f"Inside `{env_id}` (repair: {'yes' if metrics['repair'] else 'no'}), measured by "
                      f"`{metrics['command']}`:", ""]
            lines += _table({k: v for k, v in metrics.items() if k not in ("command", "repair")})
    return "\n".join(lines)


def _table(metrics: dict) -> list[str]:
    lines = ["", "| metric | value | meaning |", "| --- | --- | --- |"]
    for key in [k for k in METRIC_NOTES if k in metrics] + [k for k in metrics if k not in METRIC_NOTES]:
        value = metrics[key]
        shown = f"{value:.4g}" if isinstance(value, float) else str(value)
        lines.append(f"| `{key}` | {shown} | {_note(key)} |")
    lines.append("")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=DOC)
    args = p.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render())
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
