"""HTTP endpoints of /v1/webhooks (admins): endpoints, secret rotation, the delivery log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from app.http.deps import AdminUser, WebhookServiceDep
from app.http.problems import problem_responses
from app.http.strict_route import StrictJSONRoute
from app.pagination import id_cursor
from app.webhooks.schemas import (
    DeliveryOut,
    DeliveryPage,
    DeliveryStatus,
    SecretOut,
    WebhookCreated,
    WebhookIn,
    WebhookList,
    WebhookOut,
    WebhookPatch,
)

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"], route_class=StrictJSONRoute)
WebhookId = Annotated[str, Path(max_length=64)]
DeliveryId = Annotated[str, Path(max_length=64)]


@router.get(
    "",
    operation_id="webhooks_list",
    summary="Every webhook (admin)",
    responses=problem_responses(401, 403),
)
async def list_webhooks(_: AdminUser, webhooks: WebhookServiceDep) -> WebhookList:
    return WebhookList(items=[WebhookOut.of(raw) for raw in await webhooks.every()])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    operation_id="webhooks_create",
    summary="Register a webhook (admin); its signing secret is in this answer only",
    description="Changes committed after this call are sent to `url`, signed as Standard "
    "Webhooks (webhook-id, webhook-timestamp, webhook-signature). https only, to public "
    "addresses (checked again at every send), unless WEBHOOK_ALLOW_PRIVATE_TARGETS.",
    responses=problem_responses(401, 403, 409, 422),
)
async def create_webhook(
    body: WebhookIn, _: AdminUser, webhooks: WebhookServiceDep, response: Response
) -> WebhookCreated:
    raw, secret = await webhooks.create(body)
    response.headers["Location"] = f"/v1/webhooks/{raw['_id']}"
    return WebhookCreated(**WebhookOut.of(raw).model_dump(), secret=secret)


@router.get(
    "/{webhook_id}",
    operation_id="webhooks_get",
    summary="One webhook (admin)",
    responses=problem_responses(401, 403, 404),
)
async def get_webhook(
    webhook_id: WebhookId, _: AdminUser, webhooks: WebhookServiceDep
) -> WebhookOut:
    return WebhookOut.of(await webhooks.get(webhook_id))


@router.patch(
    "/{webhook_id}",
    operation_id="webhooks_update",
    summary="Change a webhook (admin)",
    responses=problem_responses(401, 403, 404, 422),
)
async def update_webhook(
    webhook_id: WebhookId, body: WebhookPatch, _: AdminUser, webhooks: WebhookServiceDep
) -> WebhookOut:
    return WebhookOut.of(await webhooks.update(webhook_id, body))


@router.delete(
    "/{webhook_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    operation_id="webhooks_delete",
    summary="Delete a webhook and its queued messages (admin)",
    responses=problem_responses(401, 403, 404),
)
async def delete_webhook(webhook_id: WebhookId, _: AdminUser, webhooks: WebhookServiceDep) -> None:
    await webhooks.delete(webhook_id)


@router.post(
    "/{webhook_id}/secret",
    operation_id="webhooks_rotate_secret",
    summary="Rotate the signing secret (admin); the old one signs too for a while",
    description="Requests carry a signature by each secret in force until "
    "WEBHOOK_SECRET_OVERLAP_SECONDS have passed, so the receiver can switch at any time.",
    responses=problem_responses(401, 403, 404),
)
async def rotate_secret(
    webhook_id: WebhookId, _: AdminUser, webhooks: WebhookServiceDep
) -> SecretOut:
    secret, until = await webhooks.rotate(webhook_id)
    return SecretOut(secret=secret, previous_secret_until=until)


@router.get(
    "/{webhook_id}/deliveries",
    operation_id="webhooks_deliveries",
    summary="The delivery log, newest first (admin)",
    description="Finished messages are kept 7 days.",
    responses=problem_responses(400, 401, 403, 404, 422),
)
async def list_deliveries(
    webhook_id: WebhookId,
    _: AdminUser,
    webhooks: WebhookServiceDep,
    status: Annotated[
        DeliveryStatus | None, Query(description="Only messages in this state")
    ] = None,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=100, description="Page size, 1 to 100")] = 20,
) -> DeliveryPage:
    before = id_cursor(cursor)
    rows = await webhooks.deliveries(webhook_id, status=status, before=before, limit=limit + 1)
    items = [DeliveryOut.of(raw) for raw in rows[:limit]]
    return DeliveryPage(items=items, next_cursor=items[-1].id if len(rows) > limit else None)


@router.get(
    "/{webhook_id}/deliveries/{delivery_id}",
    operation_id="webhooks_delivery",
    summary="One message and its attempts (admin)",
    responses=problem_responses(401, 403, 404),
)
async def get_delivery(
    webhook_id: WebhookId, delivery_id: DeliveryId, _: AdminUser, webhooks: WebhookServiceDep
) -> DeliveryOut:
    return DeliveryOut.of(await webhooks.delivery(webhook_id, delivery_id))


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/redeliver",
    operation_id="webhooks_redeliver",
    summary="Send a delivered or failed message again, now (admin)",
    description="The same message: the same webhook-id and body, signed afresh.",
    responses=problem_responses(401, 403, 404, 409),
)
async def redeliver(
    webhook_id: WebhookId, delivery_id: DeliveryId, _: AdminUser, webhooks: WebhookServiceDep
) -> DeliveryOut:
    return DeliveryOut.of(await webhooks.redeliver(webhook_id, delivery_id))
