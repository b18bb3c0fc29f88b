"""What the instruction check did in an evaluation: episodes held, by the check's reason and by the
kind of ungroundable instruction the suite asked (its episodes' `meta["ungroundable"]`).

On a split of ungroundable instructions, "correctly held" is the env's own success (nothing disturbed,
the hand where it started, for the whole window); the check's refusals say how much of that came from
refusing before moving. On every other split a hold is a false refusal: the episode fails, and
`held` counts them.
"""

from __future__ import annotations

from typing import Any

from vla.rollout.episode import EpisodeResult


def summarize_holds(results: list[EpisodeResult]) -> dict[str, Any]:
    """{"instruction_check": {...}} for results.json; {} when the actor had no instruction check."""
    checked = [r for r in results if "instruction_held" in r.extras]
    if not checked:
        return {}
    held = [r for r in checked if r.extras["instruction_held"]]
    by_reason: dict[str, int] = {}
    for r in held:
        kind = r.extras["instruction_held"]["kind"]
        by_reason[kind] = by_reason.get(kind, 0) + 1
    out: dict[str, Any] = {"episodes": len(checked), "held": len(held), "held_by_reason": by_reason}
    kinds = sorted({str(r.meta["ungroundable"]) for r in checked if r.meta.get("ungroundable")})
    if kinds:
        per: dict[str, Any] = {}
        for kind in kinds:
            rs = [r for r in checked if r.meta.get("ungroundable") == kind]
            per[kind] = {
                "episodes": len(rs),
                "correctly_held": sum(r.success for r in rs) / len(rs),
                "refused_by_check": sum(bool(r.extras["instruction_held"]) for r in rs) / len(rs),
            }
        out["by_ungroundable_kind"] = per
        out["correctly_held"] = sum(r.success for r in checked if r.meta.get("ungroundable")) / sum(
            1 for r in checked if r.meta.get("ungroundable")
        )
    return {"instruction_check": out}
