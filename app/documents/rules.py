"""Access-rule expressions (issue 21): parsed, never evaluated as code; checked when a
collection declares them; compiled for each caller into a MongoDB filter.

    owner == @user || @user in shared.read || team in @user.teams
    data.status == "published" || @team.role in ["owner", "admin"]

The database applies the filter, so lists, counts and keyset pages of a rule-limited
collection stay index-friendly (`owner`, `team`, `shared.read` take ordinary indexes).
`matches(filter, raw)` applies the same filter to one stored document (realtime events,
a document just read), with MongoDB's semantics for the operators compiled here, so a
rule means one thing wherever it is enforced.

Operands: document fields (`id`, `owner`, `team`, `shared.read`, `shared.write`,
`version`, `created_at`, `updated_at`, `data.<path>`), JSON literals (strings, numbers,
`true`, `false`, `null`) and lists of them, and the caller: `@user` (their id),
`@user.role`, `@user.teams` (ids of their teams), `@team.role` (their role in the
document's team). Operators: `==`, `!=`, `<`, `<=`, `>`, `>=`, `in`, `&&`, `||`, `!`,
parentheses. `@user in shared.read` holds when the user, or one of their teams, is in
the list. For an anonymous caller every condition on `@user` or `@team` is false.
"""

from __future__ import annotations

import json
import math
import operator as operator_module
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

MAX_RULE_LENGTH = 1000
MAX_NODES = 200
MAX_DEPTH = 32
MAX_LIST = 100
# Matches nothing, through the _id index.
NOTHING: dict[str, Any] = {"_id": {"$in": []}}

FIELDS = {
    "id": "_id",
    "owner": "owner",
    "team": "team",
    "shared.read": "shared.read",
    "shared.write": "shared.write",
    "version": "version",
    "created_at": "created_at",
    "updated_at": "updated_at",
}
CONTEXT = ("@user", "@user.role", "@user.teams", "@team.role")
_SEGMENT = r"[A-Za-z_][A-Za-z0-9_]*"
_TOKEN = re.compile(
    rf"""
    (?P<space>\s+)
  | (?P<op>\|\||&&|==|!=|<=|>=|<|>|!|\(|\)|\[|\]|,)
  | (?P<string>"(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{{4}})*")
  | (?P<number>-?(?:0|[1-9][0-9]{{0,15}})(?:\.[0-9]{{1,15}})?(?:[eE][+-]?[0-9]{{1,3}})?)
  | (?P<context>@{_SEGMENT}(?:\.{_SEGMENT})?)
  | (?P<name>{_SEGMENT}(?:\.{_SEGMENT}){{0,15}})
    """,
    re.VERBOSE,
)
Comparison = Literal["==", "!=", "<", "<=", ">", ">=", "in"]
_FLIPPED: dict[str, Comparison] = {
    "==": "==",
    "!=": "!=",
    "<": ">",
    "<=": ">=",
    ">": "<",
    ">=": "<=",
}
_ORDER = {"<": "$lt", "<=": "$lte", ">": "$gt", ">=": "$gte"}


