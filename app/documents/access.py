"""Who may read and write which documents of a collection, and which of their fields:
pure decisions, no I/O.

A collection's access is a preset per direction (read: public/authenticated/owner; write:
owner/authenticated/admin) plus optional rule expressions per action (`list`, `read`,
`create`, `update`, `delete`) and per field (app/documents/rules.py). Presets are rules
too (`owner == @user`...), so every path asks one question: the filter this caller's
rule compiles to. Site admins pass every rule, as with the presets.

`Policy` is a declaration's rules, parsed once; `Gate` is one caller in front of one
collection: the filters the database applies (lists, counts, bulk changes) and the same
filters applied to one stored document (`rules.matches`: a document just read, a
realtime event, a new document about to be created).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from app.accounts.principal import Principal
from app.bounded import put_bounded
from app.collections.models import CollectionSpec, ReadAccess, WriteAccess
from app.documents import rules
from app.documents.models import StoredDocument
from app.errors import ErrorCode, Forbidden, NotFound, Unauthorized

Action = Literal["list", "read", "create", "update", "delete"]

_READ_PRESETS = {
    ReadAccess.PUBLIC: "true",
    ReadAccess.AUTHENTICATED: "@user != null",
    ReadAccess.OWNER: "owner == @user",
}
_WRITE_PRESETS = {
    WriteAccess.OWNER: ("@user != null", "owner == @user"),  # (create, change)
    WriteAccess.AUTHENTICATED: ("@user != null", "@user != null"),
    WriteAccess.ADMIN: ("false", "false"),
}


def sign_in_first() -> Unauthorized:
    return Unauthorized(
        "Sign in first: send 'Authorization: Bearer <access token>'",
        code=ErrorCode.NOT_AUTHENTICATED,
    )


def document_not_found(collection: str, doc_id: str) -> NotFound:
    return NotFound(
        f"Document {collection}/{doc_id} does not exist", code=ErrorCode.DOCUMENT_NOT_FOUND
    )


def both(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """A filter requiring `a` and `b` (merged when they name different keys)."""
    if not a or not b:
        return dict(a or b)
    if a.keys().isdisjoint(b.keys()):
        return {**a, **b}
    return {"$and": [dict(a), dict(b)]}


def _uses_teams(rule: rules.Rule) -> bool:
    """Whether compiling `rule` needs the caller's teams (a membership lookup)."""
    if isinstance(rule, rules.Compare):
        sides = (rule.left, rule.right)
        if rules.ContextRef("@user.teams") in sides or rules.ContextRef("@team.role") in sides:
            return True
        # `@user in shared.read`: the user or one of their teams.
        return rule.left == rules.ContextRef("@user") and isinstance(rule.right, rules.FieldRef)
    if isinstance(rule, rules.Not):
        return _uses_teams(rule.part)
    if isinstance(rule, (rules.All, rules.Any_)):
        return any(_uses_teams(part) for part in rule.parts)
    return False


@dataclass(frozen=True, slots=True)
class FieldPolicy:
    path: str  # data.<path>
    read: rules.Rule | None
    write: rules.Rule | None


@dataclass(frozen=True, slots=True)
class Policy:
    """A collection's access, parsed: one rule per action, plus field rules."""

    actions: Mapping[Action, rules.Rule]
    fields: tuple[FieldPolicy, ...] = ()
    uses_teams: bool = False

    @classmethod
    def of(cls, spec: CollectionSpec) -> Policy:
        declared = spec.access
        create, change = _WRITE_PRESETS[declared.write]
        texts: dict[Action, str] = {
            "read": declared.rules.read or _READ_PRESETS[declared.read],
            "create": declared.rules.create or create,
            "update": declared.rules.update or change,
            "delete": declared.rules.delete or change,
        }
        texts["list"] = declared.rules.list or texts["read"]
        actions = {action: rules.parse(text) for action, text in texts.items()}
        fields = tuple(
            FieldPolicy(
                f.path,
                rules.parse(f.read) if f.read else None,
                rules.parse(f.write) if f.write else None,
            )
            for f in declared.fields
        )
        every: list[rules.Rule] = [*actions.values()]
        every += [r for f in fields for r in (f.read, f.write) if r is not None]
        return cls(actions, fields, any(_uses_teams(r) for r in every))


# Parsed policies, keyed by (name, updated_at): a changed declaration makes a new key.
_POLICIES: dict[tuple[str, Any], Policy] = {}
MAX_POLICIES = 1024


def policy(spec: CollectionSpec) -> Policy:
    key = (spec.id, spec.updated_at)
    found = _POLICIES.get(key)
    if found is None:
        found = Policy.of(spec)
        put_bounded(_POLICIES, key, found, MAX_POLICIES)
    return found


