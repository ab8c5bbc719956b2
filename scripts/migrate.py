"""Change every stored document of a collection: a JSON Patch or update operators.

    python -m scripts.migrate COLLECTION --patch FILE.json    (RFC 6902 operations)
    python -m scripts.migrate COLLECTION --update FILE.json   (inc, set, unset, push, ...)
    make migrate COLLECTION=notes PATCH=fix.json [FILTER='{"data.v": 1}'] [DRY_RUN=1]

Each matching document (FILTER: the filter language, as in lists) is changed as an API
write would change it: checked against the collection's schema and limits, written only
if it has not changed meanwhile (then re-read and changed again), its version bumped, so
apps and realtime subscribers see it. Documents the change leaves as they were are not
written; ones that cannot take it (a failed `test`, the schema) are listed at the end and
left alone. Progress is saved beside the change file (FILE.migrate-progress): run the same
command again to resume after the last document reached; after a run that ended with
failures, it tries only those documents again; once it has run to the end without, it
refuses to run again without --restart, which starts over. Each run has an id, saved
before its first batch and written into every document it changes (as the write's id), so
a run killed half-way through a batch and resumed does not change those documents again
(unless they were written 16 more times meanwhile: a document keeps its last 16 write
ids). --restart is a new run: it applies the change again.

A typical schema change: run this to make the stored documents fit the new schema, then
change the schema (PATCH /v1/collections/{name}, or `force: true` to change it first).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from app.container import Container
from app.documents.core import parse_filter
from app.documents.migration import migration_transform
from scripts.cli import ScriptError, guarded, note, plural, progress, run

SHOWN_FAILURES = 20


def checkpoint_path(change_file: Path) -> Path:
    return change_file.with_name(change_file.name + ".migrate-progress")


def _identity(collection: str, kind: str, change: bytes, filter_raw: str | None) -> str:
    """What a checkpoint belongs to: the collection, the change and the filter."""
    digest = hashlib.sha256(change)
    digest.update(f"\0{collection}\0{kind}\0{filter_raw or ''}".encode())
    return digest.hexdigest()


MAX_RETRIED = 10_000  # failed ids kept for a retry run


@dataclass
class Checkpoint:
    after: str | None = None  # resume after this id
    counts: dict[str, int] = field(default_factory=dict)  # so far
    retry: list[str] | None = None  # after a run that ended with failures: only these
    run: int = field(default_factory=lambda: secrets.randbits(63))  # this run's write id


def load_checkpoint(path: Path, identity: str) -> Checkpoint:
    """Where to resume (a new run when nothing was saved)."""
    if not path.exists():
        return Checkpoint()
    try:
        saved = json.loads(path.read_text())
        after, counts, done = saved["after"], dict(saved["counts"]), bool(saved["done"])
        retry = saved.get("retry")
        run = saved.get("run")
    except (ValueError, KeyError, TypeError):
        raise ScriptError(f"{path} is unreadable; delete it or pass --restart") from None
    if saved.get("identity") != identity:
        raise ScriptError(
            f"{path} belongs to another migration (other collection, change or filter); "
            "delete it or pass --restart"
        )
    if done:
        raise ScriptError(
            f"this migration already ran to the end ({path}); --restart applies it again "
            "(a change that is not idempotent, such as adding to a list, would apply twice)"
        )
    found = Checkpoint(after, counts, retry if isinstance(retry, list) else None)
    if isinstance(run, int):  # (a checkpoint from before runs had ids: a new run)
        found.run = run
    return found


def save_checkpoint(
    path: Path,
    identity: str,
    after: str | None,
    counts: dict[str, int],
    *,
    run: int,
    done: bool = False,
    retry: list[str] | None = None,
) -> None:
    # Write then rename: a kill mid-write leaves the previous checkpoint, never half of one.
    partial = path.with_name(path.name + ".tmp")
    state: dict[str, Any] = {
        "identity": identity,
        "after": after,
        "counts": counts,
        "done": done,
        "run": run,
    }
    if retry is not None:
        state["retry"] = retry
    partial.write_text(json.dumps(state))
    os.replace(partial, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("collection")
    change = parser.add_mutually_exclusive_group(required=True)
    change.add_argument("--patch", type=Path, help="a JSON file: a JSON Patch (a list of ops)")
    change.add_argument("--update", type=Path, help="a JSON file: update operators")
    parser.add_argument("--filter", help="only documents matching this filter (JSON)")
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument("--dry-run", action="store_true", help="count, change nothing")
    parser.add_argument("--restart", action="store_true", help="ignore a saved checkpoint")
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error("--batch-size must be at least 1")
    kind: Literal["patch", "update"] = "patch" if args.patch else "update"
    source: Path = args.patch or args.update

    async def migrate(container: Container) -> str:
        if not source.is_file():
            raise ScriptError(f"{source} is not a file: give a JSON file with the change")
        raw = source.read_bytes()
        try:
            body: Any = json.loads(raw)
        except ValueError as exc:
            raise ScriptError(f"{source} is not JSON: {exc}") from None
        spec = await container.collections.get(args.collection)
        documents = container.documents
        transform = migration_transform(kind, body, documents.limits.max_bytes)
        parsed_filter = parse_filter(args.filter) if args.filter else None
        checkpoint = checkpoint_path(source)
        identity = _identity(spec.id, kind, raw, args.filter)
        start = (
            Checkpoint() if args.restart or args.dry_run else load_checkpoint(checkpoint, identity)
        )
        after, counts, only, run = start.after, start.counts, start.retry, start.run
        if not args.dry_run:  # the run's id first: a kill in the first batch resumes it
            save_checkpoint(checkpoint, identity, after, counts, run=run, retry=only)
        if only is not None:
            note(
                f"trying again the {plural(len(only), 'document')} that could not take it "
                f"({checkpoint}; --restart starts over)"
            )
            counts = {"changed": counts.get("changed", 0), "unchanged": 0, "failed": 0}
        elif after is not None:
            note(f"resuming after document {after} ({checkpoint}; --restart starts over)")
        counts = {"changed": 0, "unchanged": 0, "failed": 0} | counts
        failures: list[tuple[str, str]] = []
        failed_ids: list[str] = []
        total = await documents.count_all(spec)
        with progress(total, f"{'checking' if args.dry_run else 'migrating'} {spec.id}") as bar:
            bar.update(sum(counts.values()))
            while True:
                batch = await documents.migrate_batch(
                    spec,
                    transform,
                    parsed_filter=parsed_filter,
                    after=after,
                    size=args.batch_size,
                    dry_run=args.dry_run,
                    only=only,
                    run_id=None if args.dry_run else run,
                )
                if batch.last_id is None:
                    break
                after = batch.last_id
                counts["changed"] += batch.changed
                counts["unchanged"] += batch.unchanged
                counts["failed"] += len(batch.failed)
                failures.extend(batch.failed[: SHOWN_FAILURES - len(failures)])
                failed_ids.extend(i for i, _ in batch.failed[: MAX_RETRIED - len(failed_ids)])
                if not args.dry_run:
                    save_checkpoint(checkpoint, identity, after, counts, run=run, retry=only)
                bar.update(batch.changed + batch.unchanged + len(batch.failed))
        if not args.dry_run:
            if counts["failed"]:  # the next run tries only those again
                save_checkpoint(checkpoint, identity, None, counts, run=run, retry=failed_ids)
            else:  # done: running it again asks for --restart
                save_checkpoint(checkpoint, identity, after, counts, run=run, done=True)
        verb = "would change" if args.dry_run else "changed"
        lines = [
            f"{spec.id}: {verb} {plural(counts['changed'], 'document')}, "
            f"{counts['unchanged']} already as the change leaves them, "
            f"{counts['failed']} could not take it"
        ]
        for doc_id, why in failures:
            lines.append(f"  {doc_id}: {why}")
        if counts["failed"] > len(failures):
            lines.append(f"  ... and {counts['failed'] - len(failures)} more")
        if counts["failed"]:
            lines.append(
                "next: fix those documents (or the change) and run the same command again: "
                "it tries only them"
            )
            raise ScriptError("\n".join(lines))
        return "\n".join(lines)

    def entry() -> int:
        print(run(migrate))
        return 0

    return guarded(entry)


if __name__ == "__main__":
    sys.exit(main())
