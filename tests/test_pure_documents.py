"""Property tests of the documents domain's pure functions (no database)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from bson.tz_util import utc as bson_utc
from hypothesis import given, settings
from hypothesis import strategies as st

from app.clock import rfc3339
from app.documents.filters import (
    ALLOWED_OPERATORS,
    FilterLimits,
    InvalidFields,
    InvalidFilter,
    InvalidSort,
    compile_fields,
    compile_filter,
    compile_sort,
)
from app.documents.keyset import decode_cursor, encode_cursor, query_scope
from app.documents.merge_patch import merge_patch
from app.documents.validation import DataLimits, DataTooLarge, check_data
from app.errors import AppError
from app.pagination import CursorCodec, InvalidCursor

FORBIDDEN = [
    "$where",
    "$expr",
    "$function",
    "$jsonSchema",
    "$text",
    "$lookup",
    "$mod",
    "$accumulator",
    "$geoWithin",
    "$comment",
    "$foo",
    "$",
]
KEYS = st.one_of(
    st.sampled_from(sorted(ALLOWED_OPERATORS) + FORBIDDEN),
    st.sampled_from(
        [
            "data.a",
            "data.b.c",
            "id",
            "owner",
            "version",
            "created_at",
            "updated_at",
            "title",
            "_id",
            "data",
            "data.",
            "data.$x",
            "a.b",
        ]
    ),
    st.text(max_size=6),
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False),
    st.text(max_size=8),
    st.sampled_from(["2026-11-24T10:00:00Z", "(a+)+$", "[", "^x"]),
)
JSON = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(KEYS, children, max_size=4)
    ),
    max_leaves=25,
)
STORED_ROOTS = {"_id", "owner", "version", "created_at", "updated_at", "data"}


def walk_keys(node: Any, top: bool = True) -> list[tuple[str, bool]]:
    found: list[tuple[str, bool]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            found.append((key, top))
            found += walk_keys(value, top=key in ("$and", "$or", "$nor") and top)
    elif isinstance(node, list):
        for value in node:
            found += walk_keys(value, top)
    return found


@settings(max_examples=600, deadline=None)
@given(JSON)
def test_the_compiler_emits_only_allow_listed_operators(raw: Any) -> None:
    try:
        compiled = compile_filter(raw)
    except InvalidFilter as exc:
        assert exc.status == 400 and exc.detail
        return
    for key, top in walk_keys(compiled):
        if key.startswith("$"):
            assert key in ALLOWED_OPERATORS, key
        elif top:
            assert key.split(".")[0] in STORED_ROOTS, key


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(FORBIDDEN), JSON, min_size=1, max_size=2))
def test_forbidden_operators_are_always_refused(raw: dict[str, Any]) -> None:
    with pytest.raises(InvalidFilter):
        compile_filter(raw)
    with pytest.raises(InvalidFilter):
        compile_filter({"data.x": raw})


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"id": "abc"}, {"_id": "abc"}),
        ({"data.score": {"$gte": 5}}, {"data.score": {"$gte": 5}}),
        ({"$or": [{"owner": "u"}, {"data.a": 1}]}, {"$or": [{"owner": "u"}, {"data.a": 1}]}),
        (
            {"created_at": {"$lt": "2026-11-24T10:00:00.5+02:00"}},
            {"created_at": {"$lt": datetime(2026, 11, 24, 8, 0, 0, 500000, tzinfo=UTC)}},
        ),
        (
            {"data.tags": {"$elemMatch": {"name": "x", "n": {"$gt": 1}}}},
            {"data.tags": {"$elemMatch": {"name": "x", "n": {"$gt": 1}}}},
        ),
        (
            {"data.s": {"$regex": "^a", "$options": "i"}},
            {"data.s": {"$regex": "^a", "$options": "i"}},
        ),
    ],
)
def test_examples_compile_as_expected(raw: Any, expected: Any) -> None:
    assert compile_filter(raw) == expected


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        ({"data.a": {"$where": "1"}}, "$where"),
        ({"$expr": {}}, "$expr"),
        ({"title": 1}, "title"),
        ({"data.a": {"$in": list(range(501))}}, "500"),
        ({"data.a": {"$regex": "x" * 257}}, "256"),
        ({"data.a": {"$regex": "("}}, "regex"),
        ({"data.a": {"$options": "i"}}, "$regex"),
        ({"data.a": {"$regex": "a", "$options": "g"}}, "$options"),
        ({"data.a": {"$size": -1}}, "$size"),
        ({"data.a": {"$exists": "yes"}}, "$exists"),
        ({"$and": []}, "$and"),
        ({"created_at": "tomorrow"}, "RFC 3339"),
        ({"id": 5}, "strings"),
        ({"data.a": {"nested": {"$gt": 1}, "x": 1}}, "$gt"),
    ],
)
def test_refusals_name_the_offending_part(raw: Any, named: str) -> None:
    with pytest.raises(InvalidFilter) as caught:
        compile_filter(raw)
    assert named in caught.value.detail


def test_depth_and_clause_limits() -> None:
    deep: Any = {"data.a": 1}
    for _ in range(10):
        deep = {"$and": [deep]}
    with pytest.raises(InvalidFilter, match="deeper"):
        compile_filter(deep)
    wide = {f"data.f{i}": i for i in range(101)}
    with pytest.raises(InvalidFilter, match="clauses"):
        compile_filter(wide)
    assert compile_filter(wide, FilterLimits(max_clauses=200))


def test_sort_parsing() -> None:
    assert compile_sort("") == [("created_at", 1), ("_id", 1)]
    assert compile_sort("-data.score,created_at") == [
        ("data.score", -1),
        ("created_at", 1),
        ("_id", 1),
    ]
    assert compile_sort("-data.n") == [("data.n", -1), ("_id", -1)]
    assert compile_sort("data.a,-id") == [("data.a", 1), ("_id", -1)]
    for bad in ("title", "data.", "data..a", "data.a,data.a", "-", ",", "data.$x", "data"):
        with pytest.raises(InvalidSort):
            compile_sort(bad)
    with pytest.raises(InvalidSort):
        compile_sort(",".join(f"data.f{i}" for i in range(9)))


def test_fields_parsing() -> None:
    projection = compile_fields("data.title,data.meta,data.meta.x")
    assert projection["data.title"] == 1 and projection["data.meta"] == 1
    assert "data.meta.x" not in projection  # its parent is already included
    assert {"_id", "owner", "version", "created_at", "updated_at"} <= set(projection)
    for bad in ("owner", "title", "data.$a", "", "data.a,,data.b"):
        with pytest.raises(InvalidFields):
            compile_fields(bad)


# -- merge patch ---------------------------------------------------------------------------

RFC_7396_EXAMPLES = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("target", "patch", "result"), RFC_7396_EXAMPLES)
def test_merge_patch_matches_the_rfc_examples(target: Any, patch: Any, result: Any) -> None:
    assert merge_patch(target, patch) == result


JSON_DATA = st.recursive(
    st.one_of(st.booleans(), st.integers(), st.text(max_size=5)),
    lambda c: st.one_of(
        st.lists(c, max_size=3), st.dictionaries(st.text(max_size=3), c, max_size=3)
    ),
    max_leaves=15,
)
OBJECTS = st.dictionaries(st.text(max_size=3), JSON_DATA, max_size=5)


def diff(source: dict[str, Any], target: dict[str, Any]) -> dict[str, Any]:
    patch: dict[str, Any] = {key: None for key in source if key not in target}
    for key, value in target.items():
        if isinstance(value, dict) and isinstance(source.get(key), dict):
            patch[key] = diff(source[key], value)
        elif source.get(key, object()) != value:
            patch[key] = value
    return patch


@settings(max_examples=300, deadline=None)
@given(OBJECTS, OBJECTS)
def test_a_diff_patch_turns_source_into_target(
    source: dict[str, Any], target: dict[str, Any]
) -> None:
    before = copy.deepcopy(source)
    assert merge_patch(source, diff(source, target)) == target
    assert source == before  # inputs are not modified


@settings(max_examples=300, deadline=None)
@given(OBJECTS, OBJECTS)
def test_merge_patch_is_idempotent(target: dict[str, Any], patch: dict[str, Any]) -> None:
    once = merge_patch(target, patch)
    assert merge_patch(once, patch) == once


# -- data checks and cursors -----------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=4), JSON_DATA, max_size=4))
def test_stored_data_never_holds_dollar_dotted_or_nul_keys(data: dict[str, Any]) -> None:
    def keys(node: Any) -> list[str]:
        if isinstance(node, dict):
            return [*node, *(k for v in node.values() for k in keys(v))]
        if isinstance(node, list):
            return [k for v in node for k in keys(v)]
        return []

    bad = any(k.startswith("$") or "." in k or "\x00" in k for k in keys(data))
    try:
        check_data(data)
    except AppError:
        return
    assert not bad


def test_data_limits() -> None:
    check_data({"a": [1, {"b": "c"}]})
    with pytest.raises(DataTooLarge):
        check_data({"s": "x" * 2000}, DataLimits(max_bytes=1024))
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(40):
        node["d"] = {}
        node = node["d"]
    with pytest.raises(AppError, match="data"):
        check_data(deep)
    with pytest.raises(AppError):
        check_data({"n": 2**64})
    for number in (float("nan"), float("inf"), -float("inf")):  # e.g. from seed files
        with pytest.raises(AppError, match="data"):
            check_data({"n": [number]})


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["data.a", "created_at", "_id"]),
        st.one_of(
            st.none(), st.integers(), st.text(max_size=5), st.datetimes(timezones=st.just(UTC))
        ),
    )
)
def test_cursors_round_trip_and_resist_tampering(values: dict[str, Any]) -> None:
    codec = CursorCodec("secret")
    scope = query_scope({"data.a": 1}, [("data.a", 1), ("_id", 1)])
    cursor = encode_cursor(codec, values, scope)
    assert decode_cursor(codec, cursor, scope) == values
    with pytest.raises(InvalidCursor):
        decode_cursor(codec, cursor, scope + "x")
    with pytest.raises(InvalidCursor):
        decode_cursor(CursorCodec("other"), cursor, scope)
    body, _, mac = cursor.partition(".")
    with pytest.raises(InvalidCursor):
        decode_cursor(codec, body + "A." + mac, scope)


@given(
    st.datetimes(
        min_value=datetime(1970, 1, 1),
        max_value=datetime(9999, 1, 1),
        timezones=st.sampled_from([UTC, bson_utc, timezone(timedelta(hours=-5, minutes=-30))]),
    )
)
def test_dates_leave_as_utc_text_with_milliseconds(value: datetime) -> None:
    # However the datetime came (the driver's utc, Python's, another offset): one text.
    text = rfc3339(value)
    assert len(text) == 24 and text.endswith("Z")
    back = datetime.fromisoformat(text.replace("Z", "+00:00"))
    assert back == value.replace(microsecond=value.microsecond // 1000 * 1000)