@dataclass
class Gate:
    """One caller in front of one collection."""

    spec: CollectionSpec
    principal: Principal | None
    policy: Policy
    caller: rules.Caller
    _filters: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def bypass(self) -> bool:
        return self.principal is not None and self.principal.is_admin

    def filter(self, action: Action) -> dict[str, Any]:
        """The documents the caller may `action` ({} for all)."""
        if self.bypass:
            return {}
        compiled = self._filters.get(action)
        if compiled is None:
            compiled = self._filters[action] = rules.compile_rule(
                self.policy.actions[action], self.caller
            )
        return compiled

    def allows(self, action: Action, doc: StoredDocument | Mapping[str, Any]) -> bool:
        """Whether the caller may `action` this stored document."""
        query = self.filter(action)
        if not query:
            return True
        raw = doc.to_mongo() if isinstance(doc, StoredDocument) else doc
        return rules.matches(query, raw)

    # -- reading -------------------------------------------------------------------------

    def read_scope(self, action: Literal["list", "read"] = "read") -> dict[str, Any]:
        """The query that limits reads to what the caller may see; 401 for an anonymous
        caller whom the rule shows nothing."""
        query = self.filter(action)
        if self.principal is None and query == rules.NOTHING:
            raise sign_in_first()
        return query

    def can_read(self, doc: StoredDocument | Mapping[str, Any]) -> bool:
        return self.allows("read", doc)

    def can_list(self, doc: StoredDocument | Mapping[str, Any]) -> bool:
        """Whether `doc` belongs in what the caller sees of the collection as a whole
        (a list, a stream, a bulk change): both the list and the read rule hold."""
        raw = doc.to_mongo() if isinstance(doc, StoredDocument) else doc
        return self.allows("list", raw) and self.allows("read", raw)

    # -- writing -------------------------------------------------------------------------

    def writer(self) -> Principal:
        """The caller, if they may write here at all (401 anonymous; 403 when no
        document could ever pass their create, update or delete rule)."""
        if self.principal is None:
            raise sign_in_first()
        if not self.bypass and all(
            self.filter(action) == rules.NOTHING for action in ("create", "update", "delete")
        ):
            raise Forbidden(f"You may not write to {self.spec.id}")
        return self.principal

    def check_create(self, doc: StoredDocument) -> Principal:
        """The caller, if they may create `doc` (its owner, team and data as they would be
        stored)."""
        principal = self.writer()
        if not self.allows("create", doc):
            raise Forbidden(f"The create rule of {self.spec.id} does not allow this document")
        return principal

    def change_scope(self, action: Literal["update", "delete"]) -> dict[str, Any]:
        """The documents the caller may change: readable too, so a document the caller
        may not read stays untouched (and looks absent) whatever the write rule says."""
        self.writer()
        return both(self.filter(action), self.filter("read"))

    def can_change(self, action: Literal["update", "delete"], doc: StoredDocument) -> bool:
        return self.principal is not None and self.allows(action, doc)

    # -- fields ----------------------------------------------------------------------------

    def _compiled(self, rule: rules.Rule) -> dict[str, Any]:
        """A field rule compiled for this caller, once per gate (a page judges every
        document against every field rule)."""
        key = f"field:{id(rule)}"
        compiled = self._filters.get(key)
        if compiled is None:
            compiled = self._filters[key] = rules.compile_rule(rule, self.caller)
        return compiled

    def _field_allows(self, rule: rules.Rule | None, raw: Mapping[str, Any]) -> bool:
        if rule is None or self.bypass:
            return True
        query = self._compiled(rule)
        return not query or rules.matches(query, raw)

    @property
    def hides_fields(self) -> bool:
        """Whether some documents may show this caller less than their whole data."""
        return bool(self.policy.fields) and not self.bypass

    def hidden(self, doc: StoredDocument) -> list[str]:
        """Paths under `data` this caller may not read in `doc` (without the `data.`)."""
        if not self.policy.fields or self.bypass:
            return []
        raw = doc.to_mongo()
        return [
            f.path.removeprefix("data.")
            for f in self.policy.fields
            if not self._field_allows(f.read, raw)
        ]

    def shown(self, doc: StoredDocument) -> StoredDocument:
        """`doc` as the caller may see it: fields their rules hide are left out."""
        hidden = self.hidden(doc)
        if not hidden:
            return doc
        data = doc.data
        for path in hidden:
            data = _without(data, path.split("."))
        return replace(doc, data=data)

    def unfilterable(self, paths: Iterable[str]) -> str | None:
        """A path among `paths` (filters, sorts) that touches a field the caller may not
        read in every document: filtering on it would tell its values."""
        if not self.policy.fields or self.bypass:
            return None
        for f in self.policy.fields:
            if f.read is None or self._compiled(f.read) == {}:
                continue
            for path in paths:
                if _overlap(path, f.path):
                    return path
        return None

    def check_field_writes(
        self,
        before: StoredDocument | None,
        data: dict[str, Any],
        *,
        new: StoredDocument | None = None,
    ) -> dict[str, Any]:
        """`data` as it may be stored, once every field rule allows the change from
        `before` (None: `new` is being created; rules judge it). The caller changed what
        they see (`shown`): a field hidden from them that `data` lacks keeps its stored
        value; one it has is their write, allowed by the field's write rule like any
        other change."""
        if not self.policy.fields or self.bypass:
            return data
        subject = before if before is not None else new
        judged = subject.to_mongo() if subject is not None else {"data": data}
        for f in self.policy.fields:
            segments = f.path.removeprefix("data.").split(".")
            old = _at(before.data, segments) if before is not None else _ABSENT
            value = _at(data, segments)
            readable = self._field_allows(f.read, judged)
            if before is not None and value is _ABSENT and not readable:
                data = _restored(data, segments, old)
                continue
            # Unreadable: whatever they send is a write (accepting an equal value would
            # let them guess the stored one). Readable: sending back what they see is
            # no change; `1` for `true`, or `1.0` for `1`, is one.
            changed = value is not _ABSENT if not readable else not _same(value, old)
            if changed and not self._field_allows(f.write, judged):
                raise Forbidden(
                    f"You may not change {f.path} in {self.spec.id}",
                    code=ErrorCode.FIELD_FORBIDDEN,
                )
        return data


