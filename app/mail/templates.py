"""Mail templates: `<kind>.subject`, `<kind>.txt` and `<kind>.html` with $placeholders.

The defaults live next to this file; MAIL_TEMPLATES_DIR names a folder whose files of the
same names replace them (one at a time: override only the HTML, say). Values are escaped
in the HTML part.
"""

from __future__ import annotations

import html
from pathlib import Path
from string import Template
from typing import Any

DEFAULTS = Path(__file__).with_name("templates")


def _template(name: str, override: Path | None) -> Template:
    if override is not None and (override / name).is_file():
        return Template((override / name).read_text(encoding="utf-8"))
    return Template((DEFAULTS / name).read_text(encoding="utf-8"))


def render(kind: str, values: dict[str, Any], override: Path | None) -> tuple[str, str, str]:
    """(subject, text, html) of a message of this kind."""
    text_values = {k: str(v) for k, v in values.items()}
    html_values = {k: html.escape(v, quote=True) for k, v in text_values.items()}
    subject = _template(f"{kind}.subject", override).safe_substitute(text_values).strip()
    text = _template(f"{kind}.txt", override).safe_substitute(text_values)
    body = _template(f"{kind}.html", override).safe_substitute(html_values)
    return " ".join(subject.split()), text, body
