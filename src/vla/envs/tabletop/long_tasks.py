"""Long-horizon tasks of the tabletop suite: requests that need 2-5 skills, and their reference plans.

Ten kinds: sequences of two or three skills, quantifiers ("every block", "the red objects"), spatial
superlatives ("the leftmost ball") and conditionals on what is on the table ("if there is a green ball,
..."). Each kind has train templates (split `long_horizon`) and held-out templates (split
`long_horizon_paraphrase`) written with other connectives, verbs and sentence shapes. Every episode
samples a scene and the reference plan that fulfils the request in that scene (quantifiers and
conditionals resolved against it); success is judged on the final scene: every reference step's
predicate (`tasks.is_success`, push distances measured from the episode's start) holds at the end.

Groups ("every block") are listed in a canonical order (the vocabulary's object order), which is what
"plan equals the reference plan" compares against.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vla.envs.tabletop import language, tasks
from vla.envs.tabletop import objects as obj
from vla.planning.plan import Plan, SceneDescription, Step

SPLITS = ("long_horizon", "long_horizon_paraphrase")

TRAIN: dict[str, tuple[str, ...]] = {
    "put_two": (
        "put the {a} {dest1} and the {b} {dest2}",
        "place the {a} {dest1}, then place the {b} {dest2}",
        "first put the {a} {dest1}, then put the {b} {dest2}",
    ),
    "every_shape": ("put every {shape} {dest1}", "place all the {shapes} {dest1}"),
    "every_colour": ("put every {colour} object {dest1}", "place all the {colour} things {dest1}"),
    "sort": (
        "put the {colour} objects {dest1} and the {colour2} objects {dest2}",
        "place all {colour} things {dest1}, then all {colour2} things {dest2}",
    ),
    "stack_then_push": (
        "stack the {a} on the {b} and then push the {c} {dir}",
        "put the {a} on top of the {b}, then slide the {c} {dir}",
    ),
    "push_then_put": (
        "push the {a} {dir}, then put the {b} {dest1}",
        "slide the {a} {dir} and then place the {b} {dest1}",
    ),
    "next_to_then_pick": (
        "move the {a} next to the {b} and then pick up the {c}",
        "put the {a} beside the {b}, then lift the {c}",
    ),
    "conditional": (
        "if there is a {a}, put it {dest1}, otherwise put the {b} {dest1}; then push the {c} {dir}",
        "if the table has a {a} on it, place it {dest1}; if not, place the {b} {dest1}. then slide the {c} {dir}",
    ),
    "spatial": (
        "put the leftmost {shape} {dest1} and the rightmost {shape} {dest2}",
        "place the {shape} on the left {dest1}, then the {shape} on the right {dest2}",
    ),
    "three_step": (
        "put the {a} {dest1}, push the {b} {dir}, and then move the {c} next to the {d}",
        "place the {a} {dest1}, then slide the {b} {dir}, then put the {c} beside the {d}",
    ),
}

HELD_OUT: dict[str, tuple[str, ...]] = {
    "put_two": (
        "the {a} goes {dest1} and the {b} goes {dest2}",
        "transfer the {a} to the {c1}; after that, load the {b} into the {c2}",
    ),
    "every_shape": ("each {shape} goes {dest1}", "clear the table: load every {shape} into the {c1}"),
    "every_colour": ("transfer each {colour} object to the {c1}", "all {colour} objects go {dest1}"),
    "sort": ("sort by colour: {colour} objects go {dest1}, {colour2} objects go {dest2}",),
    "stack_then_push": (
        "build a tower with the {a} on the {b}; after that, give the {c} a push {dir}",
        "first rest the {a} on the {b}, and once that is done shove the {c} {dir}",
    ),
    "push_then_put": (
        "without lifting it, move the {a} {dir}; afterwards the {b} goes {dest1}",
        "nudge the {a} {dir} before you drop the {b} {dest1}",
    ),
    "next_to_then_pick": (
        "position the {a} alongside the {b}, then hoist the {c}",
        "the {a} should end up beside the {b}; when done, get the {c} up in the air",
    ),
    "conditional": (
        "in case there is a {a}, drop it {dest1}, else drop the {b} {dest1}, and after that nudge the {c} {dir}",
        "should you see a {a}, load it into the {c1}; otherwise load the {b} into the {c1}. finally shove the {c} {dir}",
    ),
    "spatial": ("transfer the leftmost {shape} to the {c1}, then the rightmost {shape} to the {c2}",),
    "three_step": (
        "first load the {a} into the {c1}, next give the {b} a push {dir}, and finally put the {c} near the {d}",
    ),
}
KINDS = tuple(TRAIN)
# The episode's time: each step's single-step budget (tasks.MAX_STEPS) plus slack, twice over, so every
# step has room for one retry.
STEP_SLACK = 20


@dataclass(frozen=True)
class LongHorizonSpec:
    """One long-horizon episode.

    Attributes:
        kind: one of KINDS.
        split: "long_horizon" (train templates) or "long_horizon_paraphrase" (held-out templates).
        instruction: the request.
        plan: the reference plan in this scene.
        objects: (colour, shape) -> (x, y, yaw) of every object on the table.
        containers: container -> (x, y).
        pushed: the object a push step moves (its corridor is kept clear), else None.
    """

    kind: str
    split: str
    instruction: str
    plan: Plan
    objects: dict[tuple[str, str], tuple[float, float, float]] = field(default_factory=dict)
    containers: dict[str, tuple[float, float]] = field(default_factory=dict)
    pushed: tuple[str, str] | None = None

    @property
    def max_steps(self) -> int:
        return 2 * sum(tasks.MAX_STEPS[s.skill] + STEP_SLACK for s in self.plan)


def _pair(name: str) -> tuple[str, str]:
    colour, shape = name.split()
    return colour, shape


def _name(p: tuple[str, str]) -> str:
    return obj.describe(*p)


def _canonical(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return sorted(pairs, key=obj.ALL_PAIRS.index)


def _slots(kind: str, rng: np.random.Generator) -> tuple[dict[str, str], list[tuple[str, str]], set]:
    """Samples the kind's slot values; returns (slots, required objects, pairs distractors must avoid)."""
    pool = list(obj.TRAIN_PAIRS)
    order = [pool[int(i)] for i in rng.permutation(len(pool))]
    c1, c2 = (str(c) for c in rng.choice(list(obj.CONTAINERS), size=2, replace=False))
    slots = {"c1": c1, "c2": c2, "dir": str(rng.choice(list(language.DIRECTIONS)))}
    avoid: set[tuple[str, str]] = set()
    if kind in ("every_shape", "spatial"):
        shape = str(rng.choice(obj.SHAPES))
        group = [p for p in order if p[1] == shape][:2]
        slots.update(shape=shape, shapes=shape + "s")
        avoid = {p for p in pool if p[1] == shape}
        return slots, group, avoid
    if kind in ("every_colour", "sort"):
        colours = [str(c) for c in rng.choice(list(obj.COLOURS), size=2, replace=False)]
        first = [p for p in order if p[0] == colours[0]][:2]
        required = list(first)
        if kind == "sort":
            n = int(rng.integers(1, 3))
            required = first[: int(rng.integers(1, 3))] + [p for p in order if p[0] == colours[1]][:n]
        slots.update(colour=colours[0], colour2=colours[1])
        avoid = {p for p in pool if p[0] in colours[: 2 if kind == "sort" else 1]}
        return slots, required, avoid
    for key, p in zip("abcd", order[:4], strict=True):
        slots[key] = _name(p)
    if kind == "stack_then_push":  # the stacked object and base are blocks/cylinders on a block
        a = next(p for p in order if p[1] in ("block", "cylinder"))
        b = next(p for p in order if p[1] == "block" and p[0] != a[0] and p != a)
        c = next(p for p in order if p[1] in tasks.PUSHABLE_SHAPES and p not in (a, b))
        slots.update(a=_name(a), b=_name(b), c=_name(c))
    if kind == "push_then_put":
        a = next(p for p in order if p[1] in tasks.PUSHABLE_SHAPES)
        b = next(p for p in order if p != a)
        slots.update(a=_name(a), b=_name(b))
    if kind in ("conditional", "three_step"):
        key = "c" if kind == "conditional" else "b"
        pushed = next(p for p in order if p[1] in tasks.PUSHABLE_SHAPES)
        rest = [p for p in order if p != pushed]
        slots[key] = _name(pushed)
        for k, p in zip([k for k in "abcd" if k != key], rest, strict=False):
            slots[k] = _name(p)
    n = {"put_two": 2, "stack_then_push": 3, "push_then_put": 2, "next_to_then_pick": 3}.get(kind, 4)
    required = [_pair(slots[k]) for k in "abcd"[:n]]
    if kind == "conditional":
        required = [_pair(slots["b"]), _pair(slots["c"])]
        if rng.random() < 0.5:
            required.append(_pair(slots["a"]))
        avoid = {_pair(slots["a"])}
    return slots, required, avoid


