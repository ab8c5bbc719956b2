"""The ReDoS guard: known-vulnerable patterns are refused, ordinary ones accepted.

Pure-function tests (no database). Property tests generate patterns from small grammars;
the last one runs accepted patterns through a model backtracking matcher that counts its
steps, so super-linear work is caught deterministically, without timing anything.
"""

from __future__ import annotations

import operator
import re
import sys
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from app.documents import regex_safety
from app.documents.regex_safety import UnsafePattern, check_pattern

# --------------------------------------------------------------------------- tables

# Known ReDoS patterns: OWASP's list, classic vulnerable email/URL validators, incidents.
VULNERABLE: list[tuple[str, str]] = [
    # OWASP "Regular expression Denial of Service" examples
    (r"^(a+)+$", ""),
    (r"(a+)+$", ""),
    (r"([a-zA-Z]+)*", ""),
    (r"(a|aa)+", ""),
    (r"(a|a?)+", ""),
    (r"(.*a){12}", ""),
    # OWASP: vulnerable email validator (RegExLib)
    (
        r"^([a-zA-Z0-9])(([\-.]|[_]+)?([a-zA-Z0-9]+))*(@){1}[a-z0-9]+[.]{1}"
        r"(([a-z]{2,3})|([a-z]{2,3}[.]{1}[a-z]{2,3}))$",
        "",
    ),
    # OWASP: Java class name validator
    (r"^(([a-z])+.)+[A-Z]([a-z])+$", ""),
    # OWASP: person-name validator
    (r"^[a-zA-Z]+(([\'\,\.\-][a-zA-Z ])?[a-zA-Z]*)*$", ""),
    # classic email and URL validators
    (r"^([a-zA-Z0-9_\.\-])+\@(([a-zA-Z0-9\-])+\.)+([a-zA-Z0-9]{2,4})+$", ""),
    (r"^(https?:\/\/)?([\da-z\.-]+)\.([a-z\.]{2,6})([\/\w \.-]*)*\/?$", ""),
    (r"^[\w.+-]+@([\w-]+\.)+[\w-]{2,}$", ""),
    # other classics
    (r"^(\w+\s?)*$", ""),
    (r"(\d+|\d+\.\d+)*", ""),
    (r"(a|a)*", ""),
    (r"(\w|\d)+", ""),
    (r"(.|\s)*", ""),
    (r"(a|b|ab)*c", ""),
    (r"(x+x+)+y", ""),
    (r"^(a?){25}(a){25}$", ""),
    (r"a?a?a?a?a?a?a?a?a?a?aaaaaaaaaa", ""),
    (r"(a|a)(a|a)(a|a)(a|a)(a|a)(a|a)(a|a)(a|a)", ""),
    # polynomial: overlapping neighbours
    (r"\d+\d+", ""),
    (r"a*a*", ""),
    (r".*a.*", ""),
    (r"\w+\s?\w+", ""),
    (r"^\d*\.?\d*$", ""),
    # Cloudflare outage, 2019 (the core of the WAF rule)
    (r".*(?:.*=.*)", ""),
    # Stack Exchange outage, 2016 (trim trailing whitespace), and trim both ends
    (r"\s+$", ""),
    (r"^[\s\u200c]+|[\s\u200c]+$", ""),
    # moment.js CVE-2017-18214 (unanchored class run)
    (r"[0-9]*['a-z\u00A0-\u05FF\u0700-\uD7FF]+", ""),
    # unanchored searches that are quadratic across start positions
    (r"[a-z]+@", ""),
    (r"a[a-z]+@", ""),
    (r"foo.*bar", ""),
    (r"^\s+x", "m"),
    # nested rule wins
    (r"^\w+( \w+)*$", ""),
    (r"^[a-z]+(-[a-z]+)*$", ""),
]

