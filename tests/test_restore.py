"""A full export restores into an empty database: accounts, declarations, documents.

The scripts run as operators run them (child processes, see tests/test_scripts.py); the
restored database is then served by the real app and used through the API.
"""

from __future__ import annotations

import json
import shutil
import stat
from pathlib import Path

import httpx
import pyotp
from bson import ObjectId

from app.accounts.models import Role
from app.accounts.oauth_providers import ProviderIdentity
from app.accounts.principal import Principal
from app.clock import utc_now
from app.config import Settings
from app.container import Container
from tests.support.accounts import Account, sign_in
from tests.support.apps import http_client, running_app
from tests.support.scripts import script

ADA_PASSWORD = "ada's own passphrase"
GRACE_PASSWORD = "grace's other passphrase"
ADMIN_PASSWORD = "the admin passphrase"


def other_database(settings: Settings, suffix: str = "_restored") -> Settings:
    """Another database on the same server, as `MONGODB_DB=other` picks it."""
    return settings.model_copy(update={"mongodb_db": settings.mongodb_db + suffix})


async def account(
    container: Container,
    client: httpx.AsyncClient,
    email: str,
    password: str,
    *,
    role: Role = Role.USER,
) -> Account:
    # Ada's address is verified: the flag must survive the export and import.
    await container.auth.create_user(
        email=email,
        password=password,
        name=email,
        role=role,
        email_verified=email.startswith("ada@"),
    )
    return await sign_in(client, email, password)


async def write_notes(client: httpx.AsyncClient, owner: Account, *titles: str) -> list[str]:
    ids = []
    for title in titles:
        response = await client.post(
            "/v1/collections/notes/documents", json={"title": title}, headers=owner.headers
        )
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    return ids


async def declare_notes(client: httpx.AsyncClient, admin: Account) -> None:
    response = await client.post(
        "/v1/collections",
        json={"name": "notes", "access": {"read": "owner", "write": "owner"}},
        headers=admin.headers,
    )
    assert response.status_code == 201, response.text


