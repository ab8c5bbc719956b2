"""Full-text search: the words of a collection's text fields, kept in each document.

MongoDB's `$text` needs a text index, which the embedded database (SecantusDB) lacks, and
Atlas Search is a separate service; so Docstore keeps its own token index, the same on
both. On every write of a collection that declares `search`, the repository stores next
to `data`:

- `_search`: the distinct terms of the declared fields (a multikey index answers lookups);
- `_search_first`: the distinct terms of the first declared field (its "title");
- `_search_len`: how many words the fields have (shorter documents rank first on a tie).

A term is a word folded to lower case without accents (Unicode NFKD, combining marks
dropped), then reduced to its stem by the Snowball stemmer of the collection's language
(`running`, `runs` and `run` are one term in English), common English words dropped for
English. A search matches documents having any of its terms (as `$text` does), ranked by
how many distinct terms they have, then how many are in the first field, then length.

Bounds: at most MAX_TEXT_CHARS of a document's fields are read, words are cut at
MAX_WORD_CHARS, MAX_TERMS terms are kept; a query has at most MAX_QUERY_TERMS terms and
ranks at most MAX_CANDIDATES matches. Terms carry the declaration they were made under
(`_search_key`): a changed declaration matches only documents indexed since (or by
`make reindex`).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

import snowballstemmer

LANGUAGES = ("none", "english", "french", "german", "spanish", "italian", "portuguese", "dutch")
MAX_TEXT_CHARS = 32 * 1024  # of all the declared fields together, per document
MAX_WORD_CHARS = 64
MAX_TERMS = 2000
MAX_QUERY_TERMS = 16
# A search ranks at most this many matching documents (the first the index yields): for
# words most documents have, the ranking is of that sample, not of every match.
MAX_CANDIDATES = 2000

_WORD = re.compile(r"\w+")
_ENGLISH_STOP = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "for",
        "from",
        "has",
        "have",
        "he",
        "her",
        "his",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "me",
        "my",
        "no",
        "not",
        "of",
        "on",
        "or",
        "our",
        "she",
        "so",
        "than",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "to",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "who",
        "will",
        "with",
        "you",
        "your",
    ]
)


@lru_cache(maxsize=16)
def _stemmer(language: str) -> Any:
    return snowballstemmer.stemmer(language)


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


@lru_cache(maxsize=65536)
def _stem(language: str, word: str) -> str:
    stem: str = _stemmer(language).stemWord(word)
    return stem


def _words(text: str, language: str) -> list[str]:
    words = [w[:MAX_WORD_CHARS] for w in _WORD.findall(_fold(text))]
    if language == "english":
        words = [w for w in words if w not in _ENGLISH_STOP]
    if language == "none":
        return words
    # Stems are cached: the same words recur across documents, and pure-Python Snowball
    # costs a few microseconds a word.
    return [_stem(language, w) for w in words]


def _text_at(data: Any, path: str, budget: int) -> str:
    """The text under `data.<path>` (strings, and the strings inside lists and objects),
    at most `budget` characters."""
    node: Any = data
    for segment in path.split(".")[1:]:
        if not isinstance(node, dict):
            return ""
        node = node.get(segment)
    parts: list[str] = []
    size = 0

    def collect(value: Any) -> None:
        nonlocal size
        if size >= budget:
            return
        if isinstance(value, str):
            parts.append(value[: budget - size])
            size += len(parts[-1])
        elif isinstance(value, list):
            for item in value:
                collect(item)
        elif isinstance(value, dict):
            for item in value.values():
                collect(item)

    collect(node)
    return " ".join(parts)


class Indexer:
    """The search terms of a collection's documents, for its declared fields."""

    def __init__(self, fields: Iterable[str], language: str) -> None:
        self.fields = tuple(fields)
        self.language = language
        # What the stored terms were made from: a search matches only documents indexed
        # with the declaration as it is now (a field taken out of `search`, perhaps
        # because a rule now hides it, never matches through terms kept from before).
        self.key = hashlib.sha256(repr((self.fields, self.language)).encode()).hexdigest()[:16]

    def match(self, terms: list[str]) -> dict[str, Any]:
        """The filter of documents indexed under this declaration with any of `terms`."""
        return {"_search": {"$in": terms}, "_search_key": self.key}

    def terms(self, data: dict[str, Any]) -> dict[str, Any]:
        """The fields to store beside `data`."""
        every: dict[str, None] = {}
        first: list[str] = []
        length = 0
        budget = MAX_TEXT_CHARS
        for index, path in enumerate(self.fields):
            text = _text_at(data, path, budget)
            budget -= len(text)
            words = _words(text, self.language)
            length += len(words)
            if index == 0:
                first = list(dict.fromkeys(words))[:MAX_TERMS]
            for word in words:
                if len(every) >= MAX_TERMS:
                    break
                every.setdefault(word)
        return {
            "_search": list(every),
            "_search_first": first,
            "_search_len": length,
            "_search_key": self.key,
        }

    def query(self, text: str) -> list[str]:
        """The distinct terms of a search, in order (at most MAX_QUERY_TERMS)."""
        return list(dict.fromkeys(_words(text, self.language)))[:MAX_QUERY_TERMS]


def score_stage(terms: list[str]) -> dict[str, Any]:
    """An `$addFields` giving each matching document its `_score`: distinct terms matched
    (x 1000), then those in the first field (x 10), minus a length penalty under 1."""

    def matched(field: str) -> Any:
        return {"$size": {"$setIntersection": [{"$ifNull": [f"${field}", []]}, terms]}}

    return {
        "$addFields": {
            "_score": {
                "$subtract": [
                    {
                        "$add": [
                            {"$multiply": [matched("_search"), 1000]},
                            {"$multiply": [matched("_search_first"), 10]},
                        ]
                    },
                    {"$divide": [{"$min": [{"$ifNull": ["$_search_len", 0]}, 9999]}, 10000]},
                ]
            }
        }
    }