ORDINARY: list[tuple[str, str]] = [
    (r"^abc", ""),
    (r"abc", ""),
    (r"^foo.*bar", ""),
    (r"^[a-z]+@[a-z]+\.com$", ""),
    (r"colou?r", ""),
    (r"^\d{3}-\d{4}$", ""),
    (r"(?i)hello", ""),
    (r"hello", "i"),
    (r"hello", "imsx"),
    (r"^(cat|dog)s?$", ""),
    (r"^a+b+$", ""),
    (r"x\s+$", ""),
    (r"^\d+(\.\d+)?$", ""),
    (r"^[^@\s]+@[^@\s]+$", ""),
    (r"^.{1,100}$", ""),
    (r"(?s)^.*$", ""),
    (r"\bfoo\b", ""),
    (r"foo|bar", ""),
    (r"^(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)\b", ""),
    (r"^[A-Z][a-z]*$", ""),
    (r"^#[0-9a-fA-F]{6}$", ""),
    (r"^[a-z0-9_-]{3,16}$", ""),
    (r"^https?://", ""),
    (r"^\d{4}-\d{2}-\d{2}T", ""),
    (r"^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$", ""),
    (r"^\w+\s\w+$", ""),
    (r"^(?:ab|cd)+$", ""),
    (r"^foo", "m"),
    (r"^[a-z]+@", "m"),
    (r"^hello world", "x"),
    (r"^user_\d+$", ""),
    (r"(?i)^[a-z]+-[a-z]+$", ""),
    (r"\.json$", ""),
    (r"^" + "|".join(f"word{i}" for i in range(40)) + "$", ""),
]


@pytest.mark.parametrize(("pattern", "options"), VULNERABLE)
def test_known_redos_patterns_are_refused(pattern: str, options: str) -> None:
    with pytest.raises(UnsafePattern):
        check_pattern(pattern, options)


@pytest.mark.parametrize(("pattern", "options"), ORDINARY)
def test_ordinary_patterns_are_accepted(pattern: str, options: str) -> None:
    check_pattern(pattern, options)  # accepted: no UnsafePattern


def test_tables_are_big_enough() -> None:
    assert len(VULNERABLE) >= 20 and len(ORDINARY) >= 20


@pytest.mark.parametrize(
    ("pattern", "options", "expected"),
    [
        ("(a+)+", "", "nested quantifier '(a+)+'"),
        ("(a*)*", "", "nested quantifier"),
        ("(a{2,})+", "", "nested quantifier"),
        ("((ab)*c)+", "", "nested quantifier"),
        ("(a?)*", "", "empty string"),
        ("(a|)+", "", "empty string"),
        ("(a*)?", "", "empty string"),
        ("(?:a|b?|c?)", "", "more than one branch"),
        ("(a|aa)+", "", "alternation inside repeat '(a|aa)+'"),
        (r"(\w|\d)+", "", "alternation inside repeat"),
        ("(xa?a?)+", "", "more than one way"),
        (r"\d+\d+", "", "polynomial"),
        (r"\w+\s?\w+", "", "polynomial"),
        (r"\s+$", "", "anchor the pattern with '^'"),
        (r"^\s+x", "m", "every line start"),
        ("a?a?a?a?a?a?a?a?aaaaaaaa", "", "more than 64 ways"),
        (r"(a)\1", "", "backreference"),
        ("(a)?(?(1)b|c)", "", "conditional"),
        ("a(?=b)", "", "lookahead/lookbehind"),
        ("(?<!a)b", "", "lookahead/lookbehind"),
        ("(?>ab)", "", "atomic"),
        ("a++", "", "possessive"),
        (r"\Qa\E", "", "cannot parse"),
        ("(?<name>a)", "", "cannot parse"),
        ("[[:alpha:]]", "", "character-class syntax"),
        ("[a--b]", "", "character-class syntax"),
        ("abc", "g", "unsupported $options flag 'g'"),
        ("a" * 1001, "", "longer than 1000"),
        ("(" * 60 + "a" + ")" * 60, "", "nested too deeply"),
    ],
)
def test_refusals_say_what_is_wrong(pattern: str, options: str, expected: str) -> None:
    with pytest.raises(UnsafePattern, match=re.escape(expected)):
        check_pattern(pattern, options)


def test_unsafe_pattern_is_a_value_error() -> None:
    assert issubclass(UnsafePattern, ValueError)


def test_large_bounds_count_as_unbounded() -> None:
    check_pattern(r"^a{0,100000}$")
    check_pattern(r"^\d{1,3}\d{2}$")  # short bounded neighbours are fine
    for pattern in (r"a{1000,}", r"^\d{1,1000}\d{0,100000}", r"x{0,100000}$"):
        with pytest.raises(UnsafePattern):
            check_pattern(pattern)