def _reference(kind: str, slots: dict[str, str], present: list[tuple[str, str]], layout: dict) -> Plan:
    put, c1, c2, d = "put_in", slots["c1"], slots["c2"], slots["dir"]
    if kind == "put_two":
        return (Step.of(put, obj=slots["a"], container=c1), Step.of(put, obj=slots["b"], container=c2))
    if kind == "every_shape":
        group = _canonical([p for p in present if p[1] == slots["shape"]])
        return tuple(Step.of(put, obj=_name(p), container=c1) for p in group)
    if kind == "every_colour":
        group = _canonical([p for p in present if p[0] == slots["colour"]])
        return tuple(Step.of(put, obj=_name(p), container=c1) for p in group)
    if kind == "sort":
        plan = []
        for colour, c in ((slots["colour"], c1), (slots["colour2"], c2)):
            group = _canonical([p for p in present if p[0] == colour])
            plan += [Step.of(put, obj=_name(p), container=c) for p in group]
        return tuple(plan)
    if kind == "stack_then_push":
        return (
            Step.of("stack", obj=slots["a"], base=slots["b"]),
            Step.of("push", obj=slots["c"], direction=d),
        )
    if kind == "push_then_put":
        return (Step.of("push", obj=slots["a"], direction=d), Step.of(put, obj=slots["b"], container=c1))
    if kind == "next_to_then_pick":
        return (Step.of("move_next_to", obj=slots["a"], ref=slots["b"]), Step.of("pick_up", obj=slots["c"]))
    if kind == "conditional":
        chosen = slots["a"] if _pair(slots["a"]) in present else slots["b"]
        return (Step.of(put, obj=chosen, container=c1), Step.of("push", obj=slots["c"], direction=d))
    if kind == "spatial":
        group = sorted((p for p in present if p[1] == slots["shape"]), key=lambda p: -layout[p][1])
        return (
            Step.of(put, obj=_name(group[0]), container=c1),
            Step.of(put, obj=_name(group[-1]), container=c2),
        )
    if kind == "three_step":
        return (
            Step.of(put, obj=slots["a"], container=c1),
            Step.of("push", obj=slots["b"], direction=d),
            Step.of("move_next_to", obj=slots["c"], ref=slots["d"]),
        )
    raise KeyError(f"unknown long-horizon kind '{kind}'; kinds: {KINDS}")


