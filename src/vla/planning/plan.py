"""Plans, the skill vocabulary they are checked against, and the scene a planner plans in.

A plan is a tuple of `Step`s; a step names one skill of the policy and fills its argument slots
(`Step("put_in", (("obj", "red block"), ("container", "bowl")))`). The vocabulary is declared by the
suite (e.g. `vla.envs.tabletop.skills.VOCABULARY`): which skills exist, which slots each has and of what
kind, the words for objects, containers and directions, and how a step becomes the instruction the
low-level policy was trained on. Every planner backend returns plans through `validate_plan`, so an
invalid plan is an error (`PlanError`), never an action.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

SLOT_KINDS = ("object", "container", "direction")
MAX_PLAN_STEPS = 6


class PlanError(ValueError):
    """A request the planner cannot turn into a valid plan, or a backend reply that is not one."""


@dataclass(frozen=True, order=True)
class Step:
    """One skill call: the skill's name and its filled slots, as sorted (slot, value) pairs.

    Attributes:
        skill: a skill of the vocabulary, e.g. "put_in".
        args: ((slot, value), ...) sorted by slot, e.g. (("container", "bowl"), ("obj", "red block")).
    """

    skill: str
    args: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, skill: str, **args: str) -> Step:
        """`Step.of("push", obj="red block", direction="left")`."""
        return cls(skill, tuple(sorted(args.items())))

    @property
    def slots(self) -> dict[str, str]:
        return dict(self.args)

    def to_json(self) -> dict[str, str]:
        return {"skill": self.skill, **self.slots}

    @classmethod
    def from_json(cls, d: Mapping[str, object]) -> Step:
        """Builds a step from {"skill": ..., slot: value, ...}; raises PlanError when malformed."""
        if not isinstance(d, Mapping) or not isinstance(d.get("skill"), str):
            raise PlanError(f"a step must be an object with a string 'skill', got {d!r}")
        args = {k: v for k, v in d.items() if k != "skill"}
        bad = {k: v for k, v in args.items() if not isinstance(v, str)}
        if bad:
            raise PlanError(f"step slot values must be strings, got {bad!r}")
        return cls.of(str(d["skill"]), **{k: str(v) for k, v in args.items()})


Plan = tuple[Step, ...]


@dataclass(frozen=True)
class SceneDescription:
    """What the planner knows about the scene: a perception module's output, or the simulator's in tests.

    Attributes:
        objects: names of the movable objects, e.g. ("red block", "blue ball").
        containers: names of the receptacles, e.g. ("bowl",).
        positions: object or container name -> (x, y) in the robot base frame (m); optional.
        contents: container name -> names of the objects inside it now; optional.
    """

    objects: tuple[str, ...]
    containers: tuple[str, ...] = ()
    positions: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    contents: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {
            "objects": list(self.objects),
            "containers": list(self.containers),
            "positions": {k: list(v) for k, v in self.positions.items()},
            "contents": {k: list(v) for k, v in self.contents.items()},
        }

    @classmethod
    def from_json(cls, d: Mapping[str, object]) -> SceneDescription:
        """The inverse of `to_json`; raises PlanError on a malformed description."""
        try:
            objects = tuple(str(o) for o in d["objects"])  # type: ignore[attr-defined]
            containers = tuple(str(c) for c in d.get("containers", ()))  # type: ignore[attr-defined]
            positions = {
                str(k): (float(v[0]), float(v[1]))
                for k, v in dict(d.get("positions", {})).items()  # type: ignore[call-overload]
            }
            contents = {
                str(k): tuple(str(o) for o in v)
                for k, v in dict(d.get("contents", {})).items()  # type: ignore[call-overload]
            }
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise PlanError(f"malformed scene description {d!r}: {e}") from e
        return cls(objects, containers, positions, contents)


@dataclass(frozen=True)
class SkillSpec:
    """One skill of the policy.

    Attributes:
        name: e.g. "stack".
        slots: slot name -> kind ("object", "container" or "direction"), e.g. {"obj": "object",
            "base": "object"}; the first slot is the object acted on.
        verbs: words that name this skill in requests (for refusing requests no skill covers).
        cues: words of the policy's own instructions for this skill that no other skill's use (a
            lexical prior for planners choosing between skills).
    """

    name: str
    slots: Mapping[str, str]
    verbs: tuple[str, ...] = ()
    cues: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        bad = {k: v for k, v in self.slots.items() if v not in SLOT_KINDS}
        if bad:
            raise ValueError(f"skill '{self.name}' has slots of unknown kinds {bad}; kinds: {SLOT_KINDS}")

    @property
    def signature(self) -> tuple[str, ...]:
        """Kinds of the slots in order, e.g. ("object", "object")."""
        return tuple(self.slots.values())


@dataclass(frozen=True)
class SkillVocabulary:
    """Everything a planner may say: the skills, and the words for things in the scene.

    Attributes:
        skills: the policy's skills.
        objects: every nameable object, name -> its attribute words, e.g. "red block" -> ("red", "block").
        containers: every container name.
        directions: direction name -> the phrases that mean it, e.g. "left" -> ("to the left", "left").
        render: turns a valid step into the instruction text the low-level policy executes.
        left: unit (x, y) vector pointing "left" in the frame of `SceneDescription.positions`.
        max_steps: longest plan accepted.
        examples: (request, step) pairs in the policy's own phrasing: the few-shot prompt of planners.
    """

    skills: tuple[SkillSpec, ...]
    objects: Mapping[str, tuple[str, ...]]
    containers: tuple[str, ...]
    directions: Mapping[str, tuple[str, ...]]
    render: Callable[[Step], str]
    left: tuple[float, float] = (0.0, 1.0)
    max_steps: int = MAX_PLAN_STEPS
    examples: tuple[tuple[str, Step], ...] = ()

    def skill(self, name: str) -> SkillSpec:
        for s in self.skills:
            if s.name == name:
                return s
        raise PlanError(f"unknown skill '{name}'; skills: {[s.name for s in self.skills]}")

    @property
    def skill_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.skills)

    def text(self, step: Step) -> str:
        """The instruction for a valid step (what the policy is told)."""
        return self.render(step)


def validate_step(step: Step, vocab: SkillVocabulary, scene: SceneDescription | None = None) -> Step:
    """Returns `step` if it is a valid call of one of `vocab`'s skills in `scene`, else raises PlanError."""
    spec = vocab.skill(step.skill)
    got = step.slots
    if set(got) != set(spec.slots):
        raise PlanError(
            f"skill '{spec.name}' takes slots {sorted(spec.slots)}, got {sorted(got)} in {step.to_json()}"
        )
    for slot, kind in spec.slots.items():
        value = got[slot]
        if kind == "object":
            if value not in vocab.objects:
                raise PlanError(f"'{value}' (slot {slot} of {spec.name}) is not an object the policy knows")
            if scene is not None and value not in scene.objects:
                raise PlanError(f"there is no {value} in the scene (objects: {', '.join(scene.objects)})")
        elif kind == "container":
            if value not in vocab.containers:
                raise PlanError(f"'{value}' (slot {slot} of {spec.name}) is not a container the policy knows")
            if scene is not None and value not in scene.containers:
                raise PlanError(
                    f"there is no {value} in the scene (containers: {', '.join(scene.containers) or 'none'})"
                )
        elif value not in vocab.directions:
            raise PlanError(f"'{value}' is not a direction; directions: {sorted(vocab.directions)}")
    objects = [got[s] for s, k in spec.slots.items() if k == "object"]
    if len(set(objects)) != len(objects):
        raise PlanError(f"skill '{spec.name}' needs two different objects, got {objects}")
    return step


def validate_plan(plan: Plan, vocab: SkillVocabulary, scene: SceneDescription | None = None) -> Plan:
    """Returns `plan` (a tuple) if every step is valid and its length is in [1, vocab.max_steps].

    Raises:
        PlanError: naming the first problem.
    """
    plan = tuple(plan)
    if not plan:
        raise PlanError("the plan is empty")
    if len(plan) > vocab.max_steps:
        raise PlanError(f"the plan has {len(plan)} steps; at most {vocab.max_steps} are allowed")
    for step in plan:
        if not isinstance(step, Step):
            raise PlanError(f"a plan holds Steps, got {type(step).__name__}")
        validate_step(step, vocab, scene)
    return plan
