"""PolicyConfig: JSON round-trip, dotted overrides, validation; presets lookup."""

from __future__ import annotations

import json

import pytest

from vla.models import PolicyConfig, parse_overrides
from vla.presets import describe, get_preset, list_presets


@pytest.mark.parametrize("name", list_presets())
def test_models_config_json_roundtrip(name: str) -> None:
    cfg = get_preset(name)
    again = PolicyConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg
    assert describe(name)


def test_models_presets_cover_the_families() -> None:
    assert {"default", "rt1", "openvla", "act", "diffusion", "pi0"} <= set(list_presets())
    with pytest.raises(KeyError, match="Did you mean 'act'"):
        get_preset("actt")
    d = get_preset("default")
    assert (d.image_size, d.cameras, d.obs_horizon, d.action_horizon) == ((96, 96), ("scene", "wrist"), 1, 8)
    assert get_preset("diffusion").head.sample_steps == 10
    assert get_preset("pi0").head.kind == "flow"
    # Controllers run half the chunk by default; the grounded preset re-plans every step.
    assert (d.steps_per_chunk, get_preset("grounded").steps_per_chunk) == (4, 1)


def test_models_config_override_nested_and_from_strings() -> None:
    cfg = get_preset("default").override({"head.kind": "flow", "action_horizon": 16})
    assert cfg.head.kind == "flow" and cfg.action_horizon == 16
    cfg = cfg.override(
        parse_overrides(["vision.channels=[16, 32]", "vision.strides=2,2", "vision.film=false"])
    )
    assert cfg.vision.channels == (16, 32) and cfg.vision.strides == (2, 2) and cfg.vision.film is False
    cfg = cfg.override(parse_overrides(["cameras=scene", "fusion.dropout=0.2"]))
    assert cfg.cameras == ("scene",) and cfg.fusion.dropout == 0.2
    assert cfg.replace(obs_horizon=3).obs_horizon == 3


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"head.kind": "magic"}, "head.kind must be one of"),
        ({"vision.widht": 3}, "unknown VisionConfig field 'vision.widht'"),
        ({"visoin.kind": "cnn"}, "unknown PolicyConfig field 'visoin'. Did you mean 'vision'"),
        ({"action_horizon": 0}, "action_horizon must be >= 1"),
        ({"execute_steps": 9}, "execute_steps must be 0 .* or 1..action_horizon=8, got 9"),
        ({"vision.channels": [8, 16]}, "must have one length"),
        ({"fusion.dim": 30}, "divisible by heads"),
        ({"vision.kind": "vit", "vision.pool": "spatial_softmax"}, "needs a CNN feature map"),
        ({"obs_horizon": "two"}, "'obs_horizon': expected an integer, got 'two'"),
        ({"obs_horizon": 1.5}, "'obs_horizon': expected an integer, got 1.5"),
    ],
)
def test_models_config_validation_names_the_problem(override: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        get_preset("default").override(override)


def test_models_config_from_dict_rejects_unknown_keys() -> None:
    d = get_preset("default").to_dict()
    d["head"]["colour"] = "red"
    with pytest.raises(ValueError, match=r"config\.head: unknown field 'colour'"):
        PolicyConfig.from_dict(d)
    with pytest.raises(ValueError, match="key=value"):
        parse_overrides(["vision.width"])