def test_case_folding_and_pcre_escapes_count_as_overlap() -> None:
    check_pattern(r"^[a-z]+[A-Z]+$")
    with pytest.raises(UnsafePattern, match="polynomial"):
        check_pattern(r"^[a-z]+[A-Z]+$", "i")
    with pytest.raises(UnsafePattern, match="polynomial"):
        check_pattern(r"^[a-z]+\u212a+$", "i")  # KELVIN SIGN folds to 'k'
    # PCRE reads \v as vertical whitespace, which includes \n.
    with pytest.raises(UnsafePattern, match="polynomial"):
        check_pattern(r"^\v+\n+$")


def test_dotall_changes_what_dot_overlaps() -> None:
    check_pattern(r"^.*\n.*$")
    with pytest.raises(UnsafePattern):
        check_pattern(r"^.*\n.*$", "s")


# ------------------------------------------------------------------ property tests

OPTIONS = st.sampled_from(["", "i", "m", "s", "x", "ims", "imsx"])
REGEX_ALPHABET = [
    *"ab.|()[]^$*+?{}\\-,0123dwsDWSbBAZ:=!<># ix",
    *("(?:", "(?=", "(?i)", "(?P<n>", "(?P=n)", "{2,3}", "\\d", "[^", "\\1"),
]


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(st.text(max_size=40), st.lists(st.sampled_from(REGEX_ALPHABET)).map("".join)),
    OPTIONS,
)
def test_any_text_is_accepted_or_refused_cleanly(pattern: str, options: str) -> None:
    try:
        check_pattern(pattern, options)
    except UnsafePattern as exc:
        assert str(exc)
        return
    flags = sum(getattr(re, f) for f in options.upper())
    re.compile(pattern, flags)  # whatever is accepted is a valid regex


# Atoms with the characters they accept (for building overlapping pairs on purpose).
ATOMS: dict[str, str] = {
    "a": "a",
    "b": "b",
    "1": "1",
    r"\d": "0123456789",
    r"\w": "ab1_",
    r"\s": " \t\n",
    ".": "ab1 _-",
    "[a-z]": "ab",
    "[ab]": "ab",
    "[a1]": "a1",
    "[^x]": "ab1 -",
    "-": "-",
    " ": " ",
}
LITERALS = st.text(alphabet="abxy1-@", max_size=3).map(re.escape)
UNBOUNDED = st.sampled_from(["+", "*", "{1,}", "{0,}", "{2,}", "{40,}", "{0,1000}"])
ANY_REPEAT = st.sampled_from(["+", "*", "{2,}", "{1,5}", "{2}", "{0,40}"])
ANCHOR = st.sampled_from(["", "^", r"\A"])


@st.composite
def overlapping_atoms(draw: st.DrawFn) -> tuple[str, str]:
    first = draw(st.sampled_from(sorted(ATOMS)))
    second = draw(st.sampled_from(sorted(a for a in ATOMS if set(ATOMS[a]) & set(ATOMS[first]))))
    return first, second


@st.composite
def vulnerable_patterns(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["nested", "alternation", "neighbours"]))
    before, after = draw(ANCHOR) + draw(LITERALS), draw(LITERALS) + draw(st.sampled_from(["", "$"]))
    if kind == "nested":
        atom = draw(st.sampled_from(sorted(ATOMS)))
        inner = f"{draw(LITERALS)}{atom}{draw(ANY_REPEAT)}{draw(LITERALS)}"
        group = draw(st.sampled_from(["({})", "(?:{})"])).format(inner)
        core = group + draw(ANY_REPEAT)
    elif kind == "alternation":
        first, second = draw(overlapping_atoms())
        branches = [first + draw(LITERALS), second + draw(LITERALS)]
        branches += draw(st.lists(LITERALS.filter(bool), max_size=2))
        order = draw(st.permutations(branches))
        core = "(?:" + "|".join(order) + ")" + draw(ANY_REPEAT)
    else:
        first, second = draw(overlapping_atoms())
        middle = draw(st.sampled_from(["", "x?", "(?:y|z)?", r"\b"]))
        core = first + draw(UNBOUNDED) + middle + second + draw(UNBOUNDED)
    return before + core + after


@settings(max_examples=300, deadline=None)
@given(vulnerable_patterns(), st.sampled_from(["", "i", "m", "s"]))
def test_patterns_vulnerable_by_construction_are_refused(pattern: str, options: str) -> None:
    with pytest.raises(UnsafePattern):
        check_pattern(pattern, options)


