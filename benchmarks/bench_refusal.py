"""What a checkpoint's checks refuse, judged on each episode's first frame, per split of the tabletop suite.

On `train`, `unseen` and `paraphrase` a refusal is a false one (the policy should act); on
`ungroundable` it is the right answer, counted per kind of instruction. It runs the checks only (the
same `GroundingCheck.judge` the controllers call on an instruction's first frame), not the policy, so it
is fast; `vla eval --split ungroundable` gives the closed-loop "correctly held".

    MUJOCO_GL=egl python benchmarks/bench_refusal.py --checkpoint runs/full50/checkpoint --episodes 40

Prints one JSON line per split, then one with everything.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from typing import Any

SPLITS = ("train", "unseen", "paraphrase", "ungroundable")


def refusals(checkpoint: str, episodes: int, *, threads: int = 2) -> dict[str, Any]:
    from vla.envs import get_suite
    from vla.models.grounding_check import GroundingCheck

    check = GroundingCheck.load(checkpoint)
    if check is None:
        raise SystemExit(f"{checkpoint} has no checks (instruction_check, presence_check, skill_check)")
    if check.skills is not None:
        check.skills.threads = threads  # one process here, not one per rollout worker
    suite = get_suite("tabletop")
    out: dict[str, Any] = {}
    for split in SPLITS:
        seen: Counter[str] = Counter()
        refused: Counter[str] = Counter()
        reasons: Counter[str] = Counter()
        for family in suite.families:
            env = suite.make(family, split=split)
            try:
                for seed in range(100_000, 100_000 + episodes):
                    obs, _ = env.reset(seed=seed)
                    kind = str(env.episode_meta.get("ungroundable") or "all")
                    verdict = check.judge(obs["instruction"], obs["images"])
                    seen[kind] += 1
                    if not verdict.ok:
                        refused[kind] += 1
                        reasons[verdict.kind] += 1
            finally:
                env.close()
        out[split] = {
            "refused": {k: round(refused[k] / seen[k], 4) for k in sorted(seen)},
            "episodes": dict(sorted(seen.items())),
            "by_reason": dict(sorted(reasons.items())),
        }
        if split == "ungroundable":
            out[split]["refused"]["all"] = round(sum(refused.values()) / sum(seen.values()), 4)
        print(json.dumps({"split": split, **out[split]}), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--episodes", type=int, default=40, help="episodes per family and split")
    args = ap.parse_args()
    print(
        json.dumps(
            {
                "checkpoint": args.checkpoint,
                "episodes_per_family": args.episodes,
                **refusals(args.checkpoint, args.episodes),
            }
        )
    )


if __name__ == "__main__":
    main()
