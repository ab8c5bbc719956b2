"""Write the API contract to openapi.json (`make openapi`); a test fails when it drifts.

python -m scripts.openapi [--check]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from app.config import Settings
from app.main import create_app

CONTRACT = Path(__file__).resolve().parents[1] / "openapi.json"


def current_contract() -> dict[str, Any]:
    # Default settings: the contract must not depend on anyone's .env.
    spec: dict[str, Any] = create_app(Settings(_env_file=None)).openapi()
    return spec


def render(spec: dict[str, Any]) -> str:
    return json.dumps(spec, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if openapi.json is stale")
    args = parser.parse_args(argv)
    text = render(current_contract())
    if args.check:
        if not CONTRACT.exists() or CONTRACT.read_text(encoding="utf-8") != text:
            print("openapi.json is out of date: run `make openapi` and commit it", file=sys.stderr)
            return 1
        print("openapi.json is up to date")
        return 0
    CONTRACT.write_text(text, encoding="utf-8")
    print(f"wrote {CONTRACT.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
