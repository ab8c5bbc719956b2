"""Create an admin account, or promote an existing account to admin.

make admin EMAIL=ops@example.com PASSWORD='a long passphrase'
python -m scripts.create_admin --email ops@example.com   # prompts for the password
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys

from app.accounts.models import Role
from app.container import Container, open_container
from app.errors import AppError
from scripts.cli import email_argument, script_settings


async def create_or_promote(container: Container, email: str, password: str | None) -> str:
    """Returns what happened, for the operator."""
    existing = await container.users.get_by_email(email)
    if existing is not None:
        if existing.role is Role.ADMIN and not existing.disabled:
            return f"{email} is already an admin; nothing changed"
        await container.user_service.admin_promote(str(existing.id))
        return f"{email} is now an admin"
    if not password:
        raise AppError("A new account needs a password: pass --password or type it when asked")
    # The operator vouches for the address (REQUIRE_VERIFIED_EMAIL must not lock ops out).
    await container.auth.create_user(
        email=email,
        password=password,
        name=email.split("@")[0],
        role=Role.ADMIN,
        email_verified=True,
    )
    return f"created admin {email}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--email", required=True)
    parser.add_argument("--password", help="for a new account; asked for when omitted")
    args = parser.parse_args(argv)
    email = email_argument(args.email)
    if email is None:
        return 2
    password = args.password

    async def run() -> str:
        async with open_container(script_settings(), background=False) as container:
            nonlocal password
            new_account = await container.users.get_by_email(email) is None
            if password is None and new_account and sys.stdin.isatty():
                password = getpass.getpass(f"Password for {email}: ")
            return await create_or_promote(container, email, password)

    try:
        print(asyncio.run(run()))
    except AppError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