def _fill(template: str, slots: dict[str, str]) -> str:
    values = dict(slots)
    for k, c in (("dest1", slots["c1"]), ("dest2", slots["c2"])):
        values[k] = language.fill("{dest}", {"container": c})
    values["dir"] = language.DIRECTIONS[slots["dir"]]
    return template.format(**values)


def templates(kind: str, *, held_out: bool) -> tuple[str, ...]:
    table = HELD_OUT if held_out else TRAIN
    if kind not in table:
        raise KeyError(f"unknown long-horizon kind '{kind}'; kinds: {KINDS}")
    return table[kind]


def sample_long_episode(kind: str, split: str, rng: np.random.Generator) -> LongHorizonSpec:
    """Draws one long-horizon episode of `kind` (scene, request and reference plan).

    Args:
        kind: one of KINDS.
        split: one of SPLITS (which templates the request uses).
        rng: the episode's generator (same state -> same episode).
    """
    if split not in SPLITS:
        raise KeyError(f"unknown long-horizon split '{split}'; splits: {SPLITS}")
    slots, required, avoid = _slots(kind, rng)
    # Containers the plan uses, in a fixed order so the layout is reproducible.
    plan_probe = _reference(kind, slots, required, {p: (0.0, float(i), 0.0) for i, p in enumerate(required)})
    used = [c for c in (slots["c1"], slots["c2"]) if any(s.slots.get("container") == c for s in plan_probe)]
    pushed = next((_pair(s.slots["obj"]) for s in plan_probe if s.skill == "push"), None)
    others = [p for p in obj.TRAIN_PAIRS if p not in required and p not in avoid]
    n_extra = max(0, int(rng.integers(3, 6)) - len(required))
    extra = [others[int(i)] for i in rng.permutation(len(others))[:n_extra]]
    present = [*required, *extra]
    target = pushed or present[0]
    items: list[tuple[str, str] | str] = [*used, target, *[p for p in present if p != target]]
    direction = slots["dir"] if pushed else None
    for _ in range(500):
        layout = tasks._try_layout(items, "push" if pushed else "put_in", target, None, direction, rng)
        if layout is not None:
            break
    else:
        raise RuntimeError(f"could not lay out a {kind} scene after 500 attempts")
    layout_o, layout_c = layout
    temps = templates(kind, held_out=split == "long_horizon_paraphrase")
    instruction = _fill(temps[int(rng.integers(len(temps)))], slots)
    return LongHorizonSpec(
        kind=kind,
        split=split,
        instruction=instruction,
        plan=_reference(kind, slots, present, layout_o),
        objects=layout_o,
        containers=layout_c,
        pushed=pushed,
    )


