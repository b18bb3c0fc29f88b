"""Planners behind an HTTP API: any OpenAI-compatible chat server, and the Anthropic Messages API.

Both send the same prompt (the skills with their slots, the scene, the request, the steps done) and
expect one JSON object back: `{"plan": [{"skill": "put_in", "obj": "red block", "container": "bowl"},
...]}` or `{"error": "why it cannot be done"}`. The reply is parsed strictly and checked by
`validate_plan`: a malformed reply, an unknown skill or an object not in the scene is a `PlanError`,
never an action. Transport: the standard library's urllib (no new dependency), a timeout per request,
retries with exponential backoff on timeouts, connection errors, 429 and 5xx (not on other 4xx), and
a clear `PlannerUnavailableError` when the server cannot be reached (e.g. offline).

Keys come from the environment: `OPENAI_API_KEY` (optional: local servers need none) and
`ANTHROPIC_API_KEY` (required by the Anthropic backend), or another variable named by `api_key_env`.
"""

from __future__ import annotations

import json
import os
import socket
import time
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from vla.planning.base import remaining
from vla.planning.plan import Plan, PlanError, SceneDescription, SkillVocabulary, Step, validate_plan

DEFAULTS = {
    "openai": {"url": "http://127.0.0.1:8080/v1", "model": "gpt-4o-mini", "api_key_env": "OPENAI_API_KEY"},
    "anthropic": {
        "url": "https://api.anthropic.com",
        "model": "claude-3-5-haiku-latest",
        "api_key_env": "ANTHROPIC_API_KEY",
    },
}
ANTHROPIC_VERSION = "2023-06-01"


class PlannerUnavailableError(PlanError):
    """The planner's server could not be reached or kept failing."""


@dataclass(frozen=True)
class RemoteConfig:
    """Where and how to call a remote planner.

    Attributes:
        url: base URL (OpenAI: up to and including `/v1`; Anthropic: the host).
        model: model name sent with each request.
        api_key_env: environment variable holding the key.
        timeout_s: per HTTP request.
        retries: extra attempts after a retryable failure.
        backoff_s: first wait between attempts (doubles each time).
        max_tokens: reply length limit.
    """

    url: str
    model: str
    api_key_env: str
    timeout_s: float = 10.0
    retries: int = 2
    backoff_s: float = 0.5
    max_tokens: int = 512

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"planner url must start with http:// or https://, got '{self.url}'")
        if self.timeout_s <= 0 or self.retries < 0 or self.backoff_s < 0:
            raise ValueError(
                f"need timeout_s > 0, retries >= 0, backoff_s >= 0; got {self.timeout_s}, {self.retries}, "
                f"{self.backoff_s}"
            )

    @classmethod
    def for_backend(cls, backend: str, **opts: Any) -> RemoteConfig:
        """The backend's defaults (`DEFAULTS`) with `opts` (url, model, timeout_s, ...) over them."""
        known = {"url", "model", "api_key_env", "timeout_s", "retries", "backoff_s", "max_tokens"}
        values = {**DEFAULTS[backend], **{k: v for k, v in opts.items() if k in known}}
        return cls(**values)


def system_prompt(vocab: SkillVocabulary) -> str:
    """What the model is told about the skills and the reply format."""
    skills = "\n".join(
        f"- {s.name}: " + ", ".join(f"{slot} ({kind})" for slot, kind in s.slots.items())
        for s in vocab.skills
    )
    return (
        "You plan for a robot arm. Turn the user's request into a sequence of skill calls.\n"
        f"Skills and their slots:\n{skills}\n"
        f"Directions: {', '.join(vocab.directions)}. Use only objects and containers listed in the scene, "
        f"spelled exactly as listed. At most {vocab.max_steps} steps.\n"
        'Reply with one JSON object and nothing else: {"plan": [{"skill": "...", "<slot>": "<value>", ...}, ...]}'
        ', or {"error": "<why>"} if the request cannot be done with these skills in this scene.'
    )


def user_prompt(instruction: str, scene: SceneDescription, done: Plan) -> str:
    lines = [f"Scene: {json.dumps(scene.to_json())}", f"Request: {instruction}"]
    if done:
        lines.append(f"Already done (plan only what is left): {json.dumps([s.to_json() for s in done])}")
    return "\n".join(lines)


def parse_reply(text: str, vocab: SkillVocabulary, scene: SceneDescription) -> Plan:
    """The plan in a model's reply text (a JSON object, optionally inside a ``` fence).

    Raises:
        PlanError: on anything but a valid plan, including the model's own refusal.
    """
    body = text.strip()
    if body.startswith("```"):
        body = body.strip("`").removeprefix("json").strip()
    start, end = body.find("{"), body.rfind("}")
    if start < 0 or end < start:
        raise PlanError(f"the planner's reply holds no JSON object: {text[:200]!r}")
    try:
        data = json.loads(body[start : end + 1])
    except json.JSONDecodeError as e:
        raise PlanError(f"the planner's reply is not valid JSON ({e}): {text[:200]!r}") from e
    if not isinstance(data, dict):
        raise PlanError(f"the planner's reply must be a JSON object, got {type(data).__name__}")
    if "error" in data and "plan" not in data:
        raise PlanError(f"the planner refused: {data['error']}")
    steps = data.get("plan")
    if not isinstance(steps, list):
        raise PlanError(f"the planner's reply has no 'plan' list: {text[:200]!r}")
    return validate_plan(tuple(Step.from_json(s) for s in steps), vocab, scene)