class RuleError(ValueError):
    """A rule that cannot be declared; `position` is the character where it went wrong."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(f"{message} (at character {position + 1})")
        self.position = position


# -- the syntax tree ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FieldRef:
    path: str  # as stored: "_id", "owner", "data.status"


@dataclass(frozen=True, slots=True)
class ContextRef:
    name: str  # one of CONTEXT


@dataclass(frozen=True, slots=True)
class Value:
    value: Any  # a JSON scalar, or a tuple of them


Operand = FieldRef | ContextRef | Value


@dataclass(frozen=True, slots=True)
class Compare:
    left: Operand
    op: Comparison
    right: Operand


@dataclass(frozen=True, slots=True)
class Constant:
    value: bool


@dataclass(frozen=True, slots=True)
class Not:
    part: Rule


@dataclass(frozen=True, slots=True)
class All:
    parts: tuple[Rule, ...]


@dataclass(frozen=True, slots=True)
class Any_:
    parts: tuple[Rule, ...]


Rule = Compare | Constant | Not | All | Any_


# -- parsing --------------------------------------------------------------------------------


@dataclass
class _Token:
    kind: str
    text: str
    position: int


def _tokens(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise RuleError(f"unexpected {text[position]!r}", position)
        kind = match.lastgroup or ""
        if kind != "space":
            tokens.append(_Token(kind, match.group(), position))
        position = match.end()
    tokens.append(_Token("end", "", len(text)))
    return tokens


@dataclass
class _Parser:
    tokens: list[_Token]
    index: int = 0
    nodes: int = 0
    seen: list[str] = field(default_factory=list)

    def peek(self) -> _Token:
        return self.tokens[self.index]

    def take(self, text: str | None = None) -> _Token:
        token = self.tokens[self.index]
        if text is not None and token.text != text:
            shown = repr(token.text) if token.text else "the end"
            raise RuleError(f"expected {text!r}, found {shown}", token.position)
        self.index += 1
        return token

    def count(self, position: int, depth: int) -> None:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise RuleError(f"a rule has at most {MAX_NODES} parts", position)
        if depth > MAX_DEPTH:
            raise RuleError(f"a rule nests at most {MAX_DEPTH} deep", position)

    def rule(self, depth: int) -> Rule:
        parts = [self.conjunction(depth + 1)]
        while self.peek().text == "||":
            self.take()
            parts.append(self.conjunction(depth + 1))
        return parts[0] if len(parts) == 1 else Any_(tuple(parts))

    def conjunction(self, depth: int) -> Rule:
        parts = [self.unary(depth + 1)]
        while self.peek().text == "&&":
            self.take()
            parts.append(self.unary(depth + 1))
        return parts[0] if len(parts) == 1 else All(tuple(parts))

    def unary(self, depth: int) -> Rule:
        token = self.peek()
        self.count(token.position, depth)
        if token.text == "!":
            self.take()
            return Not(self.unary(depth + 1))
        if token.text == "(":
            self.take()
            inner = self.rule(depth + 1)
            self.take(")")
            return inner
        if token.kind == "name" and token.text in ("true", "false"):
            following = self.tokens[self.index + 1]
            if following.kind != "op" or following.text in ("&&", "||", ")"):
                self.take()
                return Constant(token.text == "true")
        return self.comparison(depth)

    def comparison(self, depth: int) -> Compare:
        start = self.peek().position
        left = self.operand(depth)
        token = self.peek()
        if token.text not in ("==", "!=", "<", "<=", ">", ">=") and token.text != "in":
            shown = repr(token.text) if token.text else "the end"
            raise RuleError(
                f"expected a comparison (==, !=, <, in ...), found {shown}", token.position
            )
        self.take()
        op: Comparison = token.text  # type: ignore[assignment]
        right = self.operand(depth)
        return _checked(Compare(left, op, right), start)

    def operand(self, depth: int) -> Operand:
        token = self.take()
        self.count(token.position, depth)
        if token.kind == "context":
            if token.text not in CONTEXT:
                raise RuleError(
                    f"unknown {token.text}; the caller is {', '.join(CONTEXT)}", token.position
                )
            return ContextRef(token.text)
        if token.kind in ("string", "number"):
            return Value(_scalar(token))
        if token.kind == "name":
            if token.text in ("true", "false", "null"):
                return Value({"true": True, "false": False, "null": None}[token.text])
            if token.text == "in":
                raise RuleError("expected a value or a field, found 'in'", token.position)
            return FieldRef(_field(token))
        if token.text == "[":
            return Value(self.values(token.position, depth))
        shown = repr(token.text) if token.text else "the end"
        raise RuleError(f"expected a value, a field or @user, found {shown}", token.position)

    def values(self, position: int, depth: int) -> tuple[Any, ...]:
        items: list[Any] = []
        if self.peek().text == "]":
            self.take()
            return ()
        while True:
            token = self.take()
            self.count(token.position, depth + 1)
            if token.kind in ("string", "number"):
                items.append(_scalar(token))
            elif token.kind == "name" and token.text in ("true", "false", "null"):
                items.append({"true": True, "false": False, "null": None}[token.text])
            else:
                raise RuleError(
                    "a list holds only strings, numbers, true, false, null", token.position
                )
            if len(items) > MAX_LIST:
                raise RuleError(f"a list holds at most {MAX_LIST} values", position)
            if self.peek().text == "]":
                self.take()
                return tuple(items)
            self.take(",")


def _scalar(token: _Token) -> Any:
    try:
        value = json.loads(token.text)
    except ValueError:
        raise RuleError(f"{token.text} is not a JSON value", token.position) from None
    if isinstance(value, float) and not math.isfinite(value):
        raise RuleError(f"{token.text} is not a finite number", token.position)
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate (\ud800): no BSON string holds it
            raise RuleError(f"{token.text} is not valid text", token.position) from None
    return value


def _field(token: _Token) -> str:
    name = token.text
    if name in FIELDS:
        return FIELDS[name]
    if name.startswith("data.") and len(name) > 5:
        return name
    known = ", ".join([*FIELDS, "data.<path>"])
    raise RuleError(f"unknown field {name!r}; rules may use {known}", token.position)


def _checked(node: Compare, position: int) -> Compare:
    """Refuse comparisons that cannot mean anything useful, at declaration."""
    left, op, right = node.left, node.op, node.right
    kinds = (type(left).__name__, type(right).__name__)
    if kinds == ("Value", "Value"):
        raise RuleError("this compares two constants; write true or false", position)
    if kinds == ("FieldRef", "FieldRef"):
        raise RuleError(
            "rules compare a field with a value or the caller, not two fields", position
        )
    if kinds == ("ContextRef", "ContextRef"):
        raise RuleError("this compares the caller with itself", position)
    for side in (left, right):
        if isinstance(side, Value) and isinstance(side.value, tuple) and op != "in":
            raise RuleError("a list is only compared with 'in'", position)
    if op == "in" and isinstance(left, Value) and isinstance(left.value, tuple):
        raise RuleError("a list goes on the right of 'in'", position)
    if op == "in" and isinstance(right, Value) and not isinstance(right.value, tuple):
        raise RuleError("the right of 'in' is a list, a field or @user.teams", position)
    if op == "in" and isinstance(right, ContextRef) and right != ContextRef("@user.teams"):
        raise RuleError("the right of 'in' is a list, a field or @user.teams", position)
    if ContextRef("@team.role") == right or (
        ContextRef("@team.role") == left and not isinstance(right, Value)
    ):
        raise RuleError("@team.role goes on the left, compared with a role or a list", position)
    if op in _ORDER and any(isinstance(s, ContextRef) for s in (left, right)):
        raise RuleError(f"{op} compares a field with a number or a string", position)
    teams = ContextRef("@user.teams")
    if teams == left or (teams == right and op != "in"):
        raise RuleError("@user.teams is used as `<field or value> in @user.teams`", position)
    return node


def parse(text: str) -> Rule:
    """The rule `text` means, or RuleError saying where and why it cannot be one."""
    if not isinstance(text, str) or not text.strip():
        raise RuleError("a rule is a non-empty string", 0)
    if len(text) > MAX_RULE_LENGTH:
        raise RuleError(f"a rule is at most {MAX_RULE_LENGTH} characters", MAX_RULE_LENGTH)
    parser = _Parser(_tokens(text))
    node = parser.rule(0)
    end = parser.peek()
    if end.kind != "end":
        raise RuleError(f"unexpected {end.text!r} after a complete rule", end.position)
    return node


# -- compiling for a caller -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Caller:
    """What a rule may know of the caller: None `id` for anonymous callers."""

    id: str | None
    role: str | None = None
    teams: Mapping[str, str] = field(default_factory=dict)  # team id -> their role in it


Compiled = dict[str, Any] | bool


def compile_rule(rule: Rule, caller: Caller) -> dict[str, Any]:
    """The MongoDB filter selecting the documents `rule` allows `caller`."""
    compiled = _compile(rule, caller)
    if compiled is True:
        return {}
    if compiled is False:
        return dict(NOTHING)
    return compiled


def _compile(rule: Rule, caller: Caller) -> Compiled:
    if isinstance(rule, Constant):
        return rule.value
    if isinstance(rule, Not):
        inner = _compile(rule.part, caller)
        return (not inner) if isinstance(inner, bool) else {"$nor": [inner]}
    if isinstance(rule, All):
        parts: list[dict[str, Any]] = []
        for part in rule.parts:
            compiled = _compile(part, caller)
            if compiled is False:
                return False
            if compiled is not True:
                parts.append(compiled)
        return True if not parts else parts[0] if len(parts) == 1 else {"$and": parts}
    if isinstance(rule, Any_):
        parts = []
        for part in rule.parts:
            compiled = _compile(part, caller)
            if compiled is True:
                return True
            if compiled is not False:
                parts.append(compiled)
        return False if not parts else parts[0] if len(parts) == 1 else {"$or": parts}
    return _comparison(rule, caller)


def _context(ref: ContextRef, caller: Caller) -> Any:
    if ref.name == "@user":
        return caller.id
    if ref.name == "@user.role":
        return caller.role
    return tuple(sorted(caller.teams))  # @user.teams, in a stable order


def _comparison(node: Compare, caller: Caller) -> Compiled:
    left, op, right = node.left, node.op, node.right
    if isinstance(left, (Value, ContextRef)) and isinstance(right, FieldRef) and op != "in":
        left, op, right = right, _FLIPPED[op], left  # the field on the left
    anonymous = caller.id is None
    # @team.role: the documents whose team is one where the caller's role fits.
    if ContextRef("@team.role") in (left, right):
        if anonymous:
            return False
        value = right.value if isinstance(right, Value) else left.value  # type: ignore[union-attr]
        wanted = set(value) if isinstance(value, tuple) else {value}
        fits = [team for team, role in caller.teams.items() if (role in wanted) == (op != "!=")]
        return {"team": {"$in": sorted(fits)}} if fits else False
    if isinstance(left, FieldRef):
        if isinstance(right, Value):
            return _field_filter(left.path, op, right.value)
        assert isinstance(right, ContextRef)
        if anonymous:
            return False
        return _field_filter(left.path, op, _context(right, caller))
    if isinstance(right, FieldRef):  # <value or caller> in <field>: the array holds it
        if isinstance(left, Value):
            return {right.path: left.value}
        assert isinstance(left, ContextRef)
        if anonymous:
            return False
        if left.name == "@user":
            return {right.path: {"$in": [caller.id, *sorted(caller.teams)]}}
        return {right.path: _context(left, caller)}
    # The caller against constants: decided now.
    if anonymous:
        return False
    mine = _context(left, caller) if isinstance(left, ContextRef) else left.value
    theirs = _context(right, caller) if isinstance(right, ContextRef) else right.value
    if op == "in":
        return mine in theirs
    return same_value(mine, theirs) if op == "==" else not same_value(mine, theirs)


def _field_filter(path: str, op: Comparison, value: Any) -> dict[str, Any]:
    if op == "==":
        return {path: value}
    if op == "!=":
        return {path: {"$ne": value}}
    if op == "in":
        return {path: {"$in": list(value)}}
    return {path: {_ORDER[op]: value}}


# -- one document ---------------------------------------------------------------------------


def matches(query: Mapping[str, Any], raw: Mapping[str, Any]) -> bool:
    """Whether the stored document `raw` matches a filter made by `compile_rule`, with
    MongoDB's meaning for the operators used there."""
    for key, condition in query.items():
        if key == "$and":
            if not all(matches(part, raw) for part in condition):
                return False
        elif key == "$or":
            if not any(matches(part, raw) for part in condition):
                return False
        elif key == "$nor":
            if any(matches(part, raw) for part in condition):
                return False
        elif not _holds(_values_at(raw, key), condition):
            return False
    return True


