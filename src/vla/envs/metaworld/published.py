"""The published MT50 results vla is compared with, and the table `vla eval` prints with vla's row.

Figures as reported by their authors (success %, 10 episodes per task, the groups of `tasks.GROUPS`):
Diffusion Policy, TinyVLA, pi0 and SmolVLA from the SmolVLA paper (Shukor et al. 2025, LeRobot's
protocol); Evo-1 from its paper (Lin et al. 2025; its protocol: 400-step horizon, 448 px). They were
trained on GPUs from 50 demonstrations per task.

Their "average" is the mean of the four group means (it is for every row: e.g. pi0's
(71.8 + 48.2 + 41.7 + 30.0) / 4 = 47.9), which weighs a very hard task 28/5 times an easy one; the mean
over the 50 tasks is a different, larger number for a policy strong on the 28 easy tasks. vla's row
uses the same definition (`success_rate_mean_of_groups`) and prints the task mean beside it.
"""

from __future__ import annotations

from typing import Any

from vla.envs.metaworld.tasks import GROUPS

# name -> (easy, medium, hard, very hard, average), success in %
PUBLISHED: dict[str, tuple[float, float, float, float, float]] = {
    "Diffusion Policy": (23.1, 10.7, 1.9, 6.1, 10.5),
    "TinyVLA": (77.6, 21.5, 11.4, 15.8, 31.6),
    "π0": (71.8, 48.2, 41.7, 30.0, 47.9),
    "SmolVLA 0.45B": (82.5, 41.8, 45.0, 60.0, 57.3),
    "SmolVLA 2.25B": (87.1, 51.8, 70.0, 64.0, 68.2),
    "Evo-1": (89.2, 76.8, 77.2, 79.2, 80.6),
}


def format_table(results: dict[str, Any]) -> str:
    """A Markdown table of the published rows plus this run (`results` from `vla.evaluate`); groups
    the run did not cover show "—"."""
    groups = results.get("success_rate_per_group", {})
    cells = []
    for g in GROUPS:
        v = groups.get(g)
        cells.append("—" if v is None else f"{100 * v:.1f}")
    full = set(results.get("success_rate_per_family", {})) >= {t for ts in GROUPS.values() for t in ts}
    mean = results.get("success_rate_mean_of_groups", results["success_rate"])
    lo, hi = results.get("ci95_mean_of_groups", results.get("ci95", [0.0, 0.0]))
    avg = f"{100 * mean:.1f} [{100 * lo:.1f}–{100 * hi:.1f}]"
    name = "vla (this run)" if full else "vla (this run, not all 50 tasks)"
    lines = [
        "| MT50 success (%) | easy (28) | medium (11) | hard (6) | very hard (5) | average |",
        "|---|---|---|---|---|---|",
    ]
    lines += [f"| {n} | " + " | ".join(f"{v:.1f}" for v in row) + " |" for n, row in PUBLISHED.items()]
    lines.append(f"| **{name}** | " + " | ".join(cells) + f" | **{avg}** |")
    lines.append("")
    lines.append(
        f"average = mean of the group means, as in the published rows; mean over the "
        f"{len(results.get('success_rate_per_family', {}))} tasks: {100 * results['success_rate']:.1f}%"
    )
    return "\n".join(lines)
