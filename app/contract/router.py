"""GET /v1/schema/openapi.json: the live contract, typed per collection the caller may read."""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from typing import Annotated

from fastapi import APIRouter, Header, Request, Response

from app.collections.models import CollectionSpec
from app.contract.live import add_collections
from app.documents import access
from app.http.deps import CollectionServiceDep, OptionalUser, SettingsDep
from app.http.openapi import build_openapi
from app.http.problems import problem_responses

router = APIRouter(prefix="/v1/schema", tags=["schema"])


class ContractCache:
    """Encoded live contracts by declaration state (few distinct states are ever live)."""

    def __init__(self, size: int = 32) -> None:
        self.size = size
        self._entries: OrderedDict[str, bytes] = OrderedDict()
        self._static_tag: str | None = None

    def static_tag(self, static: dict[str, object]) -> str:
        """A digest of the static contract: the same in every process running this code."""
        if self._static_tag is None:
            text = json.dumps(static, sort_keys=True).encode()
            self._static_tag = hashlib.sha256(text).hexdigest()
        return self._static_tag

    def get(self, key: str) -> bytes | None:
        body = self._entries.get(key)
        if body is not None:
            self._entries.move_to_end(key)
        return body

    def put(self, key: str, body: bytes) -> None:
        self._entries[key] = body
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)


def _state(static_tag: str, server: str, specs: list[CollectionSpec]) -> str:
    """Changes whenever any declaration in the contract (or the server, or the code) does."""
    digest = hashlib.sha256(f"{static_tag}\n{server}".encode())
    for spec in sorted(specs, key=lambda s: s.id):
        digest.update(f"\n{spec.id}\n{spec.updated_at.isoformat()}".encode())
    return digest.hexdigest()[:32]


@router.get(
    "/openapi.json",
    operation_id="schema_openapi",
    summary="The live OpenAPI contract: typed operations for each collection you may read",
    description="The static contract plus, per collection, typed paths, operationIds "
    "(`notes_list`, `notes_get`, ...) and schemas (`NotesData`, `NotesDocument`, "
    "`NotesPage`, `NotesPatch`). Anonymous callers see the public collections. Answers 304 "
    "when `If-None-Match` names its current ETag, which changes with any declaration.",
    response_model=dict[str, object],
    responses={304: {"description": "Not Modified"}, **problem_responses(401)},
)
async def live_contract(
    request: Request,
    caller: OptionalUser,
    collections: CollectionServiceDep,
    settings: SettingsDep,
    if_none_match: Annotated[str | None, Header(max_length=1024)] = None,
) -> Response:
    specs = [
        spec
        for spec in await collections.list_all()
        if caller is not None or access.anonymous_reads(spec)
    ]
    server = settings.public_api_url or str(request.base_url).rstrip("/")
    static = build_openapi(request.app)
    cache: ContractCache = request.app.state.live_contracts
    state = _state(cache.static_tag(static), server, specs)
    headers = {"ETag": f'"{state}"', "Cache-Control": "no-cache", "Vary": "Authorization"}
    if _matches(if_none_match, state):
        return Response(status_code=304, headers=headers)
    body = cache.get(state)
    if body is None:
        body = json.dumps(add_collections(static, specs, server), ensure_ascii=False).encode()
        cache.put(state, body)
    return Response(body, media_type="application/json", headers=headers)


def _matches(if_none_match: str | None, state: str) -> bool:
    """If-None-Match (weak comparison) names this state's tag, or is *."""
    if if_none_match is None:
        return False
    if if_none_match.strip() == "*":
        return True
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return f'"{state}"' in tags
