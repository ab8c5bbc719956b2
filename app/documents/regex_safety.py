r"""Refuse client regexes that can backtrack catastrophically (ReDoS).

`check_pattern(pattern, options)` is a pure function: it returns None for a pattern it can
prove cheap and raises `UnsafePattern` (a ValueError) with a message saying what is wrong
and how to rewrite it otherwise. Patterns run in MongoDB (PCRE2) or in the embedded
development database (Python `re`, no match limit, time limit checked only between
documents), so one evaluation against a 256 KB value must stay cheap in a backtracking
engine. The checker is deliberately conservative: whatever it cannot analyse is refused.

Why not a library: in 2025/2026 no maintained, permissively licensed, pure-Python ReDoS
analyser fitted. regexploit has not been released since 2021; `redos` and `redos-analyzer`
are single beta releases tuned for few reports (we need the opposite: fail closed);
redos-linter/recheck need a JavaScript runtime; ReDoctor is BSL-licensed. So this module
walks Python's own regex parser (`re._parser`), with the alternation-to-character-class
merge switched off so that `(a|a)` or `(\w|\d)` keep the shape PCRE backtracks over,
and with the parser's "possible nested set" warnings turned into refusals (PCRE reads
`[[:alpha:]]`, `[a--b]` differently from Python).

Character classes are compared as sets of code points that over-approximate both engines
(Python's Unicode `\d \w \s`, PCRE's ASCII ones, case folding under `i`, PCRE's `\v`),
so "disjoint" below always means disjoint in both.

Refused (each with its own message):

* anything Python cannot parse, PCRE-only syntax (`\Q..\E`, `\p{..}`, `(?|..)`,
  `(*VERB)`, POSIX classes), atomic groups `(?>..)` and possessive quantifiers `a++`,
  `$options` other than `i`, `m`, `s`, `x`; inline flags are fine (`(?i)`, `(?s:..)`);
* backreferences, conditionals `(?(1)..)`, lookahead and lookbehind;
* nested quantifiers: a repeat with an upper bound over 1 inside another one, e.g.
  `(a+)+`, `(a*)*`, `(a{2,})+`, `((ab)*c)+`, `(.*a){12}`, and also `^\w+( \w+)*$` - the
  nested rule wins even when the inner parts look harmless;
* a quantifier whose body can match the empty string (`(a?)*`, `(a|)+`, `(a*)?`) and an
  alternation with more than one branch that can match the empty string;
* ambiguity inside a repeat: alternatives that can start with the same character, or
  any other way for the repeated group to match the same text twice (`(a|aa)+`,
  `(a|a)*`, `(\w|\d)+`, `(.|\s)*`, `(xa?a?)+`);
* polynomial backtracking: two long repeats (unbounded, or bound over 32) whose
  character sets overlap, with nothing mandatory between them outside the characters both
  accept (`\d+\d+`, `a*a*`, `.*a.*`, `\w+\s?\w+`);
* unanchored searches: unless the pattern starts with `\A`, or `^` without the `m`
  option, a long repeat that every character before it could also match (`\s+$`,
  `[a-z]+@`, `a[a-z]+@`, `foo.*bar`) is retried from every start position, O(n^2).
  With `m`, `^` anchors every line, so this applies to repeats that can match a newline;
* more than 64 ways to reach one point of the pattern with one text: overlapping
  optional parts, alternatives and short bounded repeats multiply (`a?a?a?a?aaaa`,
  `(a|a)(a|a)...`, `\d{0,9}\d{0,9}\d{0,9}`); a long repeat also counts every
  character just before it that it accepts too, so `^` + 70 `x` + `.*` is refused.
  Alternatives that merely share a first letter (`^(Jan|Jun|Jul)`) cost nothing here;
* patterns over 1000 characters or too large to analyse.

Accepted, for example: `^abc`, `abc`, `^foo.*bar`, `^[a-z]+@[a-z]+\.com$`, `colou?r`,
`^\d{3}-\d{4}$`, `(?i)hello`, `^(cat|dog)s?$`, `^a+b+$`, `x\s+$`, `^\d+(\.\d+)?$`,
`^[^@\s]+@[^@\s]+$`, `^.{1,100}$`, `\bfoo\b`: literal contains-searches, anchored
prefixes, and single repeats over classes separated by delimiters they do not accept.
Bounds above 32 count as unbounded (so `{1000,}` and `{0,100000}` are simply long repeats).

Assumptions: MongoDB compiles patterns without PCRE2_UCP (its `\d \w \s` are ASCII; the
`(*UCP)` verb does not parse here); `$`, `\b` and other zero-width assertions are treated
as matching anywhere, which only over-counts work.
"""

from __future__ import annotations

import builtins
import functools
import importlib
import re
import types
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final, TypeAlias

__all__ = ["UnsafePattern", "check_pattern"]

