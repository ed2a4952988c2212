"""The gRPC SilenceService: clients' silences in `silences`, created, listed and expired
early, never deleted (the record of who muted what, and why).

Times are the rule-service's clock, as for API keys: the default start, the longest a
silence may last, when it is expired and the state each answer shows. The sender decides
with the same function (`alerting.rules.silences`) on its own clock. An admin acts on any
client's silences, a tenant on its own; another client's ids are NOT_FOUND. The SQL is
store/silences.py's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import asyncpg

from alerting.common.settings import DEFAULT_MAX_SILENCE_SECONDS, DEFAULT_MAX_SILENCES_PER_CLIENT
from alerting.common.validation import canonical_uuid
from alerting.rule_service import validation
from alerting.rule_service.auth import caller, visible_client_id
from alerting.rule_service.errors import grpc_errors
from alerting.rule_service.store import silences as silence_store
from alerting.rules import silences
from alerting.v1 import silence_service_pb2 as api
from alerting.v1 import silence_service_pb2_grpc

if TYPE_CHECKING:
    from alerting.rule_service.errors import Context


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
        return await silence_store.create(self.pool, client_id, matchers, start, stop, comment, caller().key_id, now,
                                          self.max_silences_per_client)

    @grpc_errors
    async def GetSilence(self, request: api.GetSilenceRequest, context: Context) -> api.Silence:
        silence_id = canonical_uuid(request.silence_id, "silence_id")
        return await silence_store.get(self.pool, silence_id, caller().visible_client(), datetime.now(UTC))

    @grpc_errors
    async def ListSilences(self, request: api.ListSilencesRequest, context: Context) -> api.ListSilencesResponse:
        client_id = visible_client_id(request.client_id) if request.client_id else caller().visible_client()
        size = validation.page_size(request.page_size)
        after = validation.decode_cursor(request.page_token)
        listed, last = await silence_store.list_page(self.pool, client_id, request.include_expired,
                                                     datetime.now(UTC), after, size)
        return api.ListSilencesResponse(silences=listed,
                                        next_page_token=validation.encode_cursor(*last) if last else "")

    @grpc_errors
    async def ExpireSilence(self, request: api.ExpireSilenceRequest, context: Context) -> api.Silence:
        silence_id = canonical_uuid(request.silence_id, "silence_id")
        return await silence_store.expire(self.pool, silence_id, caller().visible_client(), caller().key_id,
                                          datetime.now(UTC))
