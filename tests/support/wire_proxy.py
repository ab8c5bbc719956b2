"""A MongoDB wire-protocol proxy for tests that loses the reply to one chosen command.

The command reaches the database and is applied; its reply never reaches the driver,
whose connection is cut instead. The driver then retries the write (retryable writes) on
a new connection: the situation in which a conditioned write may be applied twice.
MongoDB recognises the retry by its session's `txnNumber` and answers from the first
attempt; the proxy can strip that number from the retry (`forget_retries`), as a server
or router that does not deduplicate retries would see it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit

import bson

OP_MSG = 2013
Command = dict[str, Any]


async def _message(reader: asyncio.StreamReader) -> bytes | None:
    """One whole wire message (header included), or None at the end of the stream."""
    try:
        head = await reader.readexactly(4)
        return head + await reader.readexactly(int.from_bytes(head, "little") - 4)
    except (asyncio.IncompleteReadError, ConnectionError):
        return None


def _without_txn_number(message: bytes, command: Command) -> bytes:
    """The OP_MSG with `txnNumber` removed from its command document."""
    size = int.from_bytes(message[21:25], "little")
    body = bson.encode({k: v for k, v in command.items() if k != "txnNumber"})
    rest = message[21 + size :]
    length = 21 + len(body) + len(rest)
    return length.to_bytes(4, "little") + message[4:21] + body + rest


def _command(message: bytes) -> Command | None:
    """The command document of an OP_MSG (its kind-0 section), else None."""
    if int.from_bytes(message[12:16], "little") != OP_MSG or message[20] != 0:
        return None
    size = int.from_bytes(message[21:25], "little")
    decoded: Command = bson.decode(message[21 : 21 + size])
    return decoded


class LosingProxy:
    """Forwards everything between the driver and the database, except the reply to the
    first command that `lose` picks once `arm()` was called."""

    def __init__(
        self, database_url: str, lose: Callable[[Command], bool], *, forget_retries: bool = False
    ) -> None:
        target = urlsplit(database_url)
        assert target.hostname is not None and target.port is not None
        self.upstream = (target.hostname, target.port)
        self.lose = lose
        self.forget_retries = forget_retries
        self.armed = False
        self.lost = 0
        self.url = ""
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    def arm(self) -> None:
        self.armed = True

    async def __aenter__(self) -> LosingProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"mongodb://127.0.0.1:{port}/?directConnection=true"
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, client: asyncio.StreamReader, to_client: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._pipes.add(task)
        database, to_database = await asyncio.open_connection(*self.upstream)
        doomed: set[int] = set()  # request ids whose replies are lost

        async def requests() -> None:
            while (message := await _message(client)) is not None:
                command = _command(message)
                if command is not None and self.lose(command):
                    if self.armed:
                        self.armed = False
                        doomed.add(int.from_bytes(message[4:8], "little", signed=True))
                    elif self.lost and self.forget_retries and "txnNumber" in command:
                        message = _without_txn_number(message, command)
                to_database.write(message)
                await to_database.drain()

        async def replies() -> None:
            while (message := await _message(database)) is not None:
                if int.from_bytes(message[8:12], "little", signed=True) in doomed:
                    self.lost += 1
                    return  # applied, but the driver never hears: the connection drops
                to_client.write(message)
                await to_client.drain()

        try:
            async with _first_done(requests(), replies()):
                pass
        finally:
            for writer in (to_client, to_database):
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
            self._pipes.discard(task)


@contextlib.asynccontextmanager
async def _first_done(*pipes: Any) -> AsyncIterator[None]:
    """Run both directions until either ends; then stop the other."""
    tasks = [asyncio.ensure_future(pipe) for pipe in pipes]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
