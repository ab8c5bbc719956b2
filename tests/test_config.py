"""Settings: production refuses unsafe defaults; lists parse from the environment."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import jwt
import pytest
from pydantic import ValidationError

from app.config import Settings
from app.dev_secret import SECRET_FILE
from tests.support.apps import ROOT, http_client, make_settings, running_app
from tests.support.problems import assert_problem


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def test_dev_defaults_run_on_the_embedded_database() -> None:
    dev = settings()
    assert dev.env == "dev"
    assert dev.uses_embedded_database
    assert dev.password_min_length == 8


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"mongodb_url": "mongodb://db:27017"}, "JWT_SECRET"),
        ({"mongodb_url": "mongodb://db:27017", "jwt_secret": "short"}, "JWT_SECRET"),
        ({"mongodb_url": "mongodb://db:27017", "jwt_secret": ""}, "JWT_SECRET"),
        ({"jwt_secret": "s" * 64}, "MONGODB_URL"),
        (
            {"jwt_secret": "s" * 64, "mongodb_url": "mongodb://db", "argon2_memory_kib": 4096},
            "OWASP",
        ),
        (
            {"jwt_secret": "s" * 64, "mongodb_url": "mongodb://db", "argon2_time_cost": 1},
            "OWASP",
        ),
    ],
)
def test_production_refuses_to_start_with_unsafe_settings(
    values: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        settings(env="prod", **values)


def test_production_starts_with_a_real_secret_and_database() -> None:
    prod = settings(
        env="prod",
        jwt_secret="s" * 64,
        mongodb_url="mongodb://db:27017",
        mail_url="smtp://mail.example:587?starttls=true",
    )
    assert not prod.uses_embedded_database


def test_mail_url_must_be_smtp() -> None:
    with pytest.raises(ValidationError, match="MAIL_URL must look like"):
        settings(mail_url="http://mail.example")
    assert settings(mail_url="smtps://u:p@mail.example:465").mail_url is not None


def test_production_needs_a_mail_server() -> None:
    with pytest.raises(ValidationError, match="MAIL_URL"):
        settings(env="prod", jwt_secret="s" * 64, mongodb_url="mongodb://db:27017")


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORS_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("PASSWORD_MIN_LENGTH", "12")
    monkeypatch.setenv("REGISTRATION_ENABLED", "false")
    loaded = settings()
    assert loaded.cors_origins == ["https://a.example", "https://b.example"]
    assert loaded.password_min_length == 12
    assert loaded.registration_enabled is False


# The constant earlier versions signed development tokens with.
OLD_PUBLIC_DEV_SECRET = "dev-insecure-secret-change-me-0123456789abcdef"


def test_dev_without_a_secret_makes_a_random_private_one_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o755)
    data_dir.chmod(0o755)
    first = settings(data_dir=data_dir).with_signing_key()
    again = settings(data_dir=data_dir).with_signing_key()
    assert len(first.jwt_secret) >= 32
    assert first.jwt_secret == again.jwt_secret != OLD_PUBLIC_DEV_SECRET
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((data_dir / SECRET_FILE).stat().st_mode) == 0o600
    # Another data directory, another key: nothing public to forge tokens with.
    other = settings(data_dir=tmp_path / "other").with_signing_key()
    assert other.jwt_secret != first.jwt_secret
    # A set JWT_SECRET is used as it is.
    assert settings(jwt_secret="k" * 40, data_dir=data_dir).with_signing_key().jwt_secret == (
        "k" * 40
    )


def test_an_unusable_secret_file_says_what_to_do(tmp_path: Path) -> None:
    tmp_path.joinpath(SECRET_FILE).write_text("short")
    with pytest.raises(ValueError, match="delete it"):
        settings(data_dir=tmp_path).with_signing_key()


async def test_a_token_signed_with_the_old_public_dev_key_is_refused(
    database_url: str, tmp_path: Path
) -> None:
    dev = make_settings(database_url, jwt_secret="", data_dir=tmp_path)
    async with running_app(dev) as app, http_client(app) as client:
        user = await app.state.container.auth.create_user(
            email="dev@example.com", password="correct horse battery", name="D", role="admin"
        )
        claims = {
            "sub": str(user.id),
            "iat": 1,
            "exp": 2**31,
            "iss": dev.jwt_issuer,
            "aud": dev.jwt_audience,
            "jti": "x",
            "ver": 0,
            "sid": None,
        }
        forged = jwt.encode(claims, OLD_PUBLIC_DEV_SECRET, algorithm="HS256")
        response = await client.get("/v1/users", headers={"Authorization": f"Bearer {forged}"})
        assert_problem(response, 401, "token_invalid")


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"PORT": "eighty"}, "PORT"),
        ({"ENV": "prod", "MONGODB_URL": "mongodb://db", "JWT_SECRET": "tail-SECRET"}, "JWT_SECRET"),
        ({"METRICS_TOKEN": "short-SECRET"}, "METRICS_TOKEN"),
    ],
)
def test_a_bad_setting_stops_the_server_with_one_line_and_no_secret(
    env: dict[str, str], named: str, tmp_path: Path
) -> None:
    ours = {name.upper() for name in Settings.model_fields}
    clean = {k: v for k, v in os.environ.items() if k.upper() not in ours}
    result = subprocess.run(
        [sys.executable, "-m", "app"],
        cwd=tmp_path,  # no .env here
        env={**clean, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert named in lines[0] and "Traceback" not in result.stderr
    assert "SECRET" not in lines[0].replace("JWT_SECRET", "").replace("METRICS_TOKEN", "")


def test_every_setting_is_in_the_readme_configuration_table() -> None:
    """A setting nobody can find is a setting nobody can use."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    table = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    missing = [name.upper() for name in Settings.model_fields if f"`{name.upper()}" not in table]
    assert not missing, f"add these to the README's configuration table: {missing}"
