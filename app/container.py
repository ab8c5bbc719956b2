"""The long-lived objects of one running app: repositories and services, built once.

Built in the lifespan hook and reached by the dependency providers in `app.http.deps`, so a
request pays for no object construction and tests can swap any piece.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime

import httpx
from beanie import init_beanie
from pymongo.errors import PyMongoError

from app.accounts.action_tokens import ActionTokenRepository
from app.accounts.api_keys import COLLECTION as API_KEYS
from app.accounts.api_keys import ApiKeyCache, ApiKeyRepository
from app.accounts.auth_service import AuthService
from app.accounts.identities import IdentityRepository
from app.accounts.lifecycle import AccountLifecycle
from app.accounts.mfa import MfaService
from app.accounts.mfa_challenges import MfaChallenges
from app.accounts.models import MfaChallenge, RateLimitCounter, Session, User
from app.accounts.oauth import OAuthService
from app.accounts.oauth_providers import Provider
from app.accounts.passkeys import PasskeyRepository, PasskeyService
from app.accounts.passwords import PasswordHasher
from app.accounts.principal import Principal
from app.accounts.ratelimit import RateLimiter
from app.accounts.session_repository import (
    RateLimitRepository,
    SessionRepository,
    SessionStateCache,
)
from app.accounts.user_repository import UserRepository
from app.accounts.user_service import UserService
from app.audit.chain import AuditChain
from app.audit.log import AuditLog
from app.clock import Clock, utc_now
from app.collections.models import CollectionSpec
from app.collections.repository import CollectionRepository
from app.collections.service import CollectionService
from app.config import Settings
from app.db.change_feed import ChangeFeed, ReadCache
from app.db.change_pump import ChangePump
from app.db.client import Db, create_client, keep_change_images
from app.db.embedded import EmbeddedDatabase, running_url
from app.dev_secret import private_dir
from app.documents.batch import BatchService
from app.documents.history import HistoryStore
from app.documents.idempotency import IdempotencyRecord, IdempotencyStore
from app.documents.regex_safety import check_pattern
from app.documents.service import DocumentService
from app.files.service import FileService
from app.files.store import FileStore
from app.mail.outbox import Outbox, OutboxMessage
from app.mail.transport import FileTransport, MailTransport, SmtpTransport
from app.mail.worker import Composed, MailWorker
from app.observability.loop_lag import LoopLagMonitor
from app.pagination import CursorCodec
from app.realtime.hub import RealtimeHub
from app.realtime.service import RealtimeService, TicketRepository
from app.teams.repository import MEMBERS as TEAM_MEMBERS
from app.teams.repository import TEAMS, TeamRepository
from app.teams.service import INVITATION_MAIL, TeamService
from app.tls import client_tls
from app.webhooks.fanout import WebhookFanout
from app.webhooks.repository import WebhookRepository
from app.webhooks.secrets import Secrets
from app.webhooks.sender import Sender
from app.webhooks.service import WebhookService
from app.webhooks.worker import DeliveryWorker

log = logging.getLogger("docstore.container")

# Every Beanie document; init_beanie creates their declared indexes.
DOCUMENT_MODELS = [
    User,
    Session,
    RateLimitCounter,
    MfaChallenge,
    CollectionSpec,
    IdempotencyRecord,
]


@dataclass
class Container:
    settings: Settings
    db: Db
    users: UserRepository
    sessions: SessionRepository
    hasher: PasswordHasher
    auth: AuthService
    user_service: UserService
    collections: CollectionService
    documents: DocumentService
    lifecycle: AccountLifecycle
    mail: MailWorker
    api_keys: ApiKeyRepository
    batch: BatchService
    realtime: RealtimeService
    files: FileService
    teams: TeamService
    mfa: MfaService
    oauth: OAuthService
    passkeys: PasskeyService
    webhooks: WebhookService
    deliveries: DeliveryWorker
    history: HistoryStore
    pump: ChangePump
    audit: AuditLog
    audit_chain: AuditChain
    # None when READ_CACHE is off.
    feed: ChangeFeed | None = None
    loop_lag: LoopLagMonitor = field(default_factory=LoopLagMonitor)

    @classmethod
    def build(cls, settings: Settings, db: Db, *, clock: Clock = utc_now) -> Container:
        feed = None
        principals: ReadCache[str, Principal | None] | None = None
        specs: ReadCache[str, CollectionSpec | None] | None = None
        session_states: SessionStateCache | None = None
        key_cache: ApiKeyCache | None = None
        team_roles: ReadCache[str, dict[str, str]] | None = None
        if settings.read_cache:
            principals = ReadCache(max_entries=settings.read_cache_max_entries)
            specs = ReadCache(max_entries=settings.read_cache_max_entries)
            session_states = ReadCache(max_entries=settings.read_cache_max_entries)
            key_cache = ReadCache(max_entries=settings.read_cache_max_entries)
            team_roles = ReadCache(max_entries=settings.read_cache_max_entries)
            feed = ChangeFeed(
                db,
                {
                    User.Settings.name: principals,
                    CollectionSpec.Settings.name: specs,
                    Session.Settings.name: session_states,
                    API_KEYS: key_cache,
                    TEAM_MEMBERS: team_roles,
                    TEAMS: team_roles,
                },
                # Roles are cached per user; a membership's id is "<team>:<user>". A
                # team's change (its owner) may touch any member: forget them all.
                keys={TEAM_MEMBERS: lambda key: key.partition(":")[2], TEAMS: lambda _: None},
            )
        users = UserRepository(db, principals=principals)
        sessions = SessionRepository(db, states=session_states)
        api_keys = ApiKeyRepository(db, cache=key_cache)
        hasher = PasswordHasher(settings)
        cursors = CursorCodec(settings.jwt_secret)
        limiter = RateLimiter(
            RateLimitRepository(db), window_seconds=settings.rate_limit_window_seconds
        )
        auth = AuthService(
            settings=settings,
            users=users,
            sessions=sessions,
            limiter=limiter,
            hasher=hasher,
            clock=clock,
            api_keys=api_keys,
        )
        auth.challenges = MfaChallenges(
            db,
            ttl_seconds=settings.mfa_challenge_ttl_seconds,
            max_attempts=settings.mfa_max_attempts,
        )
        mfa = MfaService(
            settings=settings,
            users=users,
            auth=auth,
            sessions=sessions,
            challenges=auth.challenges,
            limiter=limiter,
            daily=RateLimiter(RateLimitRepository(db), window_seconds=86_400),
            clock=clock,
        )
        collections = CollectionService(
            repository=CollectionRepository(db, cache=specs), clock=clock
        )
        file_store = FileStore(db)
        documents = DocumentService(
            db=db,
            settings=settings,
            collections=collections,
            idempotency=IdempotencyStore(db, ttl_seconds=settings.idempotency_ttl_seconds),
            cursors=cursors,
            clock=clock,
        )
        outbox = Outbox(
            db, retry_seconds=settings.mail_retry_seconds, max_time_ms=settings.query_max_time_ms
        )
        lifecycle = AccountLifecycle(
            settings=settings,
            users=users,
            sessions=sessions,
            tokens=ActionTokenRepository(db),
            outbox=outbox,
            limiter=limiter,
            hasher=hasher,
            auth=auth,
            clock=clock,
        )
        mfa.notify = lifecycle.notify
        oauth = OAuthService(
            settings=settings,
            providers={
                name: Provider(name, config, provider_http(settings))
                for name, config in settings.oauth_providers.items()
            },
            identities=IdentityRepository(db),
            users=users,
            auth=auth,
            clock=clock,
        )
        oauth.notify = lifecycle.notify
        passkeys = PasskeyService(
            settings=settings,
            repository=PasskeyRepository(db),
            users=users,
            auth=auth,
            clock=clock,
        )
        mfa.passkeys = passkeys

        async def has_passkeys(user_id: str) -> bool:
            return await passkeys.repository.count_for_user(user_id) > 0

        async def sign_in_methods(user: User) -> int:
            user_id = str(user.id)
            identities = await oauth.identities.count_for_user(user_id)
            keys = await passkeys.repository.count_for_user(user_id)
            return identities + keys + (1 if user.password_hash else 0)

        async def forget_sign_ins(user_id: str) -> None:
            await oauth.identities.delete_for_user(user_id)
            await passkeys.repository.delete_for_user(user_id)

        lifecycle.forget_sign_ins = forget_sign_ins
        auth.has_passkeys = has_passkeys
        oauth.methods_left = sign_in_methods
        passkeys.methods_left = sign_in_methods

        async def compose(message: OutboxMessage) -> Composed | None:
            if message.kind == INVITATION_MAIL:
                return await teams.compose(message)
            return await lifecycle.compose(message)

        mail = MailWorker(
            outbox,
            mail_transport(settings),
            compose,
            sender=settings.mail_from,
            clock=clock,
        )
        lifecycle.on_queued = mail.wake

        async def queue_mail(kind: str, to: str, params: dict[str, str]) -> None:
            await outbox.enqueue(kind, to, params, now=clock())
            mail.wake()

        async def forget_user(user_id: str) -> None:
            await documents.delete_owned_by(user_id)
            await teams.forget_user(user_id)
            await forget_sign_ins(user_id)

        user_service = UserService(
            users=users,
            sessions=sessions,
            auth=auth,
            hasher=hasher,
            cursors=cursors,
            clock=clock,
            on_delete=forget_user,
            lifecycle=lifecycle,
            api_keys=api_keys,
        )
        teams = TeamService(
            repository=TeamRepository(db, roles=team_roles),
            users=user_service,
            settings=settings,
            clock=clock,
            queue_mail=queue_mail,
            # Invitation mails go to any address: counted by the hour, not the minute.
            limiter=RateLimiter(RateLimitRepository(db), window_seconds=3600),
            roles=team_roles,
        )
        documents.team_roles = teams.roles_of

        async def account_exists(user_id: str) -> bool:
            return await users.get_principal(user_id) is not None

        documents.account_exists = account_exists

        async def user_profiles(ids: list[str]) -> dict[str, tuple[str, datetime, datetime]]:
            return {
                str(u.id): (u.name, u.created_at, u.updated_at)
                for u in await users.get_many(ids)
                if not u.disabled
            }

        documents.user_profiles = user_profiles
        history = HistoryStore(
            db,
            clock=clock,
            version_days=settings.history_retention_days,
            trash_days=settings.trash_retention_days,
            max_time_ms=settings.query_max_time_ms,
        )
        history.files = file_store
        documents.history = history

        async def collection_deleted(name: str) -> None:
            await file_store.delete_for(name)
            await history.forget_collection(name)

        async def documents_deleted(name: str, ids: list[str]) -> None:
            spec = await collections.repository.get(name)
            if spec is not None and spec.history:
                # Kept for the trash (restored with the document, deleted by its purge).
                await file_store.set_aside(name, ids)
                return
            await file_store.delete_for(name, ids)

        collections.on_delete = collection_deleted
        documents.on_delete = documents_deleted
        hook_repository = WebhookRepository(db, max_time_ms=settings.query_max_time_ms)
        hook_secrets = Secrets(*settings.sealing_keys)
        deliveries = DeliveryWorker(
            hook_repository,
            Sender(
                timeout=settings.webhook_timeout_seconds,
                allow_private=settings.webhook_allow_private_targets,
            ),
            hook_secrets,
            clock=clock,
            concurrency=settings.webhook_concurrency,
            retry_seconds=settings.webhook_retry_seconds,
            give_up_seconds=settings.webhook_give_up_seconds,
        )
        webhooks = WebhookService(
            hook_repository,
            hook_secrets,
            clock=clock,
            allow_private=settings.webhook_allow_private_targets,
            secret_overlap_seconds=settings.webhook_secret_overlap_seconds,
        )
        webhooks.on_queued = deliveries.wake
        fanout = WebhookFanout(hook_repository, clock=clock)
        fanout.on_queued = deliveries.wake
        audit_chain = AuditChain(db, clock=clock, retention_days=settings.audit_retention_days)
        pump = ChangePump(
            db, [fanout, history], clock, chores=[history.purge_expired, audit_chain.seal]
        )
        files = FileService(
            store=file_store,
            documents=documents,
            collections=collections,
            users=users,
            secret=settings.jwt_secret,
            max_bytes=settings.file_max_bytes,
            max_per_document=settings.file_max_per_document,
            link_max_seconds=settings.file_link_max_seconds,
            clock=clock,
        )
        realtime = RealtimeService(
            db=db,
            hub=RealtimeHub(
                db,
                max_streams=settings.realtime_max_streams,
                max_per_user=settings.realtime_max_streams_per_user,
                max_per_address=settings.realtime_max_streams_per_address,
                buffer=settings.realtime_buffer_events,
            ),
            auth=auth,
            collections=collections,
            tickets=TicketRepository(db),
            codec=cursors,
            heartbeat_seconds=settings.realtime_heartbeat_seconds,
            max_stream_seconds=settings.realtime_max_stream_seconds,
            clock=clock,
            gates=documents.gate,
        )
        if feed is not None:
            feed.listeners.append(realtime.on_account_change)
        return cls(
            settings=settings,
            db=db,
            users=users,
            sessions=sessions,
            hasher=hasher,
            auth=auth,
            user_service=user_service,
            collections=collections,
            documents=documents,
            lifecycle=lifecycle,
            mail=mail,
            api_keys=api_keys,
            batch=BatchService(db, documents),
            teams=teams,
            mfa=mfa,
            oauth=oauth,
            passkeys=passkeys,
            realtime=realtime,
            files=files,
            webhooks=webhooks,
            deliveries=deliveries,
            history=history,
            pump=pump,
            audit=AuditLog(
                db,
                retention_days=settings.audit_retention_days,
                max_time_ms=settings.query_max_time_ms,
            ),
            audit_chain=audit_chain,
            feed=feed,
        )


def provider_http(settings: Settings) -> httpx.AsyncClient:
    """The HTTP client that talks to sign-in providers: short timeouts, redirects not
    followed, a few connections per provider."""
    return httpx.AsyncClient(
        timeout=settings.oauth_http_timeout_seconds,
        follow_redirects=False,
        verify=client_tls(),
        limits=httpx.Limits(max_connections=10),
        headers={"User-Agent": "docstore"},
    )


def mail_transport(settings: Settings) -> MailTransport:
    if settings.mail_url is not None:
        return SmtpTransport(settings.mail_url.get_secret_value())
    return FileTransport(settings.data_dir / "mail")


@asynccontextmanager
async def open_container(
    settings: Settings, *, background: bool = True, realtime: bool = True
) -> AsyncIterator[Container]:
    """Connect (starting the embedded database when no MONGODB_URL is set), ensure
    indexes, build the container; close everything on the way out."""
    settings = await asyncio.to_thread(settings.with_signing_key)
    embedded: EmbeddedDatabase | None = None
    url = settings.mongodb_url
    if url is None:
        await asyncio.to_thread(private_dir, settings.data_dir)
        url = await asyncio.to_thread(running_url, settings.data_dir, settings.mongodb_db)
        if url is None:
            embedded = EmbeddedDatabase(settings.data_dir, database=settings.mongodb_db)
            await asyncio.to_thread(embedded.start)
            url = embedded.url
    client = create_client(url, settings)
    try:
        db = client[settings.mongodb_db]
        await init_beanie(database=db, document_models=DOCUMENT_MODELS)
        log.info(
            "database ready",
            extra={"database": settings.mongodb_db, "embedded": embedded is not None},
        )
        # Builds the regex checker's Unicode class tables now, not in the first request.
        await asyncio.to_thread(check_pattern, r"\d\w\s")
        container = Container.build(settings, db)
        await container.collections.ensure_all_indexes()
        await container.lifecycle.outbox.ensure_indexes()
        await container.lifecycle.tokens.ensure_indexes()
        await container.api_keys.ensure_indexes()
        await container.realtime.tickets.ensure_indexes()
        await container.files.store.ensure_indexes()
        await container.teams.repository.ensure_indexes()
        await container.oauth.identities.ensure_indexes()
        await container.passkeys.repository.ensure_indexes()
        await container.webhooks.repository.ensure_indexes()
        await container.history.ensure_indexes()
        await container.audit.ensure_indexes()
        await container.audit_chain.ensure_indexes()
        # Account webhooks need each change's exact image, as document collections have.
        await keep_change_images(db, User.Settings.name)
        lag = container.loop_lag
        try:
            lag.start()
            # The server's (an operator script only does its own job); API processes
            # leave it to worker processes with BACKGROUND_JOBS=false.
            jobs = background and settings.background_jobs
            if background and not settings.background_jobs:
                log.warning(
                    "BACKGROUND_JOBS=false: this process sends no mail and no webhooks and "
                    "records no history; run python -m app.worker beside it"
                )
            if background:
                # Before the first request: the pump (this process's, once its task runs,
                # or a worker's started later) records what is written from now on.
                try:
                    await container.pump.mark_start()
                except PyMongoError as exc:  # no change streams: no pump either
                    log.warning("cannot mark the change pump's start", extra={"error": str(exc)})
            if jobs:
                container.mail.start()
            if container.feed is not None:
                await container.feed.start()
            if background and realtime:
                await container.realtime.hub.start()
            if jobs:
                container.pump.start()
                container.deliveries.start()
            yield container
        finally:
            await container.deliveries.stop()
            await container.pump.stop()
            await container.deliveries.sender.close()
            await container.realtime.hub.stop()
            await container.mail.stop()
            await lag.stop()
            if container.feed is not None:
                await container.feed.stop()
            container.hasher.close()
            for provider in container.oauth.providers.values():
                await provider.http.aclose()
            container.documents.work.close()
    finally:
        await client.close()
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)
