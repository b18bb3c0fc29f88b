"""The narrow interface between simulators and everything else (collectors, evaluators, servers).

Any simulator that offers this interface can be recorded, trained on and evaluated; nothing else in vla
knows which simulator it talks to. It follows gymnasium: `reset(seed=...)` returns `(obs, info)` and
`step(action)` returns `(obs, reward, terminated, truncated, info)`.

Observation dict of every env (single step, no batch axis):
    obs["images"]: dict camera name -> uint8 [Hi, Wi, 3]
    obs["state"]: float32 [S], laid out by `env.embodiment.state_fields`
    obs["instruction"]: str
Info dict: info["success"] (bool) always; info["family"] (task family name) when the suite has families;
info["failure"] (str), when an env ends an episode as a failure for a reason of its own (e.g. "fall"),
which the evaluator counts by reason.

Declared extras (`vla.features`): a suite lists the features its envs provide in `features`; an env
writes each episode feature into `env.episode_meta[name]` (and the reset `info[name]`, with
`name + "_mask"` beside a masked one). Optional suite methods, looked up by name so a suite without
them needs nothing: `paraphrase(instruction, rng) -> str` (language augmentation in training) and,
for `vla collect-grounding`, `GroundingSuite`.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import pkgutil
import threading
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import numpy as np

from vla.features import Feature
from vla.registry import lookup
from vla.spaces import Embodiment

ObsDict = dict[str, Any]


@runtime_checkable
class Env(Protocol):
    """One episode-based task environment (gymnasium-style)."""

    embodiment: Embodiment
    max_steps: int

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[ObsDict, dict]: ...

    def step(self, action: np.ndarray) -> tuple[ObsDict, float, bool, bool, dict[str, Any]]: ...

    def close(self) -> None: ...


class Expert(Protocol):
    """A scripted demonstrator for one env; it may read privileged simulator state."""

    def reset(self) -> None: ...

    def act(self, obs: ObsDict) -> np.ndarray: ...


class Suite(Protocol):
    """A family of related envs (the built-in ones are under `vla.envs`), with splits for generalization tests."""

    name: str
    families: tuple[str, ...]
    splits: tuple[str, ...]

    def make(self, family: str, *, split: str = "train", **kwargs: Any) -> Env: ...

    def expert(self, env: Env) -> Expert: ...

    def embodiment(self, image_size: tuple[int, int] = (96, 96)) -> Embodiment:
        """The robot its envs share (benchmarks and tools build policies for it without an env)."""
        ...


@runtime_checkable
class GroundingSuite(Protocol):
    """A suite that can label views of its scenes with one of its features (`vla collect-grounding`)."""

    grounding_feature: Feature

    def grounding_scenes(
        self, seeds: list[int], *, family_of: list[str], views: int, split: str, image_size: tuple[int, int]
    ) -> dict[str, Any]: ...


@runtime_checkable
class PresenceSuite(Protocol):
    """A suite that can label which attribute each pixel of its scene camera shows (`vla models presence`).

    `presence_declaration()` returns {"groups": {group: values}, "local": groups one pixel shows,
    "objects": {name: one value per group}, "camera": name, "absent_candidates": the names a scene of
    the `train` split can lack}; `presence_views` renders first frames with "images" uint8
    [N, H, W, 3], "maps" int16 [N, groups, H, W] (0 = no object) and "objects" (names per view).
    """

    def presence_declaration(self) -> dict[str, Any]: ...

    def presence_views(
        self, seeds: list[int], *, family_of: list[str], split: str, image_size: tuple[int, int]
    ) -> dict[str, Any]: ...


@runtime_checkable
class LabellingSuite(Protocol):
    """A suite whose experts can act from any state another actor reached (`vla dagger` asks them).

    `labeller(env)` returns an expert that follows the scene as it is instead of its own script's
    schedule; its `label` (or its action) is the label of every state visited.
    """

    def labeller(self, env: Env) -> Expert: ...


_SUITES: dict[str, Callable[[], Suite]] = {}
# The suite commands and configs use when none is named.
DEFAULT_SUITE = "tabletop"


def suite_features(suite: Any) -> tuple[Feature, ...]:
    """The features `suite` declares (none when it declares nothing)."""
    return tuple(getattr(suite, "features", ()) or ())


def option_families(suite: Any, env_options: tuple[tuple[str, Any], ...] = ()) -> tuple[str, ...]:
    """The families `suite.make(..., **env_options)` accepts: the suite's optional
    `families_for(**env_options)` (e.g. tabletop's families per robot), else `suite.families`."""
    fn = getattr(suite, "families_for", None)
    if env_options and callable(fn):
        return tuple(fn(**dict(env_options)))
    return tuple(suite.families)


def embodiment_options(suite: Any, embodiment_name: str) -> tuple[tuple[str, Any], ...]:
    """The `make` options of `suite` whose envs the named embodiment drives: the suite's optional
    `env_options_for(name)` (e.g. tabletop's robot per embodiment), else none (one robot)."""
    fn = getattr(suite, "env_options_for", None)
    return tuple(fn(embodiment_name)) if callable(fn) else ()


def resolve_families(
    suite: Any,
    *,
    families: tuple[str, ...] | list[str] = (),
    benchmark: str = "",
    env_options: tuple[tuple[str, Any], ...] = (),
) -> tuple[str, ...]:
    """The families a command runs: `families` if given, else the suite's `benchmark` (a name from its
    optional `benchmarks` mapping, e.g. Meta-World's "mt10"), else all of them (`option_families` of
    `env_options`). Unknown names raise a KeyError with a did-you-mean."""
    if benchmark:
        declared: dict[str, tuple[str, ...]] = dict(getattr(suite, "benchmarks", {}) or {})
        if not declared:
            raise KeyError(f"suite '{suite.name}' declares no benchmarks; run its families with --families")
        chosen = tuple(lookup(declared, benchmark.lower(), kind=f"{suite.name} benchmark"))
        if families:
            outside = [f for f in families if f not in chosen]
            if outside:
                raise KeyError(
                    f"families {outside} are not in benchmark '{benchmark}' of suite '{suite.name}'"
                )
            return tuple(families)
        return chosen
    known = option_families(suite, env_options)
    for f in families:
        lookup({k: k for k in known}, f, kind=f"{suite.name} family")
    return tuple(families) or known


def family_groups(suite: Any) -> dict[str, str]:
    """family -> group name from the suite's optional `family_groups` (e.g. Meta-World's difficulty)."""
    return dict(getattr(suite, "family_groups", {}) or {})


def suite_paraphraser(suite_name: str) -> Callable[[str, Any], str] | None:
    """The registered suite's `paraphrase(instruction, rng)`, or None (unknown suite or none offered)."""
    _load_builtin()
    if suite_name not in _SUITES:
        return None
    fn = getattr(_SUITES[suite_name](), "paraphrase", None)
    return fn if callable(fn) else None


_BUILTIN: set[str] = set()  # names registered while the built-in suites and entry points loaded


def register_suite(name: str, factory: Callable[[], Suite]) -> None:
    """Makes a suite available by name; `factory` is called lazily (imports stay cheap). A suite
    registered after the built-ins were loaded (a script's or a test's own) is handed to rollout
    worker processes too, so its factory must then be picklable (a module-level class or function)."""
    _SUITES[name] = factory


def runtime_suites() -> dict[str, Callable[[], Suite]]:
    """The suites registered at run time (see `register_suite`), for worker processes."""
    _load_builtin()
    return {n: f for n, f in sorted(_SUITES.items()) if n not in _BUILTIN}


def list_suites() -> list[str]:
    _load_builtin()
    return sorted(_SUITES)


def get_suite(name: str) -> Suite:
    """Returns the suite called `name`, with a did-you-mean on a typo."""
    _load_builtin()
    return lookup(_SUITES, name, kind="suite")()


ENTRY_POINT_GROUP = "vla.suites"
_LOADED: list[bool] = []  # set once every built-in suite has registered
_LOADING: list[bool] = []  # set while they register (a suite package's import may ask for a suite)
# A rollout worker runs several environment lanes as threads, and each asks for its suite at once:
# without the lock, the second thread saw "loading started" and looked up an empty registry.
_LOAD_LOCK = threading.RLock()


def _load_builtin() -> None:
    """Registers every suite once: each sub-package of `vla.envs` (a new suite is a new folder there,
    no edit here) and each installed package's `vla.suites` entry point (name -> factory), so a suite
    can also ship as a package of its own. Suite packages register on import and keep that import
    light (heavy modules load when the suite is built). Thread-safe: other threads wait for the load."""
    if _LOADED:
        return
    with _LOAD_LOCK:
        if _LOADED or _LOADING:
            return
        _LOADING.append(True)
        try:
            _register_builtin()
        finally:
            _LOADING.clear()
        _LOADED.append(True)


def _register_builtin() -> None:
    import vla.envs

    before = set(_SUITES)
    for info in pkgutil.iter_modules(vla.envs.__path__):
        if info.ispkg:
            importlib.import_module(f"vla.envs.{info.name}")
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name not in _SUITES:
            _SUITES[ep.name] = _lazy(ep)
    _BUILTIN.update(set(_SUITES) - before)


def _lazy(ep: importlib.metadata.EntryPoint) -> Callable[[], Suite]:
    def factory() -> Suite:
        return ep.load()()

    return factory