MAX_PATTERN_LENGTH: Final = 1000
LONG_REPEAT: Final = 32  # repeats with a larger upper bound are treated as unbounded
MAX_AMBIGUITY: Final = 64  # most ways a pattern may match the same text
_MAX_NESTING: Final = 50
_MAX_POSITIONS: Final = 1000
_MAX_EDGES: Final = 20_000

_sre: Any = importlib.import_module("re._parser")
_C: Any = importlib.import_module("re._constants")
try:
    _EXTRA_CASES: dict[int, tuple[int, ...]] = dict(
        importlib.import_module("re._casefix")._EXTRA_CASES
    )
except (ImportError, AttributeError):  # pragma: no cover - older layouts
    _EXTRA_CASES = {}

_MAXREPEAT: Final[int] = int(_C.MAXREPEAT)
_REPEATS: Final = (_C.MAX_REPEAT, _C.MIN_REPEAT, _C.POSSESSIVE_REPEAT)
_OPTION_FLAGS: Final = {
    "i": int(_C.SRE_FLAG_IGNORECASE),
    "m": int(_C.SRE_FLAG_MULTILINE),
    "s": int(_C.SRE_FLAG_DOTALL),
    "x": int(_C.SRE_FLAG_VERBOSE),
}


class UnsafePattern(ValueError):
    """The pattern may backtrack catastrophically, or cannot be analysed."""


# --------------------------------------------------------------------------- char sets
# A set of code points is a sorted tuple of disjoint, non-adjacent inclusive ranges.

_Ranges: TypeAlias = tuple[tuple[int, int], ...]
_MAX_CP: Final = 0x10FFFF
_ALL: Final[_Ranges] = ((0, _MAX_CP),)


def _ranges(pairs: Iterable[tuple[int, int]]) -> _Ranges:
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(pairs):
        if out and lo <= out[-1][1] + 1:
            if hi > out[-1][1]:
                out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return tuple(out)


def _chars(*codes: int) -> _Ranges:
    return _ranges((c, c) for c in codes)


def _union(*sets: _Ranges) -> _Ranges:
    return _ranges(pair for s in sets for pair in s)


def _complement(a: _Ranges) -> _Ranges:
    out: list[tuple[int, int]] = []
    nxt = 0
    for lo, hi in a:
        if lo > nxt:
            out.append((nxt, lo - 1))
        nxt = hi + 1
    if nxt <= _MAX_CP:
        out.append((nxt, _MAX_CP))
    return tuple(out)


def _intersect(a: _Ranges, b: _Ranges) -> _Ranges:
    out: list[tuple[int, int]] = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if lo <= hi:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return tuple(out)


def _overlaps(a: _Ranges, b: _Ranges) -> bool:
    i = j = 0
    while i < len(a) and j < len(b):
        if max(a[i][0], b[j][0]) <= min(a[i][1], b[j][1]):
            return True
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return False


def _describe_char(r: _Ranges) -> str:
    """A readable member of r, for messages."""
    for lo, hi in ("az", "09", "AZ", "  ", "!~"):
        hit = _intersect(r, ((ord(lo), ord(hi)),))
        if hit:
            return repr(chr(hit[0][0]))
    code = r[0][0] if r else 0
    return repr(chr(code)) if code < 0x80 or chr(code).isprintable() else f"U+{code:04X}"


_ASCII_DIGIT: Final = ((0x30, 0x39),)
_ASCII_WORD: Final = _ranges([(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)])
_ASCII_SPACE: Final = _chars(0x09, 0x0A, 0x0C, 0x0D, 0x20)  # VT left out: PCRE1 lacks it
_ASCII_LETTERS: Final = ((0x41, 0x5A), (0x61, 0x7A))
# PCRE reads `\v` (which Python parses as the single VT character) as vertical space.
_VERTICAL_SPACE: Final = _chars(0x0A, 0x0B, 0x0C, 0x0D, 0x85, 0x2028, 0x2029)
_NEWLINES: Final = _VERTICAL_SPACE


@functools.cache
def _unicode_classes() -> dict[str, _Ranges]:
    """Python's own Unicode \\d, \\w and \\s, computed once by running re over every code point."""
    text = "".join(map(chr, range(_MAX_CP + 1)))
    return {
        name: tuple((m.start(), m.end() - 1) for m in re.finditer(rx, text))
        for name, rx in (("d", r"\d+"), ("w", r"\w+"), ("s", r"\s+"))
    }


def _category_bounds(cat: Any) -> tuple[_Ranges, _Ranges]:
    """(superset, subset) of what a \\d-style category matches in either engine."""
    uni = _unicode_classes()
    table = {
        _C.CATEGORY_DIGIT: (uni["d"], _ASCII_DIGIT),
        _C.CATEGORY_WORD: (uni["w"], _ASCII_WORD),
        _C.CATEGORY_SPACE: (_union(uni["s"], _chars(0x0B)), _ASCII_SPACE),
    }
    negated = {
        _C.CATEGORY_NOT_DIGIT: _C.CATEGORY_DIGIT,
        _C.CATEGORY_NOT_WORD: _C.CATEGORY_WORD,
        _C.CATEGORY_NOT_SPACE: _C.CATEGORY_SPACE,
    }
    if cat in table:
        return table[cat]
    if cat in negated:
        over, under = table[negated[cat]]
        return _complement(under), _complement(over)
    raise UnsafePattern(f"unsupported character category {cat}")


