"""Settings: production refuses unsafe defaults; lists parse from the environment."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.config import DEV_SECRET, Settings


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
        ({"mongodb_url": "mongodb://db:27017", "jwt_secret": DEV_SECRET}, "JWT_SECRET"),
        ({"jwt_secret": "s" * 64}, "MONGODB_URL"),
    ],
)
def test_production_refuses_to_start_with_unsafe_settings(
    values: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        settings(env="prod", **values)


def test_production_starts_with_a_real_secret_and_database() -> None:
    prod = settings(env="prod", jwt_secret="s" * 64, mongodb_url="mongodb://db:27017")
    assert not prod.uses_embedded_database


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORS_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("PASSWORD_MIN_LENGTH", "12")
    monkeypatch.setenv("REGISTRATION_ENABLED", "false")
    loaded = settings()
    assert loaded.cors_origins == ["https://a.example", "https://b.example"]
    assert loaded.password_min_length == 12
    assert loaded.registration_enabled is False
