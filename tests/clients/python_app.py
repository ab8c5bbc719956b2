"""A backend script's use of the generated Python client (openapi-python-client), typed
end to end: `mypy --strict` checks it against the generated package; tests/test_clients.py
runs it against a live server.

    python python_app.py BASE_URL EMAIL PASSWORD
"""

from __future__ import annotations

import json
import sys

from docstore_client import AuthenticatedClient, Client
from docstore_client.api.auth import auth_login, auth_register
from docstore_client.api.tasks import tasks_create, tasks_list, tasks_patch
from docstore_client.models import (
    LoginRequest,
    RegisterRequest,
    TasksData,
    TasksDataStatus,
    TasksDocument,
    TasksPage,
    TasksPatch,
    TokenPair,
)
from docstore_client.types import UNSET, Unset


def main(base_url: str, email: str, password: str) -> dict[str, object]:
    anonymous = Client(base_url=base_url, raise_on_unexpected_status=True)
    auth_register.sync_detailed(
        client=anonymous, body=RegisterRequest(email=email, password=password, name="Typed")
    )
    tokens = auth_login.sync(client=anonymous, body=LoginRequest(email=email, password=password))
    assert isinstance(tokens, TokenPair)
    client = AuthenticatedClient(base_url=base_url, token=tokens.access_token)

    created = tasks_create.sync_detailed(
        client=client, body=TasksData(title="From Python", status=TasksDataStatus.TODO)
    )
    task = created.parsed
    assert isinstance(task, TasksDocument)
    title: str = task.data.title
    status: TasksDataStatus = task.data.status
    etag = created.headers["ETag"]

    patched = tasks_patch.sync(
        task.id,
        client=client,
        body=TasksPatch.from_dict({"status": "doing"}),
        if_match=etag,
    )
    assert isinstance(patched, TasksDocument)
    stale = tasks_patch.sync_detailed(
        task.id, client=client, body=TasksPatch.from_dict({"status": "done"}), if_match=etag
    )

    titles: list[str] = []
    cursor: str | Unset = UNSET
    pages = 0
    while True:
        page = tasks_list.sync(client=client, limit=2, cursor=cursor)
        assert isinstance(page, TasksPage)
        titles.extend(item.data.title for item in page.items)
        pages += 1
        if not isinstance(page.next_cursor, str):
            break
        cursor = page.next_cursor
    return {
        "title": title,
        "status": status.value,
        "patched_status": patched.data.status.value,
        "patched_version": patched.version,
        "stale_status": int(stale.status_code),
        "pages": pages,
        "titles": titles,
    }


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:4])))
