"""The gRPC SilenceService: clients' silences in `silences`, created, listed and expired
early, never deleted (the record of who muted what, and why).

Times are the rule-service's clock, as for API keys: the default start, the longest a
silence may last, when it is expired and the state each answer shows. The sender decides
with the same function (`alerting.rules.silences`) on its own clock. An admin acts on any
client's silences, a tenant on its own; another client's ids are NOT_FOUND."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import asyncpg

from alerting.common.validation import canonical_uuid
from alerting.rule_service import validation
from alerting.rule_service.auth import caller, visible_client_id
from alerting.rule_service.errors import FailedPrecondition, NotFound, QuotaExceeded, grpc_errors
from alerting.rules import silences
from alerting.v1 import silence_service_pb2 as api
from alerting.v1 import silence_service_pb2_grpc

if TYPE_CHECKING:
    from alerting.rule_service.errors import Context

COLUMNS = ("silence_id, client_id, severity, source, name, starts_at, ends_at, comment, created_by, created_at,"
           " expired_at, expired_by")
DEFAULT_MAX_SILENCE_SECONDS = 365 * 24 * 3600.0
DEFAULT_MAX_SILENCES_PER_CLIENT = 1000
# Not yet ended nor expired at $2 (a silence is never expired ahead of the clock).
NOT_ENDED = "ends_at > $2 AND (expired_at IS NULL OR expired_at > $2)"
STATES = {silences.PENDING: api.SILENCE_STATE_PENDING, silences.ACTIVE: api.SILENCE_STATE_ACTIVE,
          silences.EXPIRED: api.SILENCE_STATE_EXPIRED}
LIST = f"""
SELECT {COLUMNS} FROM silences
WHERE ($1::uuid IS NULL OR client_id = $1) AND ($3 OR ({NOT_ENDED}))
  AND ($4::timestamptz IS NULL OR (created_at, silence_id) < ($4, $5::uuid))
ORDER BY created_at DESC, silence_id DESC LIMIT $6
"""


def silence_state(row: asyncpg.Record, now: datetime) -> str:
    return silences.state(row["starts_at"], row["ends_at"], row["expired_at"], now)


def silence_message(row: asyncpg.Record, now: datetime) -> api.Silence:
    message = api.Silence(
        silence_id=str(row["silence_id"]), client_id=str(row["client_id"]), severity=row["severity"],
        source=row["source"], name=row["name"], comment=row["comment"], created_by=row["created_by"],
        expired_by=row["expired_by"] or "", state=STATES[silence_state(row, now)])
    message.starts_at.FromDatetime(row["starts_at"])
    message.ends_at.FromDatetime(row["ends_at"])
    message.created_at.FromDatetime(row["created_at"])
    if row["expired_at"] is not None:
        message.expired_at.FromDatetime(row["expired_at"])
    return message


class SilenceService(silence_service_pb2_grpc.SilenceServiceServicer):
    def __init__(self, pool: asyncpg.Pool, max_silence_seconds: float = DEFAULT_MAX_SILENCE_SECONDS,
                 max_silences_per_client: int = DEFAULT_MAX_SILENCES_PER_CLIENT) -> None:
        self.pool = pool
        self.longest = timedelta(seconds=max_silence_seconds)
        self.max_silences_per_client = max_silences_per_client

    @grpc_errors
    async def CreateSilence(self, request: api.CreateSilenceRequest, context: Context) -> api.Silence:
        client_id = visible_client_id(request.client_id)
        matchers = silences.matchers(request.severity, request.source, request.name)
        comment = silences.comment(request.comment)
        end = request.WhichOneof("end")
        starts_at = (validation.instant(request.starts_at.seconds, request.starts_at.nanos, "starts_at")
                     if request.HasField("starts_at") else None)
        ends_at = validation.instant(request.ends_at.seconds, request.ends_at.nanos, "ends_at") \
            if end == "ends_at" else None
        duration = validation.span(request.duration.seconds, request.duration.nanos, "duration") \
            if end == "duration" else None
        now = datetime.now(UTC)
        start, stop = silences.window(starts_at, ends_at, duration, now, self.longest)
        async with self.pool.acquire() as connection, connection.transaction():
            # Creations for one client take turns here, so that none goes past the quota.
            if await connection.fetchval(
                    "SELECT 1 FROM clients WHERE client_id = $1 FOR NO KEY UPDATE", client_id) is None:
                raise NotFound(f"client_id: no client {client_id}")
            count = await connection.fetchval(
                f"SELECT count(*) FROM silences WHERE client_id = $1 AND {NOT_ENDED}", client_id, now)
            if count >= self.max_silences_per_client:
                raise QuotaExceeded(f"client_id: client {client_id} has {count} silences not yet ended, the most a"
                                    f" client may have ({self.max_silences_per_client}); expire one first")
            row = await connection.fetchrow(
                f"INSERT INTO silences (client_id, severity, source, name, starts_at, ends_at, comment, created_by)"
                f" VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {COLUMNS}",
                client_id, *matchers, start, stop, comment, caller().key_id)
        return silence_message(row, now)

    @grpc_errors
    async def GetSilence(self, request: api.GetSilenceRequest, context: Context) -> api.Silence:
        silence_id = canonical_uuid(request.silence_id, "silence_id")
        return silence_message(await self._row(silence_id), datetime.now(UTC))

    @grpc_errors
    async def ListSilences(self, request: api.ListSilencesRequest, context: Context) -> api.ListSilencesResponse:
        client_id = visible_client_id(request.client_id) if request.client_id else caller().visible_client()
        size = validation.page_size(request.page_size)
        after = validation.decode_cursor(request.page_token)
        now = datetime.now(UTC)
        rows = await self.pool.fetch(LIST, client_id, now, request.include_expired, after and after[0],
                                     after and after[1], size + 1)
        page = rows[:size]
        token = (validation.encode_cursor(page[-1]["created_at"], str(page[-1]["silence_id"]))
                 if len(rows) > size else "")
        return api.ListSilencesResponse(silences=[silence_message(row, now) for row in page], next_page_token=token)

    @grpc_errors
    async def ExpireSilence(self, request: api.ExpireSilenceRequest, context: Context) -> api.Silence:
        silence_id = canonical_uuid(request.silence_id, "silence_id")
        now = datetime.now(UTC)
        row = await self.pool.fetchrow(
            f"UPDATE silences SET expired_at = $2, expired_by = $4 WHERE silence_id = $1 AND {NOT_ENDED}"
            f" AND ($3::uuid IS NULL OR client_id = $3::uuid) RETURNING {COLUMNS}",
            silence_id, now, caller().visible_client(), caller().key_id)
        if row is None:
            current = await self._row(silence_id)  # NotFound when there is none
            raise FailedPrecondition(f"silence_id: {silence_id} is {silence_state(current, now)},"
                                     " not PENDING or ACTIVE")
        return silence_message(row, now)

    async def _row(self, silence_id: str) -> asyncpg.Record:
        """The silence; NotFound when there is none (that the caller may see)."""
        row = await self.pool.fetchrow(
            f"SELECT {COLUMNS} FROM silences WHERE silence_id = $1 AND ($2::uuid IS NULL OR client_id = $2::uuid)",
            silence_id, caller().visible_client())
        if row is None:
            raise NotFound(f"silence_id: no silence {silence_id}")
        return row