def step_spec(step: Step, spec: LongHorizonSpec, split: str) -> tasks.EpisodeSpec:
    """The single-step `EpisodeSpec` of one plan step in the episode's scene (experts and predicates)."""
    s = step.slots
    other = s.get("base") or s.get("ref")
    return tasks.EpisodeSpec(
        family=step.skill,
        split=split,
        instruction=language.fill(language.TRAIN_TEMPLATES[step.skill][0], s),
        slots=s,
        target=_pair(s["obj"]),
        other=_pair(other) if other else None,
        container=s.get("container"),
        direction=s.get("direction"),
        objects=dict(spec.objects),
        containers=dict(spec.containers),
    )


def is_long_success(spec: LongHorizonSpec, state: tasks.SimState) -> bool:
    """Whether every reference step's predicate holds in the (final) simulator state."""
    for step in spec.plan:
        if step.skill == "touch":  # contact is momentary: no final-scene check exists
            continue
        if not tasks.is_success(step_spec(step, spec, spec.split), state):
            return False
    return True


def initial_scene(spec: LongHorizonSpec) -> SceneDescription:
    """The scene description of an episode's start, from its layout (no simulator; planner benchmarks)."""
    names = [obj.describe(*k) for k in spec.objects]
    positions = {obj.describe(*k): (v[0], v[1]) for k, v in spec.objects.items()}
    positions.update(spec.containers)
    return SceneDescription(
        tuple(names), tuple(spec.containers), positions, dict.fromkeys(spec.containers, ())
    )
