"""Index the stored documents of a collection for full-text search.

    python -m scripts.reindex COLLECTION
    make reindex COLLECTION=notes

Writes index themselves; documents stored before a collection declared `search` (or
before its fields or language changed) are found by a search only once this has run. It
goes in id order, a batch at a time, and can run while the server serves: a document
written meanwhile is indexed by its own write. Interrupted, run it again (it is
idempotent; --after ID skips what was done, as printed).
"""

from __future__ import annotations

import argparse
import sys

from app.container import Container
from scripts.cli import guarded, plural, progress, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("collection")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--after", help="start after this document id (a stopped run's last)")
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error("--batch-size must be at least 1")

    async def reindex(container: Container) -> str:
        spec = await container.collections.get(args.collection)
        documents = container.documents
        total = await documents.count_all(spec)
        after, done = args.after, 0
        with progress(total, f"indexing {spec.id}") as bar:
            while True:
                last, count = await documents.reindex_batch(spec, after=after, size=args.batch_size)
                if last is None:
                    break
                done += count
                bar.update(count)
                bar.set_postfix_str(f"last {last}")  # where --after resumes
                after = last
        return f"indexed {plural(done, 'document')} of {spec.id} for search"

    def entry() -> int:
        print(run(reindex))
        return 0

    return guarded(entry)


if __name__ == "__main__":
    sys.exit(main())
