"""`vla.overrides`: one parser for `-p`, `--set`, config files and checkpoints, type by type."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest

from vla.config import EvalConfig, TrainConfig, to_dict
from vla.models import PolicyConfig
from vla.overrides import apply_overrides, convert, from_dict, parse_overrides
from vla.presets import get_preset, list_presets


@dataclass(frozen=True)
class Inner:
    width: int = 4
    names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.width <= 0:
            raise ValueError(f"Inner.width must be positive, got {self.width}")


@dataclass(frozen=True)
class Outer:
    name: str = "x"
    count: int = 1
    rate: float = 0.5
    flag: bool = False
    sizes: tuple[int, ...] = (1, 2)
    pair: tuple[float, float] = (0.0, 1.0)
    scale: dict[str, float] = field(default_factory=dict)
    limit: int | None = None
    inner: Inner = field(default_factory=Inner)
    items: tuple[Inner, ...] = ()


def _set(*items: str) -> Outer:
    return apply_overrides(Outer(), list(items))


def test_scalars_parse_by_declared_type():
    cfg = _set("name=a=b", "count=12", "rate=3e-4", "flag=yes")
    assert (cfg.name, cfg.count, cfg.rate, cfg.flag) == ("a=b", 12, 3e-4, True)
    assert _set("rate=inf").rate == float("inf")
    for text, want in [
        ("true", True),
        ("On", True),
        ("1", True),
        ("false", False),
        ("no", False),
        ("0", False),
    ]:
        assert _set(f"flag={text}").flag is want
    assert _set("name=").name == ""  # a string field takes any text, even none


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("count=many", r"'count': expected an integer, got 'many'"),
        ("count=1.5", r"'count': expected an integer, got '1.5'"),
        ("rate=fast", r"'rate': expected a number, got 'fast'"),
        ("flag=maybe", r"'flag': expected true or false, got 'maybe'"),
        ("pair=1", r"'pair': expected 2 numbers \(a,b\), got '1'"),
        ("sizes=1,x", r"'sizes': expected an integer, got 'x'"),
        ("scale=vision", r"'scale': expected a mapping of names to numbers"),
        ("limit=lots", r"'limit': expected an integer or none, got 'lots'"),
        ("inner=3", r"'inner' is a section; set its fields, e.g. 'inner.width=\.\.\.'"),
        ("name.first=3", r"'name' is a string, not a section"),
        ("items=x", r"'items': expected a JSON list of Inner objects"),
        ("inner.width=0", r"Inner.width must be positive, got 0"),
    ],
)
def test_bad_text_names_the_key_the_value_and_the_type(item: str, message: str):
    with pytest.raises(ValueError, match=message):
        _set(item)


def test_lists_take_commas_brackets_or_json():
    for text in ("3,4", "[3, 4]", "(3,4)", "[3,4]"):
        assert _set(f"sizes={text}").sizes == (3, 4)
    assert _set("sizes=").sizes == ()
    assert _set("pair=0.9,0.999").pair == (0.9, 0.999)
    assert _set("inner.names=scene").inner.names == ("scene",)
    assert _set('inner.names=["scene", "wrist"]').inner.names == ("scene", "wrist")
    assert _set("inner.names=[scene, wrist]").inner.names == ("scene", "wrist")
    # JSON numbers are checked too: 16.5 is not an integer (the old policy parser let it through).
    with pytest.raises(ValueError, match=r"expected an integer, got 16\.5"):
        _set("sizes=[16.5, 3]")


def test_mappings_whole_or_one_entry_by_dotted_key():
    assert _set("scale=vision:0.1,head:2").scale == {"vision": 0.1, "head": 2.0}
    assert _set('scale={"vision": 0.1}').scale == {"vision": 0.1}
    cfg = apply_overrides(Outer(scale={"head": 2.0}), ["scale.vision=0.1"])
    assert cfg.scale == {"head": 2.0, "vision": 0.1}


def test_optional_fields_take_none():
    assert _set("limit=7").limit == 7
    assert _set("limit=none").limit is None and _set("limit=NULL").limit is None
    assert apply_overrides(Outer(limit=3), {"limit": None}).limit is None


def test_nested_dataclasses_and_lists_of_them():
    cfg = _set("inner.width=8", 'items=[{"width": 2}, {"width": 3, "names": ["a"]}]')
    assert cfg.inner == Inner(width=8)
    assert cfg.items == (Inner(2), Inner(3, ("a",)))
    base = Outer()
    assert apply_overrides(base, ["count=3"]).inner is base.inner  # untouched sections are kept as they are


def test_unknown_keys_get_a_did_you_mean_at_every_level():
    with pytest.raises(ValueError, match=r"unknown Outer field 'cuont'\. Did you mean 'count'\?"):
        _set("cuont=3")
    with pytest.raises(
        ValueError, match=r"unknown Inner field 'inner\.widht'\. Did you mean 'inner\.width'\?"
    ):
        _set("inner.widht=3")
    with pytest.raises(ValueError, match=r"unknown Outer field 'innr'\. Did you mean 'inner'\?"):
        _set("innr.width=3")
    with pytest.raises(ValueError, match=r"x: unknown field 'rat'\. Did you mean 'rate'\?"):
        from_dict(Outer, {"rat": 1.0}, where="x")


def test_key_value_splitting():
    assert parse_overrides([" a = 1 ", "b=x=y", "a=2"]) == {"a": "2", "b": "x=y"}
    with pytest.raises(ValueError, match="must look like key=value"):
        parse_overrides(["vision.width"])
    with pytest.raises(TypeError, match="list of key=value"):
        parse_overrides("a=1")  # type: ignore[arg-type]
    assert _set("inner.width=8").inner.width == apply_overrides(Outer(), {"inner.width": 8}).inner.width


def test_json_values_are_strictly_typed():
    assert from_dict(Outer, {"count": 3.0, "rate": 1, "sizes": [1]}) == Outer(count=3, rate=1.0, sizes=(1,))
    for bad, message in [
        ({"count": "3"}, r"'Outer\.count': expected an integer, got '3'"),
        ({"count": True}, r"'Outer\.count': expected an integer, got True"),
        ({"flag": 1}, r"'Outer\.flag': expected true or false, got 1"),
        ({"sizes": 3}, r"'Outer\.sizes': expected a list of integers"),
        ({"inner": {"width": 2, "colour": 1}}, r"Outer\.inner: unknown field 'colour'"),
    ]:
        with pytest.raises(ValueError, match=message):
            from_dict(Outer, bad)
    assert convert(tuple[int, ...], (1, 2), key="k") == (1, 2)


def test_policy_and_train_configs_share_the_parser():
    # The CLI examples of the README and docs, through -p (PolicyConfig) and --set (TrainConfig).
    pcfg = get_preset("default").override(
        parse_overrides(
            ["head.kind=flow", "fusion.state_fields=a,b", "vision.channels=[16, 32]", "vision.strides=2,2"]
        )
    )
    assert (pcfg.head.kind, pcfg.fusion.state_fields, pcfg.vision.channels) == ("flow", ("a", "b"), (16, 32))
    tcfg = apply_overrides(TrainConfig(dataset="d"), ["lr=3e-4", "families=pick_up,push", "batch-size=8"])
    assert (tcfg.lr, tcfg.families, tcfg.batch_size) == (3e-4, ("pick_up", "push"), 8)
    ecfg = apply_overrides(EvalConfig(checkpoint="c"), ["videos_per_family=0", "safety=false"])
    assert (ecfg.videos_per_family, ecfg.safety) == (0, False)
    # A list reads the same in both: brackets, spaces and commas alike.
    assert apply_overrides(TrainConfig(dataset="d"), ["families=[a, b]"]).families == ("a", "b")
    assert get_preset("default").override({"cameras": "[scene]"}).cameras == ("scene",)


@pytest.mark.parametrize("name", list_presets())
def test_every_preset_survives_json(name: str):
    cfg = get_preset(name)
    assert PolicyConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_a_train_config_with_stages_and_scales_survives_json():
    tcfg = apply_overrides(
        TrainConfig(dataset="d"),
        ['stages=[{"until_step": 5, "frozen": ["vision"]}]', "lr_scale=vision:0.1", "betas=0.8,0.9"],
    )
    assert from_dict(TrainConfig, json.loads(json.dumps(to_dict(tcfg)))) == tcfg
