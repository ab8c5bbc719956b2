"""Start-up and shut-down: database (embedded or external), Beanie and indexes, container."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from beanie import init_beanie
from fastapi import FastAPI

from app.auth.models import RateLimitCounter, Session
from app.config import Settings
from app.container import Container
from app.db.client import create_client
from app.db.embedded import EmbeddedDatabase
from app.users.models import User

log = logging.getLogger("docstore.lifespan")

DOCUMENT_MODELS = [User, Session, RateLimitCounter]


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    embedded: EmbeddedDatabase | None = None
    url = settings.mongodb_url
    if url is None:
        embedded = EmbeddedDatabase(settings.data_dir)
        await asyncio.to_thread(embedded.start)
        url = embedded.url
    client = create_client(url, settings)
    try:
        db = client[settings.mongodb_db]
        # Creates every model's declared indexes (unique email, TTLs, ...).
        await init_beanie(database=db, document_models=DOCUMENT_MODELS)
        app.state.container = Container.build(settings, db)
        log.info(
            "ready",
            extra={"database": settings.mongodb_db, "embedded": embedded is not None},
        )
        yield
    finally:
        await client.close()
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)