_MISSING = object()


def _values_at(raw: Mapping[str, Any], path: str) -> list[Any]:
    """The values a path reaches; arrays on the way are walked, as MongoDB does."""
    current: list[Any] = [raw]
    for segment in path.split("."):
        following: list[Any] = []
        for value in current:
            if isinstance(value, Mapping):
                following.append(value.get(segment, _MISSING))
            elif isinstance(value, list):
                following.extend(v.get(segment, _MISSING) for v in value if isinstance(v, Mapping))
        current = following
    return current or [_MISSING]


def _holds(values: Sequence[Any], condition: Any) -> bool:
    if isinstance(condition, Mapping) and condition and all(k.startswith("$") for k in condition):
        for operator, operand in condition.items():
            if operator == "$ne":
                if _equals_any(values, operand):
                    return False
            elif operator == "$in":
                if not any(_equals_any(values, option) for option in operand):
                    return False
            elif not any(_ordered(v, operator, operand) for v in _elements(values)):
                return False
        return True
    return _equals_any(values, condition)


def _elements(values: Sequence[Any]) -> list[Any]:
    out: list[Any] = []
    for value in values:
        out.extend(value if isinstance(value, list) else [value])
    return out


def _equals_any(values: Sequence[Any], wanted: Any) -> bool:
    """MongoDB equality: an array matches when it or one of its elements is the value;
    null matches a missing field too."""
    for value in values:
        if value is _MISSING:
            if wanted is None:
                return True
            continue
        if same_value(value, wanted):
            return True
        if isinstance(value, list) and any(same_value(v, wanted) for v in value):
            return True
    return False


def same_value(a: Any, b: Any) -> bool:
    """Equal as the database compares JSON values: `true` is not `1` (Python says it is),
    `1` is `1.0`; through lists and objects."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def _ordered(value: Any, operator: str, operand: Any) -> bool:
    """$lt and friends compare within one type bracket (numbers, strings, dates)."""
    if isinstance(value, bool) or isinstance(operand, bool):
        return False
    numbers = isinstance(value, (int, float)) and isinstance(operand, (int, float))
    same = numbers or (type(value) is type(operand) and isinstance(value, (str, datetime)))
    if not same:
        return False
    compare: dict[str, Callable[[Any, Any], bool]] = {
        "$lt": operator_module.lt,
        "$lte": operator_module.le,
        "$gt": operator_module.gt,
        "$gte": operator_module.ge,
    }
    return bool(compare[operator](value, operand))
