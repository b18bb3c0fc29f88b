"""Meta-World's 50 tasks as vla families: the benchmarks (MT10, MT50) and the difficulty groups.

Family names are Meta-World's own environment names (`reach-v3`, ...), so results and datasets line up
with Meta-World's, LeRobot's and the papers' tables. The difficulty groups are the ones the published
VLA results on MT50 report (SmolVLA via LeRobot, Evo-1, TinyVLA, after Seo et al. 2022, "Masked World
Models"): 28 easy, 11 medium, 6 hard, 5 very hard. MT1 is any single task (`--family NAME`).
"""

from __future__ import annotations

EASY = (
    "button-press-v3",
    "button-press-topdown-v3",
    "button-press-topdown-wall-v3",
    "button-press-wall-v3",
    "coffee-button-v3",
    "dial-turn-v3",
    "door-close-v3",
    "door-lock-v3",
    "door-open-v3",
    "door-unlock-v3",
    "drawer-close-v3",
    "drawer-open-v3",
    "faucet-close-v3",
    "faucet-open-v3",
    "handle-press-v3",
    "handle-press-side-v3",
    "handle-pull-v3",
    "handle-pull-side-v3",
    "lever-pull-v3",
    "plate-slide-v3",
    "plate-slide-back-v3",
    "plate-slide-back-side-v3",
    "plate-slide-side-v3",
    "reach-v3",
    "reach-wall-v3",
    "window-close-v3",
    "window-open-v3",
    "peg-unplug-side-v3",
)
MEDIUM = (
    "basketball-v3",
    "bin-picking-v3",
    "box-close-v3",
    "coffee-pull-v3",
    "coffee-push-v3",
    "hammer-v3",
    "peg-insert-side-v3",
    "push-wall-v3",
    "soccer-v3",
    "sweep-v3",
    "sweep-into-v3",
)
HARD = ("assembly-v3", "hand-insert-v3", "pick-out-of-hole-v3", "pick-place-v3", "push-v3", "push-back-v3")
VERY_HARD = ("shelf-place-v3", "disassemble-v3", "stick-pull-v3", "stick-push-v3", "pick-place-wall-v3")

GROUPS: dict[str, tuple[str, ...]] = {"easy": EASY, "medium": MEDIUM, "hard": HARD, "very_hard": VERY_HARD}
MT50: tuple[str, ...] = EASY + MEDIUM + HARD + VERY_HARD
# Meta-World's MT10 (`metaworld.MT10`), in its order.
MT10: tuple[str, ...] = (
    "reach-v3",
    "push-v3",
    "pick-place-v3",
    "door-open-v3",
    "drawer-open-v3",
    "drawer-close-v3",
    "button-press-topdown-v3",
    "peg-insert-side-v3",
    "window-open-v3",
    "window-close-v3",
)
BENCHMARKS: dict[str, tuple[str, ...]] = {"mt10": MT10, "mt50": MT50}
GROUP_OF: dict[str, str] = {task: group for group, tasks in GROUPS.items() for task in tasks}

# The published protocol (LeRobot's Meta-World env, SmolVLA, Evo-1): 500 control steps per episode.
MAX_STEPS = 500