@functools.cache
def _case_variants(code: int) -> tuple[int, ...]:
    seen = {code}
    todo = [code]
    while todo:
        ch = chr(todo.pop())
        found: list[int] = []
        for s in (ch.lower(), ch.upper(), ch.casefold(), ch.title()):
            if len(s) == 1:
                found.append(ord(s))
                found.extend(_EXTRA_CASES.get(ord(s), ()))
        for c in found:
            if c not in seen:
                seen.add(c)
                todo.append(c)
    return tuple(sorted(seen))


def _fold(s: _Ranges) -> _Ranges:
    """Over-approximate s under case-insensitive matching."""
    extra: list[tuple[int, int]] = []
    for lo, hi in s:
        if hi - lo <= 512:
            extra.extend((v, v) for c in range(lo, hi + 1) for v in _case_variants(c))
        else:
            extra.extend(_ASCII_LETTERS)
            extra.append((0x80, _MAX_CP))
    return _union(s, tuple(extra))


def _literal_set(code: int, ignorecase: bool) -> _Ranges:
    s = _VERTICAL_SPACE if code == 0x0B else _chars(code)
    return _fold(s) if ignorecase else s


def _class_set(items: Any, ignorecase: bool) -> _Ranges:
    """Superset of what a [...] class matches in either engine."""
    negate = bool(items) and items[0][0] == _C.NEGATE
    over: list[_Ranges] = []
    under: list[_Ranges] = []
    for op, av in items[1:] if negate else items:
        if op == _C.LITERAL:
            over.append(_literal_set(av, ignorecase))
            under.append(_chars(av))
        elif op == _C.RANGE:
            lo, hi = av
            span = ((lo, hi),)
            over.append(_fold(span) if ignorecase else span)
            if lo <= 0x0B <= hi:
                over.append(_VERTICAL_SPACE)
            under.append(span)
        elif op == _C.CATEGORY:
            o, u = _category_bounds(av)
            over.append(o)
            under.append(u)
        else:
            raise UnsafePattern(f"unsupported character class item {op}")
    if negate:
        return _complement(_union(*under))
    return _union(*over)


# ------------------------------------------------------------------------------ parser
# CPython's parser merges `a|b` into `[ab]` and `\w|\d` into `[\w\d]`; PCRE does not, and
# backtracks over the branches. A copy of `_parse`/`parse` bound to a namespace whose
# `_parse_sub` keeps every alternation as a BRANCH gives the analysis PCRE's shape.


class _ParserWarning(Exception):
    pass


def _refuse_warning(message: object, *args: object, **kwargs: object) -> None:
    raise _ParserWarning(str(message))


