"""Start-up and shut-down of the app: open the container, close it cleanly."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app.config import Settings
from app.container import open_container


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    async with open_container(settings) as container:
        app.state.container = container
        app.state.settings = container.settings  # with the signing key filled in
        yield
