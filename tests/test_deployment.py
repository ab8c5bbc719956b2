"""compose.yaml and the Dockerfile say what operators rely on (no Docker engine needed)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.db.embedded import EmbeddedDatabase, running_url
from tests.support.databases import stop_later

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return loaded


def test_mongo_is_a_replica_set_initiated_by_its_healthcheck(compose: dict[str, Any]) -> None:
    mongo = compose["services"]["mongo"]
    assert mongo["image"].startswith("mongo:")
    assert "--replSet" in mongo["command"]
    check = " ".join(mongo["healthcheck"]["test"])
    assert "rs.initiate" in check and "isWritablePrimary" in check
    volume = next(v for v in mongo["volumes"] if v.endswith(":/data/db"))
    assert volume.split(":")[0] in compose["volumes"]


def test_the_api_waits_for_a_healthy_primary_and_needs_a_secret(compose: dict[str, Any]) -> None:
    api = compose["services"]["api"]
    assert api["build"] == "."
    assert api["depends_on"]["mongo"]["condition"] == "service_healthy"
    env = api["environment"]
    assert env["ENV"] == "prod"
    assert "replicaSet=rs0" in env["MONGODB_URL"]
    assert env["JWT_SECRET"].startswith("${JWT_SECRET:?")  # compose refuses to start without
    assert env["MAIL_URL"].startswith("${MAIL_URL:?")
    assert "/readyz" in " ".join(api["healthcheck"]["test"])


def test_the_image_runs_as_non_root_with_a_healthcheck_and_workers() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    final_stage = dockerfile.split("\nFROM ")[-1]
    assert "\nUSER docstore" in final_stage
    assert "HEALTHCHECK" in final_stage and "/healthz" in final_stage
    assert "WEB_CONCURRENCY=2" in final_stage
    assert "--require-hashes --requirement requirements.lock" in dockerfile


def _compose_command() -> list[str] | None:
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run(
            [docker, "compose", "version"], capture_output=True, check=False
        ).returncode
        == 0
    ):
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


@pytest.mark.skipif(_compose_command() is None, reason="no docker compose / docker-compose here")
def test_docker_compose_config_accepts_the_file() -> None:
    command = _compose_command()
    assert command is not None

    def config(**values: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k not in ("JWT_SECRET", "MAIL_URL")}
        return subprocess.run(
            [*command, "-f", "compose.yaml", "config"],
            cwd=ROOT,
            env={**env, **values},
            capture_output=True,
            text=True,
            check=False,
        )

    ok = config(JWT_SECRET="x" * 64, MAIL_URL="smtp://mail.example:587")
    assert ok.returncode == 0, ok.stderr
    for missing, given in (("JWT_SECRET", "MAIL_URL"), ("MAIL_URL", "JWT_SECRET")):
        refused = config(**{given: "smtp://mail.example:587" if given == "MAIL_URL" else "x" * 64})
        assert refused.returncode != 0
        assert missing in refused.stderr


def test_a_second_server_for_another_database_refuses_to_share_the_embedded_one(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    first = EmbeddedDatabase(data_dir, database="docstore")  # what `make run` started
    first.start()
    try:
        env = {k: v for k, v in os.environ.items() if k != "MONGODB_URL"}
        env.update(DATA_DIR=str(data_dir), MONGODB_DB="other", PORT="0")
        second = subprocess.run(
            [sys.executable, "-m", "app"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert second.returncode != 0
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1, second.stderr
        assert "MONGODB_DB=docstore" in lines[0] and f"DATA_DIR={data_dir}-other" in lines[0]
        # The first server's database is still there, and its own data directory.
        assert running_url(data_dir, "docstore") == first.url
    finally:
        stop_later(first)
