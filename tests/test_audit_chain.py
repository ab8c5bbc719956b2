"""The audit log's hash chain: records sealed in order, and any change, removal or gap
among the sealed ones found by the verifier (and `make audit-verify`)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from app.audit.chain import AuditChain
from app.clock import utc_now
from app.config import Settings
from app.container import Container
from tests.support.scripts import script


async def recorded(container: Container, count: int) -> list[object]:
    for n in range(count):
        await container.audit.record(
            "sign_in",
            at=utc_now(),
            outcome="failure" if n % 2 else "success",
            actor_id=f"user-{n}",
            via="session",
            address="203.0.113.7",
            request_id=f"req-{n}",
            route="/v1/auth/login",
            status=200,
        )
    records = container.db["audit_log"].find({}, projection={"_id": True}).sort("_id", 1)
    return [r["_id"] async for r in records]


def later(container: Container) -> AuditChain:
    """The chain as its sealer sees it a minute from now: every record is old enough."""
    return AuditChain(
        container.db,
        clock=lambda: utc_now() + timedelta(minutes=1),
        retention_days=container.settings.audit_retention_days,
    )


async def test_records_are_sealed_in_order_once_and_verify(container: Container) -> None:
    ids = await recorded(container, 5)
    assert await container.audit_chain.seal() == 0  # not SEAL_AFTER old yet
    chain = later(container)
    # Two sealers at once (a leader that lost its lease): one chain all the same.
    assert sorted(await asyncio.gather(chain.seal(), chain.seal())) == [0, 5]
    assert await chain.seal() == 0
    entries = await chain.chain.find({}).sort("_id", 1).to_list()
    assert [(e["_id"], e["record"]) for e in entries] == list(enumerate(ids, start=1))
    verdict = await chain.verify()
    assert verdict.sound and verdict.entries == 5 and verdict.head == entries[-1], (
        await _who_sealed_more(chain, after=5)
    )
    await recorded(container, 2)
    assert await chain.seal() == 2
    assert (await chain.verify()).entries == 7


async def _who_sealed_more(chain: AuditChain, *, after: int) -> list[dict[str, object]]:
    """The records of the entries past `after` (a flake once in five full runs found ten
    more entries than the test sealed: this says what they were)."""
    more = await chain.chain.find({"_id": {"$gt": after}}).sort("_id", 1).to_list(None)
    records = {
        r["_id"]: r async for r in chain.records.find({"_id": {"$in": [e["record"] for e in more]}})
    }
    return [{**e, "of": records.get(e["record"])} for e in more]


@pytest.mark.parametrize("tamper", ["change", "remove", "drop_entry"])
async def test_a_change_to_the_sealed_log_is_found(container: Container, tamper: str) -> None:
    ids = await recorded(container, 4)
    chain = later(container)
    await chain.seal()
    victim = ids[1]
    if tamper == "change":  # someone with database access clears their tracks
        await chain.records.update_one({"_id": victim}, {"$set": {"outcome": "success"}})
    elif tamper == "remove":
        await chain.records.delete_one({"_id": victim})
    else:
        await chain.chain.delete_one({"_id": 2})
    verdict = await chain.verify()
    assert not verdict.sound
    expected = {
        "change": f"record {victim} (entry 2) differs",
        "remove": f"record {victim} (entry 2) was removed",
        "drop_entry": "entries 2 to 2 are missing",
    }[tamper]
    assert any(expected in problem for problem in verdict.problems), verdict.problems


async def test_the_script_prints_the_head_and_fails_when_tampered_with(
    container: Container, settings: Settings
) -> None:
    ids = await recorded(container, 3)
    await later(container).seal()
    sound = script(settings, "scripts.audit_verify")
    assert sound.returncode == 0, sound.stderr
    head = await container.audit_chain.head()
    assert head is not None and f"head: entry 3, hash {head['hash']}" in sound.stdout
    assert "the chain is sound" in sound.stdout
    await container.db["audit_log"].update_one({"_id": ids[0]}, {"$set": {"address": "x"}})
    tampered = script(settings, "scripts.audit_verify")
    assert tampered.returncode == 1
    assert f"TAMPERED: record {ids[0]} (entry 1) differs" in tampered.stdout


async def test_a_record_written_around_the_api_is_sealed_all_the_same(
    container: Container,
) -> None:
    """A type JSON lacks (bytes, a decimal) hashes by its type and value: the chain, and
    the change pump whose chore seals it, never stop on one odd record."""
    from bson import Decimal128

    await container.db["audit_log"].insert_one(
        {
            "at": utc_now(),
            "action": "imported",
            "details": {"blob": b"\x00\x01"},
            "n": Decimal128("1.5"),
        }
    )
    chain = later(container)
    assert await chain.seal() == 1
    assert (await chain.verify()).sound
    await container.db["audit_log"].update_one({}, {"$set": {"n": Decimal128("2.5")}})
    assert not (await chain.verify()).sound
