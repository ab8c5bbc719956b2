"""Helpers the tests import (conftest.py only holds fixtures): `apps` (settings, running
apps, the shared apps and their wipe), `accounts` (signed-in users), `problems`
(problem+json checks), `servers` (uvicorn in a child process), `wire_proxy`."""