async def principal(container: Container, user_id: str) -> Principal:
    found = await container.auth.users.get_principal(user_id)
    assert found is not None
    return found


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_a_full_export_restores_into_an_empty_database_and_people_sign_in(
    settings: Settings, container: Container, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    admin = await account(container, client, "admin@example.com", ADMIN_PASSWORD, role=Role.ADMIN)
    ada = await account(container, client, "ada@example.com", ADA_PASSWORD)
    grace = await account(container, client, "grace@example.com", GRACE_PASSWORD)
    await declare_notes(client, admin)
    ada_notes = await write_notes(client, ada, "engine", "loom", "tables")
    grace_notes = await write_notes(client, grace, "compiler")
    receipt = b"%PDF-1.7 Ada's receipt"
    attached = await client.put(
        f"/v1/collections/notes/documents/{ada_notes[0]}/files/receipt.pdf",
        content=receipt,
        headers={**ada.headers, "Content-Type": "application/pdf"},
    )
    assert attached.status_code == 201, attached.text

    crew = (await container.teams.create(await principal(container, ada.id), "Crew")).team
    await container.teams.repository.add_member(crew.id, grace.id, "editor", now=utc_now())

    backup = tmp_path / "backup"
    exported = script(settings, "scripts.export", "--all", "-o", str(backup))
    assert exported.returncode == 0, exported.stderr
    assert "exported 3 users and 1 collection to" in exported.stdout
    assert "notes: 4 documents" in exported.stdout
    assert "1 file; 1 team; 0 old versions, 0 in the trash)" in exported.stdout
    assert "scripts.restore --all" in exported.stdout  # what to do next

    # The export holds password hashes: owner-only files in an owner-only directory.
    assert sorted(p.name for p in backup.iterdir()) == [
        "_history.ndjson",
        "_teams.ndjson",
        "_trash.ndjson",
        "collections.json",
        "files",
        "files.ndjson",
        "notes.ndjson",
        "users.ndjson",
    ]
    assert mode(backup) == mode(backup / "files") == 0o700
    assert {mode(p) for p in [*backup.iterdir(), *(backup / "files").iterdir()] if p.is_file()} == {
        0o600
    }
    users = [json.loads(line) for line in (backup / "users.ndjson").read_text().splitlines()]
    assert sorted(u["email"] for u in users) == [
        "ada@example.com",
        "admin@example.com",
        "grace@example.com",
    ]
    for line in users:
        assert set(line) == {
            "id",
            "email",
            "name",
            "role",
            "disabled",
            "email_verified",
            "created_at",
            "updated_at",
            "password_hash",
        }
        assert line["password_hash"].startswith("$argon2id$")

    target = other_database(settings)
    try:
        imported = script(target, "scripts.restore", "--all", str(backup))
        assert imported.returncode == 0, imported.stderr
        assert "users: 3 users (0 already there)" in imported.stdout
        assert "teams: 1 new, 0 present" in imported.stdout
        assert "collections: 1 collection created" in imported.stdout
        assert "notes: 4 new, 0 present" in imported.stdout
        assert f"MONGODB_DB={target.mongodb_db}" in imported.stdout
        again = script(target, "scripts.restore", "--all", str(backup))
        assert again.returncode == 0, again.stderr
        assert "users: 0 users (3 already there)" in again.stdout
        assert "teams: 0 new, 1 present" in again.stdout
        assert "0 collections created, 0 updated, 1 unchanged" in again.stdout
        assert "notes: 0 new, 4 present" in again.stdout
        copy = container.db.client[target.mongodb_db]
        assert await copy["users"].count_documents({}) == 3
        assert await copy["sessions"].count_documents({}) == 0

        async with running_app(target) as restored, http_client(restored) as api:
            ada_there = await sign_in(api, "ada@example.com", ADA_PASSWORD)
            assert ada_there.id == ada.id
            listed = await api.get("/v1/collections/notes/documents", headers=ada_there.headers)
            assert listed.status_code == 200, listed.text
            items = listed.json()["items"]
            assert sorted(d["id"] for d in items) == sorted(ada_notes)
            assert {d["owner"] for d in items} == {ada.id}
            one = await api.get(
                f"/v1/collections/notes/documents/{ada_notes[0]}", headers=ada_there.headers
            )
            assert one.status_code == 200 and one.json()["data"] == {"title": "engine"}
            restored_file = await api.get(
                f"/v1/collections/notes/documents/{ada_notes[0]}/files/receipt.pdf",
                headers=ada_there.headers,
            )
            assert restored_file.status_code == 200, restored_file.text
            assert restored_file.content == receipt
            assert restored_file.headers["content-type"] == "application/pdf"

            grace_there = await sign_in(api, "grace@example.com", GRACE_PASSWORD)
            assert grace_there.id == grace.id
            teams = (await api.get("/v1/teams", headers=grace_there.headers)).json()["items"]
            assert [(t["id"], t["name"], t["role"], t["owner_id"]) for t in teams] == [
                (crew.id, "Crew", "editor", ada.id)
            ]
            crew_members = await api.get(f"/v1/teams/{crew.id}/members", headers=ada_there.headers)
            assert [(m["user_id"], m["role"]) for m in crew_members.json()["items"]] == [
                (ada.id, "owner"),
                (grace.id, "editor"),
            ]
            refused = await api.get(
                f"/v1/collections/notes/documents/{ada_notes[0]}", headers=grace_there.headers
            )
            assert refused.status_code == 404
            theirs = await api.get("/v1/collections/notes/documents", headers=grace_there.headers)
            assert [d["id"] for d in theirs.json()["items"]] == grace_notes

            wrong = await api.post(
                "/v1/auth/login", json={"email": "ada@example.com", "password": GRACE_PASSWORD}
            )
            assert wrong.status_code == 401
            admin_there = await sign_in(api, "admin@example.com", ADMIN_PASSWORD)
            everyone = await api.get("/v1/users", headers=admin_there.headers)
            assert everyone.status_code == 200, everyone.text
            roles = {u["email"]: u["role"] for u in everyone.json()["items"]}
            verified = {u["email"]: u["email_verified"] for u in everyone.json()["items"]}
            assert verified == {
                "ada@example.com": True,
                "admin@example.com": False,
                "grace@example.com": False,
            }
            assert roles["admin@example.com"] == "admin" and roles["ada@example.com"] == "user"
            assert admin_there.id == admin.id
    finally:
        await container.db.client.drop_database(target.mongodb_db)


async def test_imported_users_keep_ids_get_normalised_emails_and_never_take_an_email(
    settings: Settings, container: Container, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    await container.auth.create_user(
        email="grace@example.com", password=GRACE_PASSWORD, name="Grace here", role=Role.USER
    )
    password_hash = await container.hasher.hash(ADA_PASSWORD)
    ada_id, grace_id, twin_id = (str(ObjectId()) for _ in range(3))

    def line(user_id: str, email: str, **extra: object) -> str:
        body = {
            "id": user_id,
            "email": email,
            "name": "Imported",
            "role": "user",
            "disabled": False,
            "created_at": "2026-01-02T03:04:05.678Z",
            "updated_at": "2026-01-02T03:04:05.678Z",
            "password_hash": password_hash,
            **extra,
        }
        return json.dumps(body) + "\n"

    backup = tmp_path / "backup"
    backup.mkdir()
    (backup / "collections.json").write_text("[]")
    users_file = backup / "users.ndjson"
    good = [
        line(ada_id, "  Ada@Example.COM "),
        line(grace_id, "grace@example.com"),  # another account here has this email
        line(twin_id, "ada@example.com"),  # the same email twice in the file
    ]
    users_file.write_text(good[0] + line(str(ObjectId()), "x@example.com", password_hash="pw"))

    # A bad line stops the import after keeping what came before; fixed, it resumes.
    stopped = script(settings, "scripts.restore", "--all", str(backup))
    assert stopped.returncode == 1
    assert "line 2" in stopped.stderr and "password_hash" in stopped.stderr
    assert "Fix it and run the same command to resume" in stopped.stderr
    assert "Traceback" not in stopped.stderr
    assert await container.db["users"].count_documents({"_id": ObjectId(ada_id)}) == 1

    users_file.write_text("".join(good))
    resumed = script(settings, "scripts.restore", "--all", str(backup))
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stderr
    assert "users: 0 users (0 already there), 2 skipped (email taken)" in resumed.stdout
    assert "warning: skipped 2 users whose email another account" in resumed.stderr

    again = script(settings, "scripts.restore", "--all", str(backup))
    assert again.returncode == 0, again.stderr
    assert "users: 0 users (1 already there), 2 skipped (email taken)" in again.stdout

    stored = await container.db["users"].find_one({"_id": ObjectId(ada_id)})
    assert stored is not None
    assert stored["email"] == "ada@example.com"
    assert stored["password_hash"] == password_hash and stored["token_version"] == 0
    assert await container.db["users"].count_documents({"email": "grace@example.com"}) == 1
    assert await container.db["users"].count_documents({"_id": ObjectId(grace_id)}) == 0
    assert await container.db["users"].count_documents({"_id": ObjectId(twin_id)}) == 0

    ada = await sign_in(client, "ada@example.com", ADA_PASSWORD)
    assert ada.id == ada_id
    grace = await sign_in(client, "grace@example.com", GRACE_PASSWORD)
    assert grace.id != grace_id


async def test_one_collection_into_an_empty_database_is_declared_from_the_export(
    settings: Settings, container: Container, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    admin = await account(container, client, "admin@example.com", ADMIN_PASSWORD, role=Role.ADMIN)
    ada = await account(container, client, "ada@example.com", ADA_PASSWORD)
    await declare_notes(client, admin)
    await write_notes(client, ada, "engine", "loom")
    backup = tmp_path / "backup"
    assert script(settings, "scripts.export", "--all", "-o", str(backup)).returncode == 0
    loose = tmp_path / "loose" / "notes.ndjson"
    loose.parent.mkdir()
    shutil.copy(backup / "notes.ndjson", loose)

    target = other_database(settings)
    copy = container.db.client[target.mongodb_db]
    try:
        refused = script(target, "scripts.restore", "notes", str(loose))
        assert refused.returncode == 1
        assert refused.stderr == (
            f"error: collection notes is not declared in database {target.mongodb_db}: "
            "import with --all from the export directory, or declare it first "
            "(a seed file, or POST /v1/collections)\n"
        )
        assert await copy["docs_notes"].count_documents({}) == 0

        unknown = script(target, "scripts.restore", "tasks", str(backup / "notes.ndjson"))
        assert unknown.returncode == 1
        assert f"nor in {backup / 'collections.json'}" in unknown.stderr
        assert "Traceback" not in unknown.stderr

        imported = script(target, "scripts.restore", "notes", str(backup / "notes.ndjson"))
        assert imported.returncode == 0, imported.stderr
        assert f"declared collection notes in database {target.mongodb_db}" in imported.stderr
        assert "imported 2 documents into notes" in imported.stdout
        declared = await copy["collections"].find_one({"_id": "notes"})
        assert declared is not None and declared["access"]["read"] == "owner"
        stored = {"writes": 0}  # the ids of the last writes are not data: not exported
        originals = [d async for d in container.db["docs_notes"].find({}, stored).sort("_id")]
        assert [d async for d in copy["docs_notes"].find({}, stored).sort("_id")] == originals

        again = script(target, "scripts.restore", "notes", str(backup / "notes.ndjson"))
        assert again.returncode == 0, again.stderr
        assert "imported 0 documents into notes" in again.stdout
        assert "(2 already there)" in again.stdout
        assert "declared" not in again.stderr
    finally:
        await container.db.client.drop_database(target.mongodb_db)


async def test_a_bad_team_line_stops_the_restore_saying_where(
    settings: Settings, container: Container, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    ada = await account(container, client, "ada@example.com", ADA_PASSWORD)
    await container.teams.create(await principal(container, ada.id), "Crew")
    backup = tmp_path / "backup"
    assert script(settings, "scripts.export", "--all", "-o", str(backup)).returncode == 0
    teams_file = backup / "_teams.ndjson"
    line = json.loads(teams_file.read_text())
    line["members"][0]["role"] = "Not A Role"
    teams_file.write_text(json.dumps(line) + "\n")
    target = other_database(settings)
    try:
        refused = script(target, "scripts.restore", "--all", str(backup))
        assert refused.returncode == 1
        assert f"{teams_file}: line 1 after byte 0: members.0.role" in refused.stderr
        assert "Fix it and run the same command to resume" in refused.stderr
        assert await container.db.client[target.mongodb_db]["teams"].count_documents({}) == 0
    finally:
        await container.db.client.drop_database(target.mongodb_db)


async def test_shares_teams_and_a_second_factor_survive_export_and_restore(
    settings: Settings, container: Container, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    admin = await account(container, client, "admin@example.com", ADMIN_PASSWORD, role=Role.ADMIN)
    ada = await account(container, client, "ada@example.com", ADA_PASSWORD)
    grace = await account(container, client, "grace@example.com", GRACE_PASSWORD)
    rules = {"read": "owner == @user || @user in shared.read", "update": "owner == @user"}
    declared = await client.post(
        "/v1/collections",
        json={"name": "notes", "access": {"write": "authenticated", "rules": rules}},
        headers=admin.headers,
    )
    assert declared.status_code == 201, declared.text
    crew = (await container.teams.create(await principal(container, ada.id), "Crew")).team
    made = await client.post(
        "/v1/collections/notes/documents",
        json={"title": "shared"},
        params={"team": crew.id},
        headers=ada.headers,
    )
    note = made.json()["id"]
    shared = await client.post(
        f"/v1/collections/notes/documents/{note}/shares",
        json={"user": grace.id, "access": "read"},
        headers=ada.headers,
    )
    assert shared.status_code == 201, shared.text
    ada_principal = await principal(container, ada.id)
    enrolment = await container.mfa.start_totp(ada_principal, ADA_PASSWORD)
    codes = await container.mfa.confirm_totp(
        ada_principal, pyotp.TOTP(enrolment.secret).at(utc_now())
    )
    # Other ways in: a linked provider for Grace, a passkey for Ada.
    await container.oauth.identities.link(
        ProviderIdentity("google", "g-123", "grace@example.com", True, None),
        user_id=grace.id,
        now=utc_now(),
    )
    await container.passkeys.repository.insert(
        {
            "_id": ObjectId(),
            "user_id": ada.id,
            "credential_id": "Y3JlZGVudGlhbA",
            "public_key": b"\xa5\x01\x02",
            "sign_count": 7,
            "transports": ["internal"],
            "backed_up": True,
            "name": "Phone",
            "created_at": utc_now(),
            "last_used_at": None,
        }
    )

    backup = tmp_path / "backup"
    assert script(settings, "scripts.export", "--all", "-o", str(backup)).returncode == 0
    target = other_database(settings)
    try:
        assert script(target, "scripts.restore", "--all", str(backup)).returncode == 0
        async with running_app(target) as restored, http_client(restored) as api:
            grace_there = await sign_in(api, "grace@example.com", GRACE_PASSWORD)
            got = await api.get(
                f"/v1/collections/notes/documents/{note}", headers=grace_there.headers
            )
            assert got.status_code == 200, got.text
            assert got.json()["team"] == crew.id
            linked = await api.get("/v1/users/me/identities", headers=grace_there.headers)
            assert [(i["provider"], i["subject"]) for i in linked.json()["items"]] == [
                ("google", "g-123")
            ]
            # Ada's second factor is still on: her password alone is not enough.
            login = await api.post(
                "/v1/auth/login", json={"email": "ada@example.com", "password": ADA_PASSWORD}
            )
            assert login.json()["mfa_required"] is True
            verified = await api.post(
                "/v1/auth/mfa/verify",
                json={"mfa_token": login.json()["mfa_token"], "recovery_code": codes[0]},
            )
            assert verified.status_code == 200, verified.text
            keys = await api.get(
                "/v1/users/me/passkeys",
                headers={"Authorization": f"Bearer {verified.json()['access_token']}"},
            )
            assert [(k["name"], k["backed_up"]) for k in keys.json()["items"]] == [("Phone", True)]
            stored = await restored.state.container.passkeys.repository.by_credential(
                "Y3JlZGVudGlhbA"
            )
            assert stored is not None and stored["public_key"] == b"\xa5\x01\x02"
            assert stored["sign_count"] == 7
    finally:
        await container.db.client.drop_database(target.mongodb_db)
