"""Which interpreter `make install` builds .venv with, and when it builds it again (read
from `make -n`: nothing is installed)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAKE = shutil.which("make")

pytestmark = pytest.mark.skipif(MAKE is None, reason="make is not installed")


def planned(tmp_path: Path, **variables: str) -> list[str]:
    """The commands `make install` would run for a virtualenv under tmp_path."""
    assert MAKE is not None
    # Not what an outer make passes down (`make test PYTHON=...` puts it in MAKEFLAGS).
    passed_down = ("PYTHON", "SYSTEM_PYTHON", "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")
    env = {k: v for k, v in os.environ.items() if k not in passed_down}
    result = subprocess.run(
        [MAKE, "-n", "install", f"VENV={tmp_path / 'venv'}"]
        + [f"{name}={value}" for name, value in variables.items()],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def system_python(tmp_path: Path, *, recent: bool) -> Path:
    """A stand-in for /usr/bin/python3 that answers the Makefile's version check."""
    fake = tmp_path / "system-python3"
    fake.write_text(f"#!/bin/sh\nexit {0 if recent else 1}\n")
    fake.chmod(0o755)
    return fake


def made_with(lines: list[str], tmp_path: Path) -> str:
    """The interpreter that creates the virtualenv."""
    suffix = f" -m venv --clear --without-pip {tmp_path / 'venv'}"
    made = [line.removesuffix(suffix) for line in lines if line.endswith(suffix)]
    assert len(made) <= 1, lines
    return made[0] if made else ""


def test_a_system_python_of_3_11_or_newer_builds_the_virtualenv(tmp_path: Path) -> None:
    system = system_python(tmp_path, recent=True)
    assert made_with(planned(tmp_path, SYSTEM_PYTHON=str(system)), tmp_path) == str(system)


def test_an_older_or_missing_system_python_leaves_it_to_python3(tmp_path: Path) -> None:
    older = system_python(tmp_path, recent=False)
    assert made_with(planned(tmp_path, SYSTEM_PYTHON=str(older)), tmp_path) == "python3"
    missing = tmp_path / "no-such-python3"
    assert made_with(planned(tmp_path, SYSTEM_PYTHON=str(missing)), tmp_path) == "python3"


def test_python_given_by_the_developer_wins(tmp_path: Path) -> None:
    system = system_python(tmp_path, recent=True)
    chosen = "/opt/python3.13/bin/python3"
    lines = planned(tmp_path, SYSTEM_PYTHON=str(system), PYTHON=chosen)
    assert made_with(lines, tmp_path) == chosen


def test_another_interpreter_than_the_one_that_built_it_builds_it_again(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    venv.mkdir()
    (venv / ".built-with").write_text("/usr/bin/python3\n")
    (venv / ".installed-stamp").touch()  # newer than the lock files: installed
    assert made_with(planned(tmp_path, PYTHON="/usr/bin/python3"), tmp_path) == ""
    chosen = "/opt/python3.13/bin/python3"
    assert made_with(planned(tmp_path, PYTHON=chosen), tmp_path) == chosen
    # Built before the interpreter was recorded: built again once, with today's choice.
    (venv / ".built-with").unlink()
    assert made_with(planned(tmp_path, PYTHON=chosen), tmp_path) == chosen


def test_the_interpreter_a_developer_chose_stays_until_they_choose_again(
    tmp_path: Path,
) -> None:
    venv = tmp_path / "venv"
    venv.mkdir()
    chosen = "/opt/python3.13/bin/python3"
    (venv / ".built-with").write_text(f"{chosen}\n")  # `make install PYTHON=...` once
    (venv / ".installed-stamp").touch()
    system = system_python(tmp_path, recent=True)
    assert made_with(planned(tmp_path, SYSTEM_PYTHON=str(system)), tmp_path) == ""