SAFE_CLASSES = ["[a-z]", r"\d", "[A-Z]", "x", "(?:cat|dog|emu)", "[0-9a-f]"]
SAFE_QUANTIFIERS = ["", "+", "*", "?", "{2}", "{1,5}", "{3,}", "{0,100}"]
DELIMITERS = ["-", "@", r"\.", ":", "/", "=", ",", "_", " "]


@st.composite
def safe_patterns(draw: st.DrawFn) -> str:
    def segment() -> str:
        return draw(st.sampled_from(SAFE_CLASSES)) + draw(st.sampled_from(SAFE_QUANTIFIERS))

    parts = [segment()]
    for _ in range(draw(st.integers(0, 4))):
        parts.append(draw(st.sampled_from(DELIMITERS)) + segment())
    body = "".join(parts)
    # Anchored, or unanchored but led by a mandatory delimiter no class accepts.
    lead = draw(st.sampled_from(["^", r"\A", "^foo", *DELIMITERS]))
    return lead + body + draw(st.sampled_from(["", "$", r"\.json$"]))


@settings(max_examples=300, deadline=None)
@given(safe_patterns(), st.sampled_from(["", "i", "m", "s", "x"]))
def test_patterns_safe_by_construction_are_accepted(pattern: str, options: str) -> None:
    if "x" in options:
        pattern = pattern.replace(" ", r"\ ")
    check_pattern(pattern, options)  # accepted: no UnsafePattern


# ------------------------------------------------- deterministic work: model matcher

C: Any = regex_safety._C


def _in_range(lo: int, hi: int, ch: str) -> bool:
    return lo <= ord(ch) <= hi


def _char_class(items: Any) -> Callable[[str], bool]:
    negate = bool(items) and items[0][0] == C.NEGATE
    tests: list[Callable[[str], bool]] = []
    categories: dict[Any, Callable[[str], bool]] = {
        C.CATEGORY_DIGIT: lambda ch: ch.isdecimal(),
        C.CATEGORY_NOT_DIGIT: lambda ch: not ch.isdecimal(),
        C.CATEGORY_WORD: lambda ch: ch.isalnum() or ch == "_",
        C.CATEGORY_NOT_WORD: lambda ch: not (ch.isalnum() or ch == "_"),
        C.CATEGORY_SPACE: lambda ch: ch.isspace(),
        C.CATEGORY_NOT_SPACE: lambda ch: not ch.isspace(),
    }
    for op, av in items[1:] if negate else items:
        if op == C.LITERAL:
            tests.append(partial(operator.eq, chr(av)))
        elif op == C.RANGE:
            tests.append(partial(_in_range, av[0], av[1]))
        else:
            tests.append(categories[av])
    return lambda ch: any(t(ch) for t in tests) != negate


class _OverBudget(Exception):
    pass


def backtracking_steps(pattern: str, text: str, budget: int) -> int:
    """Steps a naive backtracking search (every start position, greedy repeats, branches
    tried in order, as PCRE and Python's re do) takes to find no match / the first match.
    Uses the analyser's unmerged parse so `(a|b)` stays an alternation, as in PCRE."""
    tree = regex_safety._PARSER(pattern, 0)
    n = len(text)
    steps = 0

    def is_word(i: int) -> bool:
        return 0 <= i < n and (text[i].isalnum() or text[i] == "_")

    def match(items: Any, i: int, pos: int, k: Callable[[int], bool]) -> bool:
        nonlocal steps
        steps += 1
        if steps > budget:
            raise _OverBudget
        if i == len(items):
            return k(pos)
        op, av = items[i]

        def rest(p: int) -> bool:
            return match(items, i + 1, p, k)

        if op in (C.LITERAL, C.NOT_LITERAL, C.ANY, C.IN):
            if pos >= n:
                return False
            ch = text[pos]
            if op == C.LITERAL:
                ok = ch == chr(av)
            elif op == C.NOT_LITERAL:
                ok = ch != chr(av)
            elif op == C.ANY:
                ok = ch != "\n"
            else:
                ok = _char_class(av)(ch)
            return ok and rest(pos + 1)
        if op == C.AT:
            ok = {
                C.AT_BEGINNING: pos == 0,
                C.AT_BEGINNING_STRING: pos == 0,
                C.AT_END: pos == n or (pos == n - 1 and text[-1] == "\n"),
                C.AT_END_STRING: pos == n,
                C.AT_BOUNDARY: is_word(pos - 1) != is_word(pos),
                C.AT_NON_BOUNDARY: is_word(pos - 1) == is_word(pos),
            }[av]
            return ok and rest(pos)
        if op == C.BRANCH:
            return any(match(branch, 0, pos, rest) for branch in av[1])
        if op == C.SUBPATTERN:
            return match(av[3], 0, pos, rest)
        assert op in (C.MAX_REPEAT, C.MIN_REPEAT), op
        lo, hi, body = av

        def repeat(count: int, p: int) -> bool:
            def again() -> bool:
                return count < hi and match(body, 0, p, lambda q: q != p and repeat(count + 1, q))

            if op == C.MAX_REPEAT:
                return again() or (count >= lo and rest(p))
            return (count >= lo and rest(p)) or again()

        return repeat(0, pos)

    old_limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old_limit, 20_000))
    try:
        for start in range(n + 1):
            if match(tree, 0, start, lambda p: True):
                break
    finally:
        sys.setrecursionlimit(old_limit)
    return steps


