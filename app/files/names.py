"""Pure rules for files: names, how each type is served, sniffing, Range, Content-Disposition."""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote

from app.errors import AppError, ErrorCode, FieldError

MAX_NAME_BYTES = 255
DEFAULT_TYPE = "application/octet-stream"
_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$")
_RANGE_SPEC = re.compile(r"([0-9]{0,18})-([0-9]{0,18})")  # past 10**18: no file is that big

# Types a browser may show inline, and the leading bytes each must start with (None:
# nothing to check; the response says nosniff and the type cannot run script).
INLINE: dict[str, tuple[bytes, ...] | None] = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "image/webp": (b"RIFF",),
    "application/pdf": (b"%PDF-",),
    "text/plain": None,
    "audio/mpeg": None,
    "audio/ogg": None,
    "audio/wav": None,
    "video/mp4": None,
    "video/webm": None,
}
SNIFF_BYTES = 16


class InvalidFilename(AppError):
    code, status = ErrorCode.VALIDATION_FAILED, 422


class ContentTypeMismatch(AppError):
    code, status = ErrorCode.CONTENT_TYPE_MISMATCH, 415


def check_filename(raw: str) -> str:
    """The file name in NFC, or 422: 1-255 UTF-8 bytes, no path separators, no control
    characters, no leading/trailing spaces, not `.` or `..`."""
    name = unicodedata.normalize("NFC", raw)
    problem = None
    if not name or len(name.encode()) > MAX_NAME_BYTES:
        problem = f"must be 1 to {MAX_NAME_BYTES} bytes of UTF-8"
    elif "/" in name or "\\" in name:
        problem = "must not contain / or \\"
    elif any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in name):
        problem = "must not contain control or format characters"
    elif name != name.strip() or name in (".", ".."):
        problem = "must not be . or .., nor start or end with spaces"
    if problem is not None:
        raise InvalidFilename(
            f"The file name {problem}",
            errors=[FieldError(loc=["path", "filename"], msg=problem, type="value_error")],
        )
    return name


def media_type(header: str | None) -> str:
    """The upload's media type (parameters kept only for text, e.g. charset)."""
    if not header:
        return DEFAULT_TYPE
    main, _, params = header.partition(";")
    main = main.strip().lower()
    if not _TYPE.match(main):
        raise InvalidFilename(
            f"Content-Type {header[:100]!r} is not a media type",
            errors=[
                FieldError(
                    loc=["header", "content-type"], msg="not a media type", type="value_error"
                )
            ],
        )
    charset = re.search(r"charset=\"?([A-Za-z0-9_.:-]{1,40})", params)
    if main.startswith("text/") and charset:
        return f"{main}; charset={charset.group(1).lower()}"
    return main


def check_sniff(content_type: str, head: bytes) -> None:
    """Refuse a declared inline type whose first bytes say otherwise (an HTML page sent
    as image/png would otherwise be served as an image and stored as one)."""
    signatures = INLINE.get(content_type.split(";")[0])
    if signatures and not head.startswith(signatures):
        raise ContentTypeMismatch(
            f"The body does not look like {content_type}; send its real Content-Type "
            "(or application/octet-stream)"
        )


def is_inline(content_type: str) -> bool:
    return content_type.split(";")[0] in INLINE


def content_disposition(name: str, *, inline: bool) -> str:
    """RFC 6266: an ASCII fallback and the exact name as RFC 8187 `filename*`."""
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\%' else "_" for c in name)
    kind = "inline" if inline else "attachment"
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


class RangeNotSatisfiable(AppError):
    code, status = ErrorCode.RANGE_NOT_SATISFIABLE, 416

    def __init__(self, detail: str, *, size: int) -> None:
        super().__init__(detail)
        self.size = size  # the file's, for Content-Range (the edge's job)


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) inclusive for a single `bytes=` range; None: send the whole file.

    Several ranges or another unit are ignored (the whole file, as RFC 9110 allows);
    a range that cannot be satisfied, or a malformed one, raises 416.
    """
    if header is None:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    bad = RangeNotSatisfiable(
        f"Range {header[:100]!r} is not within the file's {size} bytes",
        size=size,
    )
    # ASCII digits only: str.isdigit() also admits "²", which int() refuses.
    parts = _RANGE_SPEC.fullmatch(spec.strip())
    if parts is None or not (parts[1] or parts[2]):
        raise bad
    if not parts[1]:  # suffix: the last N bytes
        n = int(parts[2])
        if n == 0 or size == 0:
            raise bad
        return max(0, size - n), size - 1
    first = int(parts[1])
    last = int(parts[2]) if parts[2] else size - 1
    if first >= size or last < first:
        raise bad
    return first, min(last, size - 1)
