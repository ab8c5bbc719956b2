"""Access-rule expressions (app/documents/rules.py): the language, its refusals, and one
meaning in the database and in `matches`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from app.container import Container
from app.documents.rules import (
    MAX_DEPTH,
    MAX_LIST,
    MAX_NODES,
    NOTHING,
    Caller,
    RuleError,
    compile_rule,
    matches,
    parse,
)

ADA = Caller(id="u-ada", role="user", teams={"t-crew": "admin", "t-club": "member"})
BOB = Caller(id="u-bob", role="user", teams={"t-club": "owner"})
ROOT = Caller(id="u-root", role="admin")
ANONYMOUS = Caller(id=None)

# The README's three examples.
SHARED_TODO = "owner == @user || @user in shared.write || @user in shared.read"
TEAM_WORKSPACE = "team in @user.teams"
TEAM_ADMINS = '@team.role in ["owner", "admin"]'
BLOG = 'data.status == "published" || owner == @user || @user.role == "admin"'


def test_a_shared_todo_list_is_the_owners_and_whoever_it_is_shared_with() -> None:
    assert compile_rule(parse(SHARED_TODO), ADA) == {
        "$or": [
            {"owner": "u-ada"},
            {"shared.write": {"$in": ["u-ada", "t-club", "t-crew"]}},
            {"shared.read": {"$in": ["u-ada", "t-club", "t-crew"]}},
        ]
    }
    assert compile_rule(parse(SHARED_TODO), ANONYMOUS) == NOTHING


def test_team_rules_become_the_teams_the_caller_belongs_to() -> None:
    assert compile_rule(parse(TEAM_WORKSPACE), ADA) == {"team": {"$in": ["t-club", "t-crew"]}}
    assert compile_rule(parse(TEAM_ADMINS), ADA) == {"team": {"$in": ["t-crew"]}}
    assert compile_rule(parse(TEAM_ADMINS), BOB) == {"team": {"$in": ["t-club"]}}
    assert compile_rule(parse(TEAM_ADMINS), ROOT) == NOTHING  # in no team


def test_conditions_on_the_caller_alone_are_decided_before_the_query() -> None:
    assert compile_rule(parse(BLOG), ROOT) == {}  # everything
    assert compile_rule(parse(BLOG), ADA) == {
        "$or": [{"data.status": "published"}, {"owner": "u-ada"}]
    }
    assert compile_rule(parse(BLOG), ANONYMOUS) == {"data.status": "published"}


def test_operators_and_negation_compile_to_their_mongodb_forms() -> None:
    rule = parse('!(data.n >= 3) && 7 > data.m && data.tag != "x" && id in ["a", "b"]')
    assert compile_rule(rule, ADA) == {
        "$and": [
            {"$nor": [{"data.n": {"$gte": 3}}]},
            {"data.m": {"$lt": 7}},
            {"data.tag": {"$ne": "x"}},
            {"_id": {"$in": ["a", "b"]}},
        ]
    }


@pytest.mark.parametrize(
    ("rule", "message", "at"),
    [
        ("owner ==", "expected a value, a field or @user, found the end", 9),
        ("owner == owner", "not two fields", 1),
        ('"a" == "b"', "compares two constants", 1),
        ("colour == 1", "unknown field 'colour'", 1),
        ("@admin == true", "unknown @admin", 1),
        ("owner < @user", "< compares a field with a number or a string", 1),
        ('data.x in "a"', "the right of 'in' is a list", 1),
        ("@user.teams == 1", "@user.teams is used as", 1),
        ("@team.role == owner", "@team.role goes on the left", 1),
        ("data.x == [1]", "a list is only compared with 'in'", 1),
        ("data.x in [owner]", "a list holds only strings", 12),
        ("(owner == @user", "expected ')'", 16),
        ("owner == @user )", "unexpected ')'", 16),
        ("owner = @user", "unexpected '='", 7),
        ("data.x == NaN", "unknown field 'NaN'", 11),
        ("data.$where == 1", "unexpected '.'", 5),
        ("import os", "unknown field 'import'", 1),
        ("owner == @user extra", "unexpected 'extra'", 16),
        ("", "a non-empty string", 1),
    ],
)
def test_a_bad_rule_is_refused_saying_what_and_where(rule: str, message: str, at: int) -> None:
    with pytest.raises(RuleError) as refused:
        parse(rule)
    assert message in str(refused.value)
    assert refused.value.position + 1 == at


def test_the_work_one_rule_can_ask_for_is_bounded() -> None:
    deep = "(" * (MAX_DEPTH + 1) + "owner == @user" + ")" * (MAX_DEPTH + 1)
    wide = " || ".join(f"data.n == {i}" for i in range(MAX_NODES))
    long_list = "data.n in [" + ", ".join(str(i) for i in range(MAX_LIST + 1)) + "]"
    for rule, message in [
        (deep, "nests at most"),
        (wide, "at most 1000 characters"),
        ("||".join(["id==1"] * (MAX_NODES // 3 + 1)), f"at most {MAX_NODES} parts"),
        (long_list, f"at most {MAX_LIST} values"),
    ]:
        with pytest.raises(RuleError, match=message):
            parse(rule)


DOCS: list[dict[str, Any]] = [
    {"_id": "d1", "owner": "u-ada", "data": {"status": "draft", "n": 1}},
    {"_id": "d2", "owner": "u-bob", "data": {"status": "published", "n": 5}},
    {"_id": "d3", "owner": "u-bob", "team": "t-club", "data": {"n": "5"}},
    {"_id": "d4", "owner": "u-bob", "shared": {"read": ["u-ada"]}, "data": {"n": 2.5}},
    {"_id": "d5", "owner": None, "shared": {"write": ["t-crew"]}, "data": {"n": True}},
    {"_id": "d6", "owner": "u-root", "team": "t-crew", "data": {"tags": ["a", "b"]}},
    {"_id": "d7", "owner": "u-bob", "data": {"tags": [], "status": None}},
    {"_id": "d8", "owner": "u-bob", "data": {"tags": [["a"]], "when": datetime(2026, 1, 1)}},
    {"_id": "d9", "owner": "u-bob", "data": {"n": [1, 9], "items": [{"k": "x"}, {"k": "y"}]}},
]
RULES = [
    SHARED_TODO,
    TEAM_WORKSPACE,
    TEAM_ADMINS,
    BLOG,
    "owner == null",
    "owner != @user",
    "data.status != null",
    "data.status == null",
    "data.n > 2",
    "data.n <= 5",
    'data.n < "6"',
    "data.n == 1",
    "data.n != 1",
    "data.n in [1, true, 2.5]",
    '"a" in data.tags',
    'data.tags == "a"',
    'data.tags != "a"',
    'data.items.k == "y"',
    "!(data.n > 2) || team == null",
    '@team.role != "member" && true',
    "@user in shared.read || @user in shared.write",
    '"t-club" in @user.teams && !(owner == @user)',
    'data.when >= "2025"',
]


@pytest.mark.parametrize("caller", [ADA, BOB, ROOT, ANONYMOUS], ids=lambda c: str(c.id))
async def test_the_database_and_matches_agree_on_every_rule(
    container: Container, caller: Caller
) -> None:
    docs = [{**doc, "data": {**doc["data"]}} for doc in DOCS]
    for doc in docs:
        if "when" in doc["data"]:
            doc["data"]["when"] = doc["data"]["when"].replace(tzinfo=UTC)
    collection = container.db["rules_agreement"]
    await collection.insert_many([dict(doc) for doc in docs])
    stored = {doc["_id"]: doc async for doc in collection.find({})}
    for text in RULES:
        query = compile_rule(parse(text), caller)
        in_database = sorted([doc["_id"] async for doc in collection.find(query, {"_id": 1})])
        in_python = sorted(i for i, doc in stored.items() if matches(query, doc))
        assert in_python == in_database, (text, query)
