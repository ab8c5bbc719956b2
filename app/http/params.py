"""Path parameter types shared by routers of several domains."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

from app.documents.schemas import NOT_RESERVED

# Any id a document may have (server-made ids included), in a path.
DocumentPathId = Annotated[
    str,
    Path(json_schema_extra={"pattern": f"^{NOT_RESERVED}[^/]+$"}, description="A document's id"),
]
