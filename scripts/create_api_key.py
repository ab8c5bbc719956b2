"""Mint an API key for an account, for servers and ops scripts (`make apikey`).

make apikey EMAIL=ops@example.com NAME='nightly import' [DAYS=90]
python -m scripts.create_api_key --email ops@example.com --name 'nightly import' --days 90

Prints the key (`dsk_...`) once; only its hash is stored. Revoke it with
DELETE /v1/users/me/api-keys/{id} (signed in as that account) or by deleting the account.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import timedelta

from app.container import open_container
from scripts.cli import email_argument, script_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--email", required=True)
    parser.add_argument("--name", required=True, help="what the key is for")
    parser.add_argument("--days", type=int, help="expires after this many days (default: never)")
    args = parser.parse_args(argv)
    email = email_argument(args.email)
    if email is None:
        return 2
    if args.days is not None and args.days < 1:
        print("error: --days must be at least 1", file=sys.stderr)
        return 2
    name = args.name.strip()
    if not 1 <= len(name) <= 100:
        print("error: --name must be 1 to 100 characters", file=sys.stderr)
        return 2

    async def run() -> str | None:
        async with open_container(script_settings(), background=False) as container:
            user = await container.users.get_by_email(email)
            if user is None:
                return None
            now = container.auth.clock()
            expires = now + timedelta(days=args.days) if args.days else None
            # An operator with database access: counts as a second factor for an admin
            # under ADMIN_MFA_REQUIRED.
            key, secret = await container.auth.create_api_key(
                str(user.id), name=name, expires_at=expires, mfa=True
            )
            until = f", expires {expires:%Y-%m-%d}" if expires else ""
            return f"{secret}\n(key {key.id} for {email}, '{name}'{until}; shown only now)"

    out = asyncio.run(run())
    if out is None:
        print(
            f"error: no account has {email}; create it first (make admin or register)",
            file=sys.stderr,
        )
        return 1
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
