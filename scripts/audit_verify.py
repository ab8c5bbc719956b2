"""Check the audit log against its hash chain (app/audit/chain.py).

    python -m scripts.audit_verify
    make audit-verify

Seals what is due first (as the server's change pump would within a minute), then walks
the chain from its oldest entry left, recomputing every hash from the records. Prints
the head (its entry number and hash: keep it somewhere else, and compare the next run's
chain with it) and exits 1 when a record was changed or removed or the chain has a gap.
"""

from __future__ import annotations

import argparse
import sys

from app.audit.chain import Verdict
from app.container import Container
from scripts.cli import guarded, plural, progress, run


def report(verdict: Verdict) -> str:
    if verdict.head is None:
        return "the audit chain is empty: nothing sealed yet"
    lines = [
        f"checked {plural(verdict.entries, 'entry', 'entries')} "
        f"({verdict.first} to {verdict.head['_id']})",
        f"head: entry {verdict.head['_id']}, hash {verdict.head['hash']}",
    ]
    if verdict.unsealed:
        lines.append(
            f"warning: about {plural(verdict.unsealed, 'record')} older than the head are "
            "not sealed (written by a host whose clock is behind?)"
        )
    if verdict.sound:
        lines.append("the chain is sound")
    else:
        lines += [f"TAMPERED: {problem}" for problem in verdict.problems]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.parse_args(argv)

    async def verify(container: Container) -> Verdict:
        chain = container.audit_chain
        await chain.seal(batches=None)
        total = await chain.chain.count_documents({})
        with progress(total, "verifying the audit chain") as bar:
            return await chain.verify(progress=bar)

    def entry() -> int:
        verdict = run(verify)
        print(report(verdict))
        return 0 if verdict.sound else 1

    return guarded(entry)


if __name__ == "__main__":
    sys.exit(main())