def _fields_of(rule: rules.Rule) -> set[str]:
    if isinstance(rule, rules.Compare):
        read = {side.path for side in (rule.left, rule.right) if isinstance(side, rules.FieldRef)}
        if rules.ContextRef("@team.role") in (rule.left, rule.right):
            read.add("team")
        return read
    if isinstance(rule, rules.Not):
        return _fields_of(rule.part)
    if isinstance(rule, (rules.All, rules.Any_)):
        return set().union(*(_fields_of(part) for part in rule.parts))
    return set()


def rule_fields(spec: CollectionSpec) -> set[str]:
    """The stored paths the collection's document rules read (indexes to keep)."""
    actions = policy(spec).actions
    return set().union(*(_fields_of(actions[a]) for a in ("list", "read", "update", "delete")))


def anonymous_reads(spec: CollectionSpec) -> bool:
    """Whether callers without a token may read some documents of `spec`."""
    return rules.compile_rule(policy(spec).actions["list"], rules.Caller(None)) != rules.NOTHING


_ABSENT = object()


def _overlap(path: str, protected: str) -> bool:
    """Whether `path` reads any part of `protected` (itself, inside, or a parent).
    Array indexes (`data.p.0.secret`) read what the path without them names."""
    path = ".".join(segment for segment in path.split(".") if not segment.isdigit())
    return path == protected or path.startswith(protected + ".") or protected.startswith(path + ".")


@dataclass(frozen=True, slots=True)
class _Through:
    """A field-rule path that runs through an array at `depth`: the array, whole, stands
    for the field (a filter or rule reaches into every element)."""

    depth: int
    array: list[Any]


def _at(data: Any, segments: list[str]) -> Any:
    for depth, segment in enumerate(segments):
        if isinstance(data, list):
            return _Through(depth - 1, data)
        if not isinstance(data, dict) or segment not in data:
            return _ABSENT
        data = data[segment]
    return data


def _same(a: Any, b: Any) -> bool:
    """Equal as stored JSON: `true` is not `1`, `1` is not `1.0`."""
    if a is _ABSENT or b is _ABSENT:
        return a is b
    if isinstance(a, _Through) or isinstance(b, _Through):
        if not (isinstance(a, _Through) and isinstance(b, _Through)):
            return False
        a, b = a.array, b.array
    return _canonical(a) == _canonical(b)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=repr)


def _restored(data: dict[str, Any], segments: list[str], old: Any) -> dict[str, Any]:
    """`data` with the stored value of a field hidden from the caller put back."""
    if isinstance(old, _Through):
        return _with(data, segments[: old.depth + 1], old.array)
    return _with(data, segments, old)


def _without(data: dict[str, Any], segments: list[str]) -> dict[str, Any]:
    """A copy of `data` without the value at `segments` (copies only the way down). An
    array on the way goes whole: the field may be in any of its elements."""
    head, rest = segments[0], segments[1:]
    if head not in data:
        return data
    inner = data[head]
    if not rest or isinstance(inner, list):
        return {k: v for k, v in data.items() if k != head}
    if not isinstance(inner, dict):
        return data
    return {**data, head: _without(inner, rest)}


def _with(data: dict[str, Any], segments: list[str], value: Any) -> dict[str, Any]:
    """A copy of `data` with `value` at `segments` (_ABSENT: removed)."""
    if value is _ABSENT:
        return _without(data, segments)
    head, rest = segments[0], segments[1:]
    if not rest:
        return {**data, head: value}
    inner = data.get(head)
    return {**data, head: _with(inner if isinstance(inner, dict) else {}, rest, value)}