def test_model_matcher_sees_catastrophic_patterns() -> None:
    # The model is faithful enough to show the blow-ups the analyser refuses.
    with pytest.raises(_OverBudget):
        backtracking_steps(r"^(a+)+$", "a" * 16 + "!", 50_000)
    quadratic = [backtracking_steps(r"^\d+\d+x", "1" * n, 10**6) for n in (40, 160)]
    assert quadratic[1] > 12 * quadratic[0]
    unanchored = [backtracking_steps(r"\s+$", " " * n + "!", 10**6) for n in (40, 160)]
    assert unanchored[1] > 12 * unanchored[0]
    linear = [backtracking_steps(r"^\d+x", "1" * n, 10**6) for n in (40, 160)]
    assert linear[1] < 5 * linear[0]


FUZZ_ATOMS = ["a", "b", ".", r"\d", r"\w", r"\s", "[a-z]", "[ab]", "[^a]", "-", "1", " ", "x"]
FUZZ_QUANTIFIERS = ["", "", "?", "*", "+", "{2}", "{1,3}", "{0,5}", "{2,}", "{1,40}"]


@st.composite
def random_patterns(draw: st.DrawFn, depth: int = 0) -> str:
    parts = []
    for _ in range(draw(st.integers(1, 5))):
        if depth < 2 and draw(st.integers(0, 6)) == 0:
            branches = draw(st.lists(random_patterns(depth + 1), min_size=1, max_size=3))
            parts.append("(?:" + "|".join(branches) + ")" + draw(st.sampled_from(FUZZ_QUANTIFIERS)))
        else:
            parts.append(
                draw(st.sampled_from(FUZZ_ATOMS)) + draw(st.sampled_from(FUZZ_QUANTIFIERS))
            )
    return "".join(parts)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(
    st.one_of(
        safe_patterns(),
        st.tuples(
            st.sampled_from(["", "^", "x"]), random_patterns(), st.sampled_from(["", "$"])
        ).map("".join),
    ),
    st.text(alphabet="ab1x -\n!", min_size=1, max_size=4),
    st.sampled_from(["", "!", "\n!", "a!"]),
)
@example("^.{0,5}.{1,40}$", "1", "")  # found by CI: bounded repeats' fixed cost
def test_accepted_patterns_do_linear_work(pattern: str, unit: str, tail: str) -> None:
    """For every accepted generated pattern, a backtracking search over an adversarial
    text (a repeated unit plus a spoiler) does at most linear work: quadrupling the text
    may not much more than quadruple the steps (quadratic would be 16x). Both texts are
    longer than the generator's bounded repeats can take (five parts of at most {1,40}):
    below that, a bounded repeat's fixed cost (`^.{0,5}.{1,40}$`: 86 steps at 40
    characters, 898 at 160, 1,378 at 640) reads as growth."""
    try:
        check_pattern(pattern)
    except UnsafePattern:
        assume(False)
    small, large = 250, 1000
    texts = [(unit * large)[:size] + tail for size in (small, large)]
    counts = [backtracking_steps(pattern, text, 2_000_000) for text in texts]
    assert counts[1] <= 5 * counts[0] + 200, (pattern, counts)