def post_json(
    url: str, body: dict[str, Any], headers: dict[str, str], config: RemoteConfig
) -> dict[str, Any]:
    """POSTs `body` as JSON and returns the decoded JSON reply, retrying what can be retried.

    Raises:
        PlannerUnavailableError: the server could not be reached, timed out or kept failing.
        PlanError: a non-retryable HTTP error (e.g. 401) or a reply that is not JSON.
    """
    data = json.dumps(body).encode()
    last = ""
    for attempt in range(config.retries + 1):
        if attempt:
            time.sleep(config.backoff_s * 2 ** (attempt - 1))
        request = urllib.request.Request(
            url, data=data, headers={"Content-Type": "application/json", **headers}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=config.timeout_s) as response:
                raw = response.read()
        except urllib.error.HTTPError as e:
            detail = e.read()[:300].decode(errors="replace")
            if e.code == 429 or e.code >= 500:
                last = f"HTTP {e.code}: {detail}"
                continue
            raise PlanError(f"the planner at {url} answered HTTP {e.code}: {detail}") from e
        except TimeoutError:
            last = f"no reply within {config.timeout_s} s"
            continue
        except urllib.error.URLError as e:
            if isinstance(e.reason, TimeoutError | socket.timeout):
                last = f"no reply within {config.timeout_s} s"
            else:
                last = f"cannot connect ({e.reason})"
            continue
        except (ConnectionError, OSError) as e:
            last = f"connection failed ({e})"
            continue
        try:
            reply = json.loads(raw)
        except json.JSONDecodeError as e:
            raise PlanError(f"the planner at {url} sent a reply that is not JSON: {raw[:200]!r}") from e
        if not isinstance(reply, dict):
            raise PlanError(f"the planner at {url} sent {type(reply).__name__}, expected a JSON object")
        return reply
    raise PlannerUnavailableError(
        f"the planner at {url} is unavailable after {config.retries + 1} attempts: {last} "
        "(offline? use the offline planner: --planner smollm2)"
    )


class _RemotePlanner(ABC):
    """What both HTTP planners share: prompts, reply checks, re-planning."""

    name = "remote"

    def __init__(self, vocab: SkillVocabulary, config: RemoteConfig) -> None:
        self.vocab = vocab
        self.config = config
        self.last_latency_s = 0.0

    def _key(self, *, required: bool) -> str:
        key = os.environ.get(self.config.api_key_env, "")
        if required and not key:
            raise PlanError(
                f"the {self.name} planner needs an API key in the environment variable {self.config.api_key_env}"
            )
        return key

    @abstractmethod
    def _complete(self, system: str, user: str) -> str:
        """The model's reply text to one system + user prompt (each API sends them its own way)."""

    def plan(self, instruction: str, scene: SceneDescription, *, done: Plan = ()) -> Plan:
        """Asks the server for the plan of `instruction` in `scene` (less `done`); raises PlanError."""
        t0 = time.perf_counter()
        try:
            text = self._complete(system_prompt(self.vocab), user_prompt(instruction, scene, done))
            plan = parse_reply(text, self.vocab, scene)
            return remaining(plan, done, self.vocab, scene) if done else plan
        finally:
            self.last_latency_s = time.perf_counter() - t0


class OpenAIPlanner(_RemotePlanner):
    """POST {url}/chat/completions (OpenAI, llama.cpp server, vLLM, Ollama's /v1, ...)."""

    name = "openai"

    def _complete(self, system: str, user: str) -> str:
        key = self._key(required=False)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        body = {
            "model": self.config.model,
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
            "temperature": 0,
            "max_tokens": self.config.max_tokens,
        }
        reply = post_json(self.config.url.rstrip("/") + "/chat/completions", body, headers, self.config)
        try:
            content = reply["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError) as e:
            raise PlanError(
                f"malformed chat completion (no choices[0].message.content): {str(reply)[:200]}"
            ) from e
        if not isinstance(content, str):
            raise PlanError(f"malformed chat completion: content is {type(content).__name__}")
        return content


class AnthropicPlanner(_RemotePlanner):
    """POST {url}/v1/messages (the Anthropic Messages API)."""

    name = "anthropic"

    def _complete(self, system: str, user: str) -> str:
        headers = {"x-api-key": self._key(required=True), "anthropic-version": ANTHROPIC_VERSION}
        body = {
            "model": self.config.model,
            "max_tokens": self.config.max_tokens,
            "system": system,
            "messages": [{"role": "user", "content": user}],
            "temperature": 0,
        }
        reply = post_json(self.config.url.rstrip("/") + "/v1/messages", body, headers, self.config)
        try:
            texts = [b["text"] for b in reply["content"] if b.get("type") == "text"]
        except (KeyError, TypeError, AttributeError) as e:
            raise PlanError(f"malformed Messages reply (no content blocks): {str(reply)[:200]}") from e
        if not texts or not all(isinstance(t, str) for t in texts):
            raise PlanError(f"the Messages reply has no text block: {str(reply)[:200]}")
        return "".join(texts)
