"""The structure of a request, read with the vocabulary's words: clauses, their arguments, and which
skills could run each one.

The parser does the parts a 135M language model does unreliably (docs/planning.md, "What does the
work"): it splits a request into clauses at sequence connectives ("and then", "after that", ";", ...),
resolves conditionals ("if there is a green ball, ..., otherwise ...") and quantifiers ("every block",
"the red objects") and spatial superlatives ("the leftmost ball") against the scene description, finds
each clause's objects, containers and direction, and lists the skills whose slots those arguments fill
(`Clause.candidates`). Choosing among the candidates (stack or move next to? pick up or touch?) is left
to the planner's language model. Everything here reads the vocabulary; nothing names a suite.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from vla.planning.plan import PlanError, SceneDescription, SkillVocabulary, Step

# Sequence connectives between clauses (order matters: longer phrases first).
_SEPARATORS = re.compile(
    r"\s*(?:[,;.]\s*)?\b(?:and once that is done|and after that|and then|and finally|once that is done|"
    r"after that|afterwards|when done|finally|then|next(?!\s+to\b)|before you|before)\b\s*,?\s*"
    r"|\s*[;.]\s+|\s*,\s*and\s+|\s+and\s+|\s*,\s*"
)
_CONDITION = re.compile(
    r"^(?:if|in case|should|provided that|provided)\s+(?P<cond>[^,;]+)[,;]\s*(?P<rest>.+)$"
)
_ELSE = re.compile(r"\s*[,;.]?\s*\b(?:otherwise|or else|else|if not)\b\s*,?\s*")
_LEADING = re.compile(r"^(?:first|firstly|please)\s*,?\s*")
_GROUP_NOUNS = ("objects", "object", "things", "thing", "ones", "items", "item")


@dataclass(frozen=True)
class Clause:
    """One step of the request, before the skill is chosen.

    Attributes:
        text: the clause, with the verb of the previous clause filled in when it had none
            ("... and the blue ball on the plate" -> "put the blue ball on the plate").
        candidates: the valid steps it could mean, one per skill whose slots its arguments fill.
    """

    text: str
    candidates: tuple[Step, ...]


def _norm(text: str) -> str:
    return " ".join(text.strip().lower().replace("’", "'").split()).rstrip(".!")


def _plural(word: str) -> str:
    return word + ("es" if word.endswith(("s", "x", "ch", "sh")) else "s")


class RequestParser:
    """Parses requests into `Clause`s for one vocabulary (see module doc)."""

    def __init__(self, vocab: SkillVocabulary) -> None:
        self.vocab = vocab
        names = sorted(vocab.objects, key=len, reverse=True)
        self._object_re = re.compile(r"\b(" + "|".join(map(re.escape, names)) + r")\b")
        self._container_re = re.compile(r"\b(" + "|".join(map(re.escape, vocab.containers)) + r")\b")
        phrases = sorted(((p, d) for d, ps in vocab.directions.items() for p in ps), key=lambda x: -len(x[0]))
        self._direction_re = re.compile(r"\b(" + "|".join(re.escape(p) for p, _ in phrases) + r")\b")
        self._direction_of = dict(phrases)
        attrs = sorted({a for parts in vocab.objects.values() for a in parts}, key=len, reverse=True)
        self._attrs = set(attrs)
        alt = "|".join(re.escape(a) + "(?:e?s)?" for a in attrs)
        nouns = "|".join(_GROUP_NOUNS)
        # "every block", "all the blocks", "each red object", "the red objects", "red things"
        self._group_re = re.compile(
            rf"\b(?:(?P<q>every|each|all(?: of)?(?: the)?)\s+)?(?:the\s+)?(?P<a>{alt})(?:\s+(?P<n>{nouns}))?\b"
        )
        # "the leftmost ball", "the ball on the left", "the ball furthest to the right"
        self._spatial_re = re.compile(
            rf"\b(?:the\s+)?(?:(?P<s1>leftmost|rightmost)\s+(?P<a1>{alt})|(?P<a2>{alt})\s+"
            rf"(?:on the|furthest to the|farthest to the|most to the)\s+(?P<s2>left|right))\b"
        )
        self._verbs = {self._stem(v) for s in vocab.skills for v in s.verbs}

    @staticmethod
    def _stem(word: str) -> str:
        return re.sub(r"(?:es|s)$", "", word) if len(word) > 3 else word

    # ------------------------------------------------------------------ public
    def parse(self, request: str, scene: SceneDescription) -> list[Clause]:
        """The request's clauses in execution order.

        Raises:
            PlanError: if the request names nothing the skills act on, uses no skill's verb, names an
                object that is not in the scene, or has a clause whose arguments fit no skill.
        """
        text = _norm(request)
        if ":" in text:
            head, tail = text.split(":", 1)
            if not self._object_re.search(head) and not self._group_re.search(head):
                text = tail.strip()
        text = _LEADING.sub("", text)
        if not text:
            raise PlanError("the request is empty")
        parts, it = self._resolve_condition(text, scene)
        clauses: list[Clause] = []
        verb_phrase = ""
        last_container = ""
        for part in self._merge(parts):
            part = _LEADING.sub("", part)
            if not self._has_verb(part):
                if not verb_phrase:
                    raise PlanError(
                        f"no skill of the policy matches '{part}'; it can: {', '.join(self.vocab.skill_names)}"
                    )
                part = f"{verb_phrase} {part}"
            verb_phrase = self._verb_phrase(part) or verb_phrase
            new, it, last_container = self._clauses(part, scene, it, last_container)
            clauses += new
        if not clauses:
            raise PlanError(f"'{request}' asks for nothing the skills {list(self.vocab.skill_names)} can do")
        if len(clauses) > self.vocab.max_steps:
            raise PlanError(
                f"'{request}' needs {len(clauses)} steps; at most {self.vocab.max_steps} are allowed"
            )
        return clauses

    # ------------------------------------------------------------------ structure
    def _resolve_condition(self, text: str, scene: SceneDescription) -> tuple[list[str], str]:
        """Splits the request into parts, keeping only the conditional branch the scene selects."""
        m = _CONDITION.match(text)
        if m is None:
            return self._split(text), ""
        cond, rest = m.group("cond"), m.group("rest")
        branches = _ELSE.split(rest, maxsplit=1)
        then_parts = self._split(branches[0])
        else_parts = self._split(branches[1]) if len(branches) > 1 else []
        holds = self._condition_holds(cond, scene)
        mentioned = self._object_re.findall(cond)
        it = mentioned[0] if mentioned else ""
        if holds:
            # The then-branch; what follows the else-branch's first clause is the common tail.
            return then_parts + else_parts[1:], it
        if not else_parts:
            return [], it
        return else_parts, it

    def _condition_holds(self, cond: str, scene: SceneDescription) -> bool:
        objects = self._object_re.findall(cond)
        containers = self._container_re.findall(cond)
        rel = re.search(r"\b(left|right) of\b", cond)
        if rel and len(objects) >= 2:
            a, b = (scene.positions.get(o) for o in objects[:2])
            if a is None or b is None:
                raise PlanError(f"the condition '{cond}' needs the positions of {objects[:2]}")
            lx, ly = self.vocab.left
            side = (a[0] - b[0]) * lx + (a[1] - b[1]) * ly
            return side > 0 if rel.group(1) == "left" else side < 0
        if containers and re.search(r"\bempty\b", cond):
            return not scene.contents.get(containers[0])
        if objects:
            present = objects[0] in scene.objects
            return not present if re.search(r"\b(?:no|not|isn't|is not)\b", cond) else present
        raise PlanError(f"cannot check the condition '{cond}' against the scene")

    def _split(self, text: str) -> list[str]:
        return [p.strip() for p in _SEPARATORS.split(text) if p and p.strip()]

    def _mentions_something(self, part: str) -> bool:
        if self._first_mention(part) is not None:
            return True
        pronoun = re.search(r"\b(?:it|them)\b", part) is not None
        return pronoun and bool(self._container_re.search(part) or self._direction_re.search(part))

    def _first_mention(self, part: str) -> int | None:
        """Where the first object, spatial or group mention of `part` starts (None: there is none)."""
        starts = [m.start() for m in (self._object_re.search(part), self._spatial_re.search(part)) if m]
        starts += [m.start() for m in self._group_re.finditer(part) if self._is_group(m)]
        return min(starts) if starts else None

    def _merge(self, parts: list[str]) -> list[str]:
        """Joins parts that name no object ("lift it", "without lifting it") to a neighbour."""
        out: list[str] = []
        pending = ""
        for p in parts:
            if not self._mentions_something(p):
                if out:
                    out[-1] = f"{out[-1]} and {p}"
                else:
                    pending = f"{pending} {p}".strip()
                continue
            out.append(f"{pending}, {p}" if pending else p)
            pending = ""
        if pending and not out:
            out.append(pending)
        return out

    def _has_verb(self, part: str) -> bool:
        return any(self._stem(w) in self._verbs for w in re.findall(r"[a-z']+", part))

    def _verb_phrase(self, part: str) -> str:
        """The words before the first object mention ("put the" of "put the red block in the bowl")."""
        start = self._first_mention(part)
        head = part[:start] if start is not None else ""
        return re.sub(r"\s*\bthe\s*$", "", head).strip()

    def _is_group(self, m: re.Match[str]) -> bool:
        attr = m.group("a")
        base = attr if attr in self._attrs else re.sub(r"e?s$", "", attr)
        if base not in self._attrs:
            return False
        plural = attr != base or (m.group("n") or "").endswith("s")
        return bool(m.group("q")) or (plural and (m.group("n") is not None or attr != base))

    # ------------------------------------------------------------------ arguments
    def _clauses(
        self, part: str, scene: SceneDescription, it: str, last_container: str
    ) -> tuple[list[Clause], str, str]:
        """The clause(s) of one part (a group expands to one clause per member)."""
        work = part
        objects: list[tuple[int, list[str]]] = []  # (position, names); a group has several names
        for m in list(self._spatial_re.finditer(work)):
            attr = m.group("a1") or m.group("a2")
            side = m.group("s1") or m.group("s2")
            objects.append((m.start(), [self._extreme(attr, side.startswith("left"), scene)]))
            work = work[: m.start()] + " " * (m.end() - m.start()) + work[m.end() :]
        for m in self._object_re.finditer(work):
            objects.append((m.start(), [m.group(1)]))
        masked = self._object_re.sub(lambda m: " " * len(m.group(0)), work)
        for m in self._group_re.finditer(masked):
            if self._is_group(m):
                objects.append((m.start(), self._members(m.group("a"), scene)))
        for m in re.finditer(r"\b(?:it|them)\b", masked):
            # "it" is the last object named before this clause, unless the clause named one before it
            # ("grab the red block and lift it").
            if it and not any(pos < m.start() for pos, _ in objects):
                objects.append((m.start(), [it]))
        objects.sort(key=lambda x: x[0])
        containers = self._container_re.findall(work)
        if not containers and re.search(r"\b(?:there|in it|into it)\b", masked) and last_container:
            containers = [last_container]
        directions = [self._direction_of[d] for d in self._direction_re.findall(work)]
        for _, names in objects:
            for n in names:
                if n not in scene.objects:
                    raise PlanError(f"there is no {n} in the scene (objects: {', '.join(scene.objects)})")
        for c in containers:
            if c not in scene.containers:
                raise PlanError(
                    f"there is no {c} in the scene (containers: {', '.join(scene.containers) or 'none'})"
                )
        groups = [names for _, names in objects]
        primary = groups[0] if groups else []
        if not primary:
            raise PlanError(f"'{part}' names no object of the scene")
        rest = [n for g in groups[1:] for n in g]
        out = []
        for name in primary:  # a group: one clause per member, in the scene's canonical order
            args = {"object": [name, *rest], "container": containers[:1], "direction": directions[:1]}
            cands = self._candidates(args)
            if not cands:
                kinds = {k: v for k, v in args.items() if v}
                raise PlanError(
                    f"no skill takes {kinds} ('{part}'); skills: "
                    + ", ".join(f"{s.name}({', '.join(s.slots)})" for s in self.vocab.skills)
                )
            out.append(Clause(part, cands))
        new_it = primary[-1] if len(primary) == 1 else it
        return out, new_it, containers[0] if containers else last_container

    def _members(self, attr: str, scene: SceneDescription) -> list[str]:
        base = attr if attr in self._attrs else re.sub(r"e?s$", "", attr)
        order = list(self.vocab.objects)
        members = [o for o in order if base in self.vocab.objects[o] and o in scene.objects]
        if not members:
            raise PlanError(f"there is no {base} object in the scene (objects: {', '.join(scene.objects)})")
        return members

    def _extreme(self, attr: str, left: bool, scene: SceneDescription) -> str:
        members = self._members(attr, scene)
        if any(m not in scene.positions for m in members):
            raise PlanError(f"'{'leftmost' if left else 'rightmost'} {attr}' needs the objects' positions")
        lx, ly = self.vocab.left
        side = {m: scene.positions[m][0] * lx + scene.positions[m][1] * ly for m in members}
        return max(members, key=side.__getitem__) if left else min(members, key=side.__getitem__)

    def _candidates(self, args: dict[str, list[str]]) -> tuple[Step, ...]:
        """Every skill whose slots take exactly these arguments (objects in mention order)."""
        have = {k: len(v) for k, v in args.items() if v}
        out = []
        for skill in self.vocab.skills:
            need: dict[str, int] = {}
            for kind in skill.signature:
                need[kind] = need.get(kind, 0) + 1
            if need != have:
                continue
            pools = {k: iter(v) for k, v in args.items()}
            values = {slot: next(pools[kind]) for slot, kind in skill.slots.items()}
            objs = [values[s] for s, k in skill.slots.items() if k == "object"]
            if len(set(objs)) == len(objs):
                out.append(Step.of(skill.name, **values))
        return tuple(out)
