"""One parser for config values: `key=value` overrides and JSON objects, for every config dataclass.

`vla train -p` (PolicyConfig), `vla train --set`, `vla eval --set`, `vla bench model --set`,
`vla train --config FILE` and checkpoints' `config.json` all go through here, so a value means the same
thing wherever it is written. Command-line text is parsed by the field's declared type:

| declared type | text |
|---|---|
| `str` | as written |
| `int`, `float` | `64`, `3e-4`, `inf` |
| `bool` | `true`/`false`, `yes`/`no`, `on`/`off`, `1`/`0` |
| `tuple[X, ...]` | `a,b`, `[a, b]`, `(a, b)` or JSON; empty text is `()` |
| `tuple[X, Y]` | the same, with exactly that many items |
| `dict[str, X]` | `k:v,k:v` or a JSON object; a dotted key sets one entry (`lr_scale.vision=0.1`) |
| `X \\| None` | `none` or `null`, else as `X` |
| a dataclass | a section: set its fields by dotted key (`head.kind=flow`); inside a tuple, JSON objects |

JSON values (config files, mappings passed from Python) must already have the field's type (a list for
a tuple, an object for a dataclass); only integral numbers pass as integers.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from vla.registry import did_you_mean

C = TypeVar("C")

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
_NONE = ("none", "null")


def parse_overrides(items: Sequence[str]) -> dict[str, str]:
    """Splits `key=value` strings into `{key: text}` (later keys win); values are parsed later, by type.

    Args:
        items: command-line overrides such as `["head.kind=flow", "lr=3e-4"]`.

    Returns:
        the keys (stripped) and their unparsed text, in order.
    """
    if isinstance(items, str):
        raise TypeError(f"overrides must be a list of key=value strings, got the string '{items}'")
    out: dict[str, str] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"override '{item}' must look like key=value, e.g. head.kind=flow or lr=3e-4")
        out[key.strip()] = raw.strip()
    return out


def apply_overrides(cfg: C, overrides: Mapping[str, Any] | Sequence[str]) -> C:
    """Returns `cfg` with fields changed by dotted key, validated by each changed dataclass.

    Args:
        cfg: a config dataclass instance; its dataclass fields are sections (`vision.kind`).
        overrides: `key=value` strings, or a mapping of dotted keys to values (strings are parsed
            like the command line; other values must have the field's type, lists for tuples).

    Returns:
        a new config. All changes are applied at once, so fields that must agree (`vision.channels`
        and `vision.strides`) can change together.

    Raises:
        ValueError: naming the key, the value and the expected type; an unknown key gets a did-you-mean.
    """
    changes = overrides if isinstance(overrides, Mapping) else parse_overrides(overrides)
    resolved: dict[tuple[str, ...], Any] = {}
    for key, value in changes.items():
        path, tp = _resolve(type(cfg), key)
        resolved[path] = convert(tp, value, key=".".join(path))
    return _rebuild(cfg, resolved)


def from_dict(cls: type[C], data: Any, *, where: str = "") -> C:
    """Builds config `cls` from JSON data (`dataclasses.asdict` output), strictly typed.

    Args:
        cls: the config dataclass.
        data: a mapping of field names to JSON values; omitted fields keep their defaults.
        where: what `data` is, for error messages (default: the class name).

    Returns:
        the validated config.

    Raises:
        ValueError: for an unknown field (with a did-you-mean) or a value of the wrong type.
    """
    where = where or cls.__name__
    if not isinstance(data, Mapping):
        raise ValueError(f"{where} must be a JSON object, got {type(data).__name__}")
    hints = _fields(cls)
    kwargs = {}
    for key, value in data.items():
        if key not in hints:
            raise ValueError(_unknown(cls, key, message=f"{where}: unknown field '{key}'"))
        kwargs[key] = coerce(hints[key], value, key=f"{where}.{key}")
    return cls(**kwargs)


def convert(tp: Any, value: Any, *, key: str) -> Any:
    """`value` as type `tp`: text is parsed (`parse_text`), anything else checked (`coerce`)."""
    if isinstance(value, str) and tp is not str:
        return parse_text(tp, value, key=key)
    return coerce(tp, value, key=key)


def parse_text(tp: Any, raw: str, *, key: str) -> Any:
    """Parses command-line text as the declared type `tp` (see the module's table).

    Args:
        tp: the field's type annotation.
        raw: the text after `=`.
        key: the field's dotted key, for error messages.

    Returns:
        the value, of type `tp` (tuples for tuple types).
    """
    inner = _optional(tp)
    if inner is not None:
        if raw.strip().lower() in _NONE:
            return None
        try:
            return parse_text(inner, raw, key=key)
        except ValueError:
            raise _bad(key, raw, tp) from None
    text = raw.strip()
    if tp is str:
        return raw
    if tp is bool:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise _bad(key, raw, tp)
    if tp in (int, float):
        try:
            return tp(text)
        except ValueError:
            raise _bad(key, raw, tp) from None
    if typing.get_origin(tp) is typing.Literal:
        for choice in typing.get_args(tp):
            if str(choice) == text:
                return choice
        raise _bad(key, raw, tp)
    origin = typing.get_origin(tp)
    if origin in (tuple, dict):
        if text[:1] in ("[", "{"):
            try:
                return coerce(tp, json.loads(text), key=key)
            except json.JSONDecodeError:
                pass  # `[scene, wrist]` is not JSON but is a list all the same
        if any(dataclasses.is_dataclass(a) for a in typing.get_args(tp)):
            raise ValueError(f"{_bad(key, raw, tp)}; or set it in a config file (--config)")
        items = _split(text)
        if origin is tuple:
            return _tuple(tp, items, raw, key=key, each=parse_text)
        val_tp = typing.get_args(tp)[1]
        out = {}
        for item in items:
            name, sep, val = item.partition(":")
            if not sep or not name.strip():
                raise _bad(key, raw, tp)
            out[name.strip()] = parse_text(val_tp, val.strip(), key=f"{key}.{name.strip()}")
        return out
    if dataclasses.is_dataclass(tp):
        first = next(iter(_fields(typing.cast(type, tp))))
        raise ValueError(f"'{key}' is a section; set its fields, e.g. '{key}.{first}=...'")
    raise TypeError(f"'{key}': fields of type {tp} cannot be parsed")


def coerce(tp: Any, value: Any, *, key: str) -> Any:
    """Checks a JSON or Python `value` against the declared type `tp`; lists become tuples.

    Args:
        tp: the field's type annotation.
        value: the value (a list for a tuple, a mapping for a dataclass or dict).
        key: the field's dotted key, for error messages.

    Returns:
        the value, of type `tp`.
    """
    inner = _optional(tp)
    if inner is not None:
        if value is None:
            return None
        try:
            return coerce(inner, value, key=key)
        except ValueError:
            raise _bad(key, value, tp) from None
    origin = typing.get_origin(tp)
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        integral = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        if integral and not isinstance(value, bool):
            return int(value)
    elif tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif origin is typing.Literal:
        if value in typing.get_args(tp):
            return value
    elif origin is tuple:
        if isinstance(value, list | tuple):
            return _tuple(tp, list(value), value, key=key, each=coerce)
    elif origin is dict:
        if isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
            val_tp = typing.get_args(tp)[1]
            return {k: coerce(val_tp, v, key=f"{key}.{k}") for k, v in value.items()}
    elif dataclasses.is_dataclass(tp):
        if isinstance(value, typing.cast(type, tp)):
            return value
        if isinstance(value, Mapping):
            return from_dict(typing.cast(type, tp), value, where=key)
    else:
        raise TypeError(f"'{key}': fields of type {tp} are not supported")
    raise _bad(key, value, tp)


def describe(tp: Any) -> str:
    """The expected form of type `tp` in words, for error messages ("an integer", "a list of numbers")."""
    inner = _optional(tp)
    if inner is not None:
        return f"{describe(inner)} or none"
    origin = typing.get_origin(tp)
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            if dataclasses.is_dataclass(args[0]):
                return f"a JSON list of {_plural(args[0])}"
            return f"a list of {_plural(args[0])} (a,b or [a, b])"
        if len(set(args)) == 1:
            return f"{len(args)} {_plural(args[0])} (a,b)"
        return f"{len(args)} values ({', '.join(describe(a) for a in args)})"
    if origin is dict:
        return f"a mapping of names to {_plural(typing.get_args(tp)[1])} (k:v,k:v or a JSON object)"
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if dataclasses.is_dataclass(tp):
        return f"a {typing.cast(type, tp).__name__} object"
    singular = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    return singular.get(tp, str(tp))


# ------------------------------------------------------------------------------------------- helpers
def _plural(tp: Any) -> str:
    names = {bool: "booleans (true/false)", int: "integers", float: "numbers", str: "strings"}
    if tp in names:
        return names[tp]
    if dataclasses.is_dataclass(tp):
        return f"{typing.cast(type, tp).__name__} objects"
    return f"values ({describe(tp)})"


def _bad(key: str, value: Any, tp: Any) -> ValueError:
    shown = f"'{value}'" if isinstance(value, str) else repr(value)
    return ValueError(f"'{key}': expected {describe(tp)}, got {shown}")


def _optional(tp: Any) -> Any:
    """`X` for `X | None` (or `Optional[X]`), else None."""
    if typing.get_origin(tp) in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0]
        raise TypeError(f"unions other than `X | None` are not supported: {tp}")
    return None


def _fields(cls: type) -> dict[str, Any]:
    """The init fields of dataclass `cls` and their resolved types, in declaration order."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}


def _unknown(cls: type, name: str, *, message: str, prefix: str = "") -> str:
    """`message`, the closest field (as a dotted key under `prefix`) and the fields `cls` has."""
    known = _fields(cls)
    hint = did_you_mean(prefix + name, [prefix + k for k in known])
    return f"{message}.{hint} Known {cls.__name__} fields: {', '.join(known)}"


def _split(text: str) -> list[str]:
    """Comma-separated items, without one pair of enclosing brackets; empty items are dropped."""
    if len(text) >= 2 and (text[0], text[-1]) in (("[", "]"), ("(", ")"), ("{", "}")):
        text = text[1:-1]
    return [s.strip() for s in text.split(",") if s.strip()]


def _tuple(tp: Any, items: list[Any], raw: Any, *, key: str, each: Any) -> tuple[Any, ...]:
    args = typing.get_args(tp)
    if not args:
        return tuple(items)
    if len(args) == 2 and args[1] is Ellipsis:
        return tuple(each(args[0], x, key=key) for x in items)
    if len(items) != len(args):
        raise _bad(key, raw, tp)
    return tuple(each(a, x, key=key) for a, x in zip(args, items, strict=True))


def _resolve(cls: type, key: str) -> tuple[tuple[str, ...], Any]:
    """The field path of dotted `key` in config class `cls` and the type found at its end."""
    parts = key.strip().split(".")
    path: list[str] = []
    tp: Any = cls
    for i, part in enumerate(parts):
        part = part.strip()
        if dataclasses.is_dataclass(tp):
            owner = typing.cast(type, tp)
            name = part.replace("-", "_")  # `--set batch-size=8` reads like the flags
            if name not in _fields(owner):
                prefix = "".join(p + "." for p in path)
                message = f"unknown {owner.__name__} field '{prefix}{name}'"
                raise ValueError(_unknown(owner, name, message=message, prefix=prefix))
            path.append(name)
            tp = _fields(owner)[name]
        elif typing.get_origin(tp) is dict and i == len(parts) - 1 and part:
            path.append(part)  # one entry of a mapping field, e.g. lr_scale.vision
            tp = typing.get_args(tp)[1]
        else:
            raise ValueError(
                f"'{key}': '{'.'.join(path)}' is {describe(tp)}, not a section with fields; "
                f"set it whole ('{'.'.join(path)}=...')"
            )
    if dataclasses.is_dataclass(tp):
        first = next(iter(_fields(typing.cast(type, tp))))
        raise ValueError(f"'{key}' is a section; set its fields, e.g. '{key}.{first}=...'")
    return tuple(path), tp


def _rebuild(obj: Any, changes: dict[tuple[str, ...], Any]) -> Any:
    """`obj` with the values at `changes`' paths replaced, rebuilding (and validating) each level once."""
    direct: dict[str, Any] = {}
    nested: dict[str, dict[tuple[str, ...], Any]] = {}
    for path, value in changes.items():
        if len(path) == 1:
            direct[path[0]] = value
        else:
            nested.setdefault(path[0], {})[path[1:]] = value
    for name, sub in nested.items():
        current = direct.get(name, getattr(obj, name))
        if isinstance(current, dict):
            direct[name] = {**current, **{p[0]: v for p, v in sub.items()}}
        else:
            direct[name] = _rebuild(current, sub)
    return dataclasses.replace(obj, **direct)
