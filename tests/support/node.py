"""Node and the pinned tools of clients/ (`make node-tools`), as the client and console
tests run them."""

from __future__ import annotations

import shutil

from tests.support.apps import ROOT

NODE = shutil.which("node")
NODE_TOOLS = ROOT / "clients" / "node_modules"
# TypeScript 7, the native compiler, checks the programs: the same errors as tsc 5.9 at a
# fifth of its CPU (the generated client's program took 14 s of a core, now 2.5). tsc 5.9
# stays for openapi-typescript, which builds the types through its JavaScript API (which
# TypeScript 7 does not have).
TSC = NODE_TOOLS / "typescript-native" / "bin" / "tsc"