def _make_parser() -> Callable[[str, int], Any]:
    ns: dict[str, Any] = dict(vars(_sre))
    strict_warnings = types.SimpleNamespace(warn=_refuse_warning)
    real_import = builtins.__import__

    def guarded_import(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "warnings":
            return strict_warnings
        return real_import(name, *args, **kwargs)

    fake_builtins = dict(vars(builtins))
    fake_builtins["__import__"] = guarded_import
    ns["__builtins__"] = fake_builtins

    def parse_sub(source: Any, state: Any, verbose: Any, nested: int) -> Any:
        items: list[Any] = []
        while True:
            items.append(ns["_parse"](source, state, verbose, nested + 1, not nested and not items))
            if not source.match("|"):
                break
            if not nested:
                verbose = state.flags & ns["SRE_FLAG_VERBOSE"]
        if len(items) == 1:
            return items[0]
        sub = ns["SubPattern"](state)
        sub.append((ns["BRANCH"], (None, items)))
        return sub

    def clone(fn: Any) -> Any:
        return types.FunctionType(fn.__code__, ns, fn.__name__, fn.__defaults__, fn.__closure__)

    ns["_parse_sub"] = parse_sub
    ns["_parse"] = clone(_sre._parse)
    parse: Callable[[str, int], Any] = clone(_sre.parse)
    return parse


def _self_test(parse: Callable[[str, int], Any]) -> bool:
    try:
        tree = parse("(?:a|a)", 0)
        return len(tree) == 1 and tree[0][0] == _C.BRANCH
    except Exception:  # pragma: no cover - a Python whose parser changed shape
        return False


_PARSER: Final = _make_parser()
_PARSE: Final = _PARSER if _self_test(_PARSER) else None


def _parse(pattern: str, flags: int) -> Any:
    if _PARSE is None:  # pragma: no cover
        raise UnsafePattern("regex analysis is unavailable on this Python version")
    try:
        return _PARSE(pattern, flags)
    except _ParserWarning as exc:
        raise UnsafePattern(
            f"ambiguous character-class syntax ({exc}): PCRE and Python read it differently; "
            "escape '[', '-', '&', '~' and '|' inside brackets"
        ) from None
    except RecursionError:
        raise UnsafePattern("the pattern is nested too deeply to analyse") from None
    except Exception as exc:  # re.error, OverflowError, ValueError...: refuse them all
        raise UnsafePattern(
            f"cannot parse the pattern ({exc}); use the regex syntax PCRE and Python share"
        ) from None


# ---------------------------------------------------------------------------- rendering

_CATEGORY_TEXT: Final = {
    _C.CATEGORY_DIGIT: r"\d",
    _C.CATEGORY_NOT_DIGIT: r"\D",
    _C.CATEGORY_SPACE: r"\s",
    _C.CATEGORY_NOT_SPACE: r"\S",
    _C.CATEGORY_WORD: r"\w",
    _C.CATEGORY_NOT_WORD: r"\W",
}
_AT_TEXT: Final = {
    _C.AT_BEGINNING: "^",
    _C.AT_BEGINNING_STRING: r"\A",
    _C.AT_END: "$",
    _C.AT_END_STRING: r"\Z",
    _C.AT_BOUNDARY: r"\b",
    _C.AT_NON_BOUNDARY: r"\B",
}
_ESCAPES: Final = {"\n": r"\n", "\t": r"\t", "\r": r"\r", "\f": r"\f", "\v": r"\v"}


def _esc(code: int, in_class: bool = False) -> str:
    ch = chr(code)
    if ch in ("\\]^-[" if in_class else ".^$*+?{}[]\\|()"):
        return "\\" + ch
    if ch in _ESCAPES:
        return _ESCAPES[ch]
    if ch.isprintable():
        return ch
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else ch


def _render_class(items: Any) -> str:
    if len(items) == 1 and items[0][0] == _C.CATEGORY:
        return _CATEGORY_TEXT.get(items[0][1], "?")
    parts: list[str] = []
    for op, av in items:
        if op == _C.NEGATE:
            parts.append("^")
        elif op == _C.LITERAL:
            parts.append(_esc(av, True))
        elif op == _C.RANGE:
            parts.append(f"{_esc(av[0], True)}-{_esc(av[1], True)}")
        elif op == _C.CATEGORY:
            parts.append(_CATEGORY_TEXT.get(av, "?"))
    return "[" + "".join(parts) + "]"


def _flag_letters(flags: int) -> str:
    letters = "".join(ch for ch, bit in _OPTION_FLAGS.items() if flags & bit)
    return letters + ("a" if flags & int(_C.SRE_FLAG_ASCII) else "")


def _render(items: Any) -> str:
    items = list(items)
    parts: list[str] = []
    for op, av in items:
        text = _render_item(op, av)
        if op == _C.BRANCH and len(items) > 1:
            text = f"(?:{text})"
        parts.append(text)
    return "".join(parts)


def _render_item(op: Any, av: Any) -> str:
    if op == _C.LITERAL:
        return _esc(av)
    if op == _C.NOT_LITERAL:
        return f"[^{_esc(av, True)}]"
    if op == _C.ANY:
        return "."
    if op == _C.IN:
        return _render_class(av)
    if op == _C.AT:
        return _AT_TEXT.get(av, "")
    if op == _C.BRANCH:
        return "|".join(_render(b) for b in av[1])
    if op == _C.SUBPATTERN:
        group, add, delete, sub = av
        if group is not None:
            return f"({_render(sub)})"
        off = _flag_letters(delete)
        return f"(?{_flag_letters(add)}{'-' + off if off else ''}:{_render(sub)})"
    if op in _REPEATS:
        lo, hi, sub = av
        body = _render(sub)
        if len(sub) != 1 or sub[0][0] in (_C.BRANCH, *_REPEATS):
            body = f"(?:{body})"
        if (lo, hi) == (0, _MAXREPEAT):
            quant = "*"
        elif (lo, hi) == (1, _MAXREPEAT):
            quant = "+"
        elif (lo, hi) == (0, 1):
            quant = "?"
        elif lo == hi:
            quant = f"{{{lo}}}"
        elif hi == _MAXREPEAT:
            quant = f"{{{lo},}}"
        else:
            quant = f"{{{lo},{hi}}}"
        suffix = "?" if op == _C.MIN_REPEAT else "+" if op == _C.POSSESSIVE_REPEAT else ""
        return body + quant + suffix
    if op in (_C.ASSERT, _C.ASSERT_NOT):
        direction, sub = av
        kind = ("<" if direction < 0 else "") + ("=" if op == _C.ASSERT else "!")
        return f"(?{kind}{_render(sub)})"
    if op == _C.ATOMIC_GROUP:
        return f"(?>{_render(av)})"
    if op == _C.GROUPREF:
        return f"\\{av}"
    if op == _C.GROUPREF_EXISTS:
        cond, yes, no = av
        return f"(?({cond}){_render(yes)}{'|' + _render(no) if no else ''})"
    return "?"


# ------------------------------------------------------------------ intermediate form


@dataclass(frozen=True, slots=True)
class _Char:
    chars: _Ranges


@dataclass(frozen=True, slots=True)
class _Anchor:
    kind: str  # "start" (\A, ^ without m), "line" (^ with m) or "other" ($, \b, ...)


@dataclass(frozen=True, slots=True)
class _Seq:
    items: tuple[_Node, ...]


@dataclass(frozen=True, slots=True)
class _Alt:
    branches: tuple[_Node, ...]


@dataclass(frozen=True, slots=True)
class _Repeat:
    lo: int
    hi: int | None  # None: unbounded
    body: _Node
    text: str
    has_alternation: bool

    @property
    def loops(self) -> bool:
        return self.hi is None or self.hi > 1

    @property
    def long(self) -> bool:
        return self.hi is None or self.hi > LONG_REPEAT


_Node: TypeAlias = _Char | _Anchor | _Seq | _Alt | _Repeat
_EMPTY_SEQ: Final = _Seq(())


def _nullable(node: _Node) -> bool:
    if isinstance(node, _Char):
        return False
    if isinstance(node, _Anchor):
        return True
    if isinstance(node, _Seq):
        return all(_nullable(i) for i in node.items)
    if isinstance(node, _Alt):
        return any(_nullable(b) for b in node.branches)
    return node.lo == 0 or _nullable(node.body)


def _children(node: _Node) -> tuple[_Node, ...]:
    if isinstance(node, _Seq):
        return node.items
    if isinstance(node, _Alt):
        return node.branches
    if isinstance(node, _Repeat):
        return (node.body,)
    return ()


def _contains(node: _Node, pred: Callable[[_Node], bool]) -> bool:
    return pred(node) or any(_contains(c, pred) for c in _children(node))


def _is_loop(node: _Node) -> bool:
    return isinstance(node, _Repeat) and node.loops


class _Converter:
    """sre parse tree -> _Node, refusing constructs the analysis does not cover."""

    def __init__(self) -> None:
        self.depth = 0

    def seq(self, items: Any, flags: int) -> _Node:
        self.depth += 1
        if self.depth > _MAX_NESTING:
            raise UnsafePattern("the pattern is nested too deeply to analyse")
        nodes = tuple(self.item(op, av, flags) for op, av in items)
        self.depth -= 1
        return nodes[0] if len(nodes) == 1 else _Seq(nodes)

    def item(self, op: Any, av: Any, flags: int) -> _Node:
        ignorecase = bool(flags & _OPTION_FLAGS["i"])
        if op == _C.LITERAL:
            return _Char(_literal_set(av, ignorecase))
        if op == _C.NOT_LITERAL:
            return _Char(_complement(_chars(av)))
        if op == _C.ANY:
            return _Char(_ALL if flags & _OPTION_FLAGS["s"] else _complement(_chars(0x0A)))
        if op == _C.IN:
            return _Char(_class_set(av, ignorecase))
        if op == _C.AT:
            if av == _C.AT_BEGINNING_STRING:
                return _Anchor("start")
            if av == _C.AT_BEGINNING:
                return _Anchor("line" if flags & _OPTION_FLAGS["m"] else "start")
            return _Anchor("other")
        if op == _C.SUBPATTERN:
            _group, add, delete, sub = av
            return self.seq(sub, (flags | add) & ~delete)
        if op == _C.BRANCH:
            branches = tuple(self.seq(b, flags) for b in av[1])
            if sum(_nullable(b) for b in branches) > 1:
                raise UnsafePattern(
                    f"alternation {_render_item(op, av)!r} has more than one branch that can "
                    "match the empty string, so the same text matches in several ways; keep "
                    "at most one empty branch"
                )
            return _Alt(branches)
        if op in (_C.MAX_REPEAT, _C.MIN_REPEAT):
            return self.repeat(op, av, flags)
        if op == _C.POSSESSIVE_REPEAT or op == _C.ATOMIC_GROUP:
            raise UnsafePattern(
                f"atomic groups and possessive quantifiers ({_render_item(op, av)!r}) are not "
                "supported; use a plain group or quantifier"
            )
        if op == _C.GROUPREF:
            raise UnsafePattern(
                f"backreference {_render_item(op, av)!r} is not allowed: it cannot be analysed "
                "and can backtrack exponentially; spell the repeated text out instead"
            )
        if op == _C.GROUPREF_EXISTS:
            raise UnsafePattern(
                f"conditional group {_render_item(op, av)!r} is not allowed; "
                "use an alternation instead"
            )
        if op in (_C.ASSERT, _C.ASSERT_NOT):
            raise UnsafePattern(
                f"lookahead/lookbehind assertion {_render_item(op, av)!r} is not allowed; "
                "rewrite the pattern without it"
            )
        raise UnsafePattern(f"unsupported regex construct {op}")

    def repeat(self, op: Any, av: Any, flags: int) -> _Node:
        lo, hi, sub = av
        text = _render_item(op, av)
        body = self.seq(sub, flags)
        upper = None if hi == _MAXREPEAT else int(hi)
        if upper == 0:
            return _EMPTY_SEQ
        rep = _Repeat(int(lo), upper, body, text, _contains(body, lambda n: isinstance(n, _Alt)))
        if rep.loops and _contains(body, _is_loop):
            raise UnsafePattern(
                f"nested quantifier {text!r} can backtrack catastrophically (exponential "
                "time): a repeated group must not contain another repeat; e.g. rewrite "
                "'(a+)+' as 'a+', or '(\\w+\\s?)*' as '[\\w\\s]*'"
            )
        if _nullable(body) and (rep.loops or rep.lo == 0):
            if rep.loops:
                raise UnsafePattern(
                    f"repeat {text!r} repeats something that can match the empty string, "
                    "which backtracks catastrophically; make the repeated part match at "
                    "least one character, e.g. '(a?)*' -> 'a*'"
                )
            raise UnsafePattern(
                f"{text!r} makes optional something that can already match the empty "
                "string, so the same text matches in several ways; drop the outer '?'"
            )
        if not rep.loops and rep.lo == 1:
            return body
        return rep


def _leading_anchor(node: _Node) -> str:
    """'start', 'line', 'none' (some path starts unanchored) or 'empty' (zero-width only)."""
    if isinstance(node, _Char):
        return "none"
    if isinstance(node, _Anchor):
        return node.kind if node.kind in ("start", "line") else "empty"
    if isinstance(node, _Seq):
        for item in node.items:
            kind = _leading_anchor(item)
            if kind != "empty":
                return kind
        return "empty"
    if isinstance(node, _Alt):
        kinds = {_leading_anchor(b) for b in node.branches}
        if kinds <= {"start"}:
            return "start"
        if kinds <= {"start", "line"}:
            return "line"
        return "none" if kinds - {"empty"} else "empty"
    kind = _leading_anchor(node.body)
    return kind if node.lo >= 1 or kind == "empty" else "none"


# ------------------------------------------------------------------ position automaton
# Glushkov construction: one position per character-consuming atom; follow[p] lists the
# positions that can consume the next character. Repeats with an upper bound over 1 are
# loops (bounded ones are not unrolled); nesting was refused, so each position belongs
# to at most one loop and every cycle stays inside a single loop.


@dataclass
class _Loop:
    rep: _Repeat
    positions: frozenset[int] = frozenset()
    entry: frozenset[int] = frozenset()
    chars: _Ranges = ()
    exits: frozenset[int] = frozenset()


@dataclass
class _Automaton:
    sets: list[_Ranges] = field(default_factory=list)
    loop_of: list[int | None] = field(default_factory=list)
    follow: list[set[int]] = field(default_factory=list)
    loops: list[_Loop] = field(default_factory=list)
    edges: int = 0

    def link(self, sources: Iterable[int], targets: frozenset[int]) -> None:
        for s in sources:
            before = len(self.follow[s])
            self.follow[s] |= targets
            self.edges += len(self.follow[s]) - before
        if self.edges > _MAX_EDGES:
            raise UnsafePattern("the pattern is too large to analyse; simplify it")

    def build(self, node: _Node, loop: int | None) -> tuple[bool, frozenset[int], frozenset[int]]:
        """Add node's positions; return (nullable, first positions, last positions)."""
        if isinstance(node, _Char):
            p = len(self.sets)
            if p >= _MAX_POSITIONS:
                raise UnsafePattern("the pattern is too large to analyse; simplify it")
            self.sets.append(node.chars)
            self.loop_of.append(loop)
            self.follow.append(set())
            return False, frozenset((p,)), frozenset((p,))
        if isinstance(node, _Anchor):
            return True, frozenset(), frozenset()
        if isinstance(node, _Seq):
            nullable, first, last = True, frozenset[int](), frozenset[int]()
            for item in node.items:
                n, f, la = self.build(item, loop)
                self.link(last, f)
                if nullable:
                    first |= f
                last = last | la if n else la
                nullable = nullable and n
            return nullable, first, last
        if isinstance(node, _Alt):
            results = [self.build(b, loop) for b in node.branches]
            return (
                any(r[0] for r in results),
                frozenset().union(*(r[1] for r in results)),
                frozenset().union(*(r[2] for r in results)),
            )
        if node.loops:
            lid = len(self.loops)
            start = len(self.sets)
            self.loops.append(_Loop(node))
            n, f, la = self.build(node.body, lid)
            self.link(la, f)
            positions = frozenset(range(start, len(self.sets)))
            self.loops[lid].positions = positions
            self.loops[lid].entry = f
            self.loops[lid].chars = _union(*(self.sets[p] for p in positions))
        else:
            n, f, la = self.build(node.body, loop)
        return n or node.lo == 0, f, la

    def finish(self) -> None:
        for loop in self.loops:
            loop.exits = frozenset(
                q for p in loop.positions for q in self.follow[p] if q not in loop.positions
            )

    def multiplicity(self, ids: Iterable[int]) -> int:
        """Most positions among ids that accept one same character."""
        return _heaviest_overlap((self.sets[i], 1) for i in ids)

    def shared_char(self, ids: Iterable[int]) -> str:
        ids = list(ids)
        for n, a in enumerate(ids):
            for b in ids[n + 1 :]:
                common = _intersect(self.sets[a], self.sets[b])
                if common:
                    return _describe_char(common)
        return "?"  # pragma: no cover

    def reaches(
        self, starts: Iterable[int], mask: _Ranges, targets: frozenset[int], skip: frozenset[int]
    ) -> _Ranges | None:
        """Walk from starts through positions accepting a character of mask; the shared
        characters of the first target reached, or None."""
        seen: set[int] = set()
        todo = [q for q in starts if q not in skip]
        while todo:
            q = todo.pop()
            if q in seen:
                continue
            seen.add(q)
            common = _intersect(self.sets[q], mask)
            if not common:
                continue
            if q in targets:
                return common
            todo.extend(r for r in self.follow[q] if r not in skip and r not in seen)
        return None

    def key(self, q: int) -> int:
        """Node of the loop-condensed graph: a position outside loops, or -1 - loop id."""
        lid = self.loop_of[q]
        return q if lid is None else -1 - lid

    def node_chars(self, k: int) -> _Ranges:
        return self.sets[k] if k >= 0 else self.loops[-1 - k].chars

    def node_order(self, k: int) -> int:
        return k if k >= 0 else min(self.loops[-1 - k].positions)

    def predecessors(self) -> dict[int, set[int]]:
        """Condensed graph, reversed: node -> nodes with an edge into it."""
        preds: dict[int, set[int]] = {}
        for p, targets in enumerate(self.follow):
            kp = self.key(p)
            for q in targets:
                kq = self.key(q)
                if kq != kp:
                    preds.setdefault(kq, set()).add(kp)
        return preds

    def lead_in(self, loop: _Loop, preds: dict[int, set[int]]) -> int:
        """Longest stretch right before the loop whose characters the loop also accepts:
        it bounds how many different points the loop can be entered at for one text.
        Short loops count their bound; a long loop ends the stretch."""

        def weight(k: int) -> int:
            if k >= 0:
                return 1
            other = self.loops[-1 - k].rep
            size = len(self.loops[-1 - k].positions)
            return size if other.long or other.hi is None else size * other.hi

        def earlier(k: int) -> set[int]:
            if k < 0 and self.loops[-1 - k].rep.long:
                return set()
            return preds.get(k, set())

        me = -1 - self.loops.index(loop)
        reachable: set[int] = set()
        todo = [k for k in preds.get(me, ()) if _overlaps(self.node_chars(k), loop.chars)]
        while todo:
            k = todo.pop()
            if k in reachable:
                continue
            reachable.add(k)
            todo.extend(e for e in earlier(k) if _overlaps(self.node_chars(e), loop.chars))
        best: dict[int, int] = {}
        for k in sorted(reachable, key=self.node_order):
            best[k] = weight(k) + max((best[e] for e in earlier(k) if e in best), default=0)
        return max(best.values(), default=0)


def _heaviest_overlap(weighted: Iterable[tuple[_Ranges, int]]) -> int:
    """Largest total weight of sets that share one character."""
    totals: dict[_Ranges, int] = {}
    for chars, w in weighted:
        totals[chars] = totals.get(chars, 0) + w
    if len(totals) < 2:
        return max(totals.values(), default=0)
    events = sorted(
        ev for chars, w in totals.items() for lo, hi in chars for ev in ((lo, w), (hi + 1, -w))
    )
    cur = best = 0
    for _, delta in events:
        cur += delta
        best = max(best, cur)
    return best


# ------------------------------------------------------------------------------ checks


def _check_loops(auto: _Automaton) -> None:
    for loop in auto.loops:
        groups = [loop.entry, *(auto.follow[p] & loop.positions for p in loop.positions)]
        for group in groups:
            if auto.multiplicity(group) > 1:
                char = auto.shared_char(group)
                text = loop.rep.text
                if loop.rep.has_alternation:
                    raise UnsafePattern(
                        f"alternation inside repeat {text!r} can backtrack catastrophically: "
                        f"its branches can match the same text (both accept {char}); make "
                        "the branches start with different characters, e.g. '(a|aa)+' -> "
                        "'a+', '(\\w|\\d)+' -> '\\w+'"
                    )
                raise UnsafePattern(
                    f"repeat {text!r} can match the same text in more than one way (around "
                    f"{char}), which backtracks catastrophically; make each part of the "
                    "repeated group accept different characters"
                )


def _check_sequences(auto: _Automaton) -> None:
    long_loops = [loop for loop in auto.loops if loop.rep.long]
    for a in long_loops:
        for b in long_loops:
            if a is b:
                continue
            mask = _intersect(a.chars, b.chars)
            if not mask:
                continue
            common = auto.reaches(a.exits, mask, b.positions, a.positions)
            if common is not None:
                raise UnsafePattern(
                    f"{a.rep.text!r} followed by {b.rep.text!r}: both repeats accept "
                    f"{_describe_char(common)} with nothing mandatory between them that only "
                    "one accepts, so a failing match backtracks in polynomial time; merge "
                    "them into one repeat or separate them by a character neither accepts"
                )


def _check_unanchored(auto: _Automaton, root_first: frozenset[int], anchor: str) -> None:
    if anchor == "start":
        return
    for loop in auto.loops:
        if not loop.rep.long:
            continue
        if anchor == "line" and not _overlaps(loop.chars, _NEWLINES):
            continue
        common = auto.reaches(root_first, loop.chars, loop.positions, frozenset())
        if common is None:
            continue
        where = (
            "every line start (with the m option '^' anchors lines, and this repeat "
            "accepts a newline)"
            if anchor == "line"
            else "every start position of an unanchored search"
        )
        raise UnsafePattern(
            f"repeat {loop.rep.text!r} is reached from {where}: nothing mandatory before "
            f"it rejects {_describe_char(common)}, so a failing search takes quadratic "
            "time; anchor the pattern with '^' (without m) or '\\A', start it with a "
            "character the repeat does not accept, or drop a redundant leading '+'/'*' "
            "(e.g. '\\s+$' -> '\\s$', '[a-z]+@' -> '[a-z]@')"
        )


def _check_ambiguity(
    auto: _Automaton, root_first: frozenset[int], root_last: frozenset[int]
) -> None:
    """Bound the number of ways to reach one point of the pattern with one text.

    ways(position) = ways of its predecessors that can read the same last character;
    ways(loop) = ways into it, times the number of points it can be entered at for one
    text (its lead-in); loops are internally unambiguous by now. Overlapping optional
    parts and alternatives multiply (`(a|a)(a|a)`, `a?a?aa`); disjoint ones do not.
    """
    preds = auto.predecessors()
    root_keys = {auto.key(q) for q in root_first}
    nodes = {auto.key(q) for q in range(len(auto.sets))}
    end = len(auto.sets)  # the end of the pattern, after every last position
    preds[end] = {auto.key(q) for q in root_last}
    ways: dict[int, int] = {}
    for k in [*sorted(nodes, key=auto.node_order), end]:
        incoming = _heaviest_overlap((auto.node_chars(p), ways[p]) for p in preds.get(k, ()))
        start = 1 if k in root_keys else 0
        if k >= 0:
            ways[k] = max(start, incoming)
        else:
            loop = auto.loops[-1 - k]
            ways[k] = (start + incoming) * (auto.lead_in(loop, preds) + 1)
        if ways[k] > MAX_AMBIGUITY:
            raise UnsafePattern(
                f"the pattern can match the same text in more than {MAX_AMBIGUITY} ways "
                "(overlapping optional parts, alternatives or repeats, e.g. 'a?a?a?aaa', "
                "'(a|a)(a|a)' or '\\d{0,9}\\d{0,9}\\d{0,9}'), which makes failing matches "
                "expensive; make adjacent parts accept different characters"
            )


def check_pattern(pattern: str, options: str = "") -> None:
    """Raise UnsafePattern unless `pattern` (with MongoDB `$options`) is safe to run."""
    if not isinstance(pattern, str) or not isinstance(options, str):
        raise UnsafePattern("the pattern and its options must be strings")
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise UnsafePattern(f"the pattern is longer than {MAX_PATTERN_LENGTH} characters")
    flags = 0
    for ch in options:
        if ch not in _OPTION_FLAGS:
            raise UnsafePattern(f"unsupported $options flag {ch!r}; only i, m, s and x are allowed")
        flags |= _OPTION_FLAGS[ch]
    tree = _parse(pattern, flags)
    try:
        root = _Converter().seq(tree, int(tree.state.flags))
        auto = _Automaton()
        _nullable, root_first, root_last = auto.build(root, None)
        auto.finish()
        _check_loops(auto)
        _check_sequences(auto)
        _check_unanchored(auto, root_first, _leading_anchor(root))
        _check_ambiguity(auto, root_first, root_last)
    except RecursionError:
        raise UnsafePattern("the pattern is nested too deeply to analyse") from None
