"""Plans and their validation against the tabletop skill vocabulary; the parser's structure."""

from __future__ import annotations

import numpy as np
import pytest

from vla.envs.tabletop.long_tasks import HELD_OUT, KINDS, TRAIN, initial_scene, sample_long_episode, templates
from vla.envs.tabletop.skills import VOCABULARY
from vla.planning.base import remaining
from vla.planning.offline import rules_planner
from vla.planning.plan import PlanError, SceneDescription, Step, validate_plan

SCENE = SceneDescription(
    objects=("red block", "blue ball", "green cylinder"),
    containers=("bowl",),
    positions={
        "red block": (0.5, 0.1),
        "blue ball": (0.4, -0.1),
        "green cylinder": (0.6, 0.0),
        "bowl": (0.5, 0.2),
    },
    contents={"bowl": ()},
)


def test_step_json_round_trip_and_text() -> None:
    step = Step.of("put_in", obj="red block", container="bowl")
    assert Step.from_json(step.to_json()) == step
    assert VOCABULARY.text(step) == "put the red block in the bowl"


@pytest.mark.parametrize(
    ("step", "message"),
    [
        (Step.of("fly", obj="red block"), "unknown skill"),
        (Step.of("put_in", obj="red block"), "takes slots"),
        (Step.of("put_in", obj="purple ball", container="bowl"), "no purple ball in the scene"),
        (Step.of("put_in", obj="red block", container="tray"), "no tray in the scene"),
        (Step.of("push", obj="red block", direction="up"), "not a direction"),
        (Step.of("stack", obj="red block", base="red block"), "two different objects"),
        (Step.of("pick_up", obj="golden apple"), "not an object the policy knows"),
    ],
)
def test_invalid_steps_are_errors(step: Step, message: str) -> None:
    with pytest.raises(PlanError, match=message):
        validate_plan((step,), VOCABULARY, SCENE)


def test_empty_and_too_long_plans_are_errors() -> None:
    with pytest.raises(PlanError, match="empty"):
        validate_plan((), VOCABULARY, SCENE)
    with pytest.raises(PlanError, match="at most"):
        validate_plan((Step.of("pick_up", obj="red block"),) * 7, VOCABULARY, SCENE)


def test_scene_description_json_round_trip_and_malformed() -> None:
    assert SceneDescription.from_json(SCENE.to_json()) == SCENE
    with pytest.raises(PlanError, match="malformed"):
        SceneDescription.from_json({"containers": []})


def test_every_kind_has_train_and_held_out_templates_that_differ() -> None:
    assert len(KINDS) >= 8
    for kind in KINDS:
        assert len(templates(kind, held_out=False)) >= 2 or kind in ("sort",)
        assert templates(kind, held_out=True)
        assert not set(TRAIN[kind]) & set(HELD_OUT[kind])


@pytest.mark.parametrize("split", ["long_horizon", "long_horizon_paraphrase"])
def test_reference_plans_are_valid_with_2_to_5_steps_and_deterministic(split: str) -> None:
    for kind in KINDS:
        for seed in range(5):
            a = sample_long_episode(kind, split, np.random.default_rng(seed))
            b = sample_long_episode(kind, split, np.random.default_rng(seed))
            assert a == b
            assert 2 <= len(a.plan) <= 5
            validate_plan(a.plan, VOCABULARY, initial_scene(a))


def test_rules_planner_resolves_quantifiers_conditionals_and_space() -> None:
    planner = rules_planner(VOCABULARY)
    scene = SceneDescription(
        objects=("red block", "green block", "blue ball", "purple ball"),
        containers=("bowl", "plate"),
        positions={
            "red block": (0.5, 0.2),
            "green block": (0.5, -0.2),
            "blue ball": (0.4, 0.1),
            "purple ball": (0.6, 0.0),
        },
    )
    every = planner.plan("put every block in the bowl", scene)
    assert every == (
        Step.of("put_in", obj="red block", container="bowl"),
        Step.of("put_in", obj="green block", container="bowl"),
    )
    cond = planner.plan(
        "if there is a yellow ball, put it on the plate, otherwise put the blue ball on the plate", scene
    )
    assert cond == (Step.of("put_in", obj="blue ball", container="plate"),)
    cond = planner.plan(
        "if there is a purple ball, put it on the plate; otherwise put the blue ball on the plate", scene
    )
    assert cond == (Step.of("put_in", obj="purple ball", container="plate"),)
    left = planner.plan("put the leftmost block in the bowl and the rightmost block on the plate", scene)
    assert [s.slots["obj"] for s in left] == ["red block", "green block"]


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        ("open the drawer", "names no object|no skill"),
        ("make me a coffee", "names no object|no skill"),
        ("throw the red block", "no skill of the policy matches"),
        ("put the purple cylinder in the bowl", "no purple cylinder in the scene"),
        ("put the red block in the tray", "no tray in the scene"),
        ("", "empty"),
    ],
)
def test_requests_outside_the_vocabulary_are_refused_clearly(request_: str, message: str) -> None:
    with pytest.raises(PlanError, match=message):
        rules_planner(VOCABULARY).plan(request_, SCENE)


def test_replanning_drops_done_steps_and_what_the_scene_shows_done() -> None:
    full = (
        Step.of("put_in", obj="red block", container="bowl"),
        Step.of("put_in", obj="blue ball", container="bowl"),
        Step.of("push", obj="green cylinder", direction="left"),
    )
    scene = SceneDescription(SCENE.objects, SCENE.containers, SCENE.positions, {"bowl": ("blue ball",)})
    assert remaining(full, full[:1], VOCABULARY, scene) == full[2:]
    with pytest.raises(PlanError, match="nothing is left"):
        remaining(full, full, VOCABULARY, scene)
