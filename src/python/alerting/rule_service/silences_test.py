"""The SilenceService over real gRPC on the real stack: silences created, shown with their
state, listed, expired early with who did it recorded; what each request refuses; the
per-client cap; and tenants kept to their own silences."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from alerting.rule_service.validation import encode_cursor
from alerting.testsupport.calls import answer, new_client, tenant_key
from alerting.testsupport.services import fetch, rule_service
from alerting.testsupport.stack import StackSettings
from alerting.v1 import (
    rule_service_pb2,
    rule_service_pb2_grpc,
    silence_service_pb2_grpc,
)
from alerting.v1 import silence_service_pb2 as api

OK = grpc.StatusCode.OK
NOT_FOUND = grpc.StatusCode.NOT_FOUND
INVALID = grpc.StatusCode.INVALID_ARGUMENT
PENDING, ACTIVE, EXPIRED = api.SILENCE_STATE_PENDING, api.SILENCE_STATE_ACTIVE, api.SILENCE_STATE_EXPIRED
SLACK = timedelta(seconds=30)  # between this test's clock readings and the rule-service's


def stub(channel: grpc.aio.Channel) -> silence_service_pb2_grpc.SilenceServiceAsyncStub:
    return silence_service_pb2_grpc.SilenceServiceStub(channel)


def at(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def hours(count: float) -> Duration:
    duration = Duration()
    duration.FromTimedelta(timedelta(hours=count))
    return duration


def request(client_id: str, **fields: Any) -> api.CreateSilenceRequest:
    """A valid silence of one hour from now, with `fields` over it (None: the field unset)."""
    base: dict[str, Any] = {"client_id": client_id, "severity": "HIGH", "source": "db", "name": "*",
                            "comment": "disk swap, CHG-1234"}
    if "ends_at" not in fields and "duration" not in fields:
        base["duration"] = hours(1)
    return api.CreateSilenceRequest(**{**base, **{name: value for name, value in fields.items() if value is not None}})


def ids(response: api.ListSilencesResponse) -> list[str]:
    return [silence.silence_id for silence in response.silences]


def near(stamp: Timestamp, moment: datetime) -> bool:
    return abs(stamp.ToDatetime(UTC) - moment) < SLACK


async def test_a_tenant_creates_lists_and_expires_its_silences_and_who_expired_one_is_recorded(
        stack_settings: StackSettings) -> None:
    async with rule_service(stack_settings) as service:
        client_id = await new_client(service)
        key = await tenant_key(service, client_id)
        by = key.api_key.key_id
        now = datetime.now(UTC)
        async with service.channel(api_key=key.key) as channel:
            active = await stub(channel).CreateSilence(request(client_id, duration=hours(2)))
            pending = await stub(channel).CreateSilence(request(
                client_id, severity="*", source="*", name="disk_full", starts_at=at(now + timedelta(hours=1)),
                ends_at=at(now + timedelta(hours=3)), comment="  maintenance  "))
            got = await stub(channel).GetSilence(api.GetSilenceRequest(silence_id=active.silence_id))
            listed = await stub(channel).ListSilences(api.ListSilencesRequest())
            expired = await stub(channel).ExpireSilence(api.ExpireSilenceRequest(silence_id=active.silence_id))
            again = await answer(stub(channel).ExpireSilence(api.ExpireSilenceRequest(silence_id=active.silence_id)))
            not_ended = await stub(channel).ListSilences(api.ListSilencesRequest(client_id=client_id))
            expired_pending = await stub(channel).ExpireSilence(
                api.ExpireSilenceRequest(silence_id=pending.silence_id))
            every = await stub(channel).ListSilences(api.ListSilencesRequest(include_expired=True))
            none_left = await stub(channel).ListSilences(api.ListSilencesRequest())
    assert (active.client_id, active.severity, active.source, active.name, active.comment, active.created_by,
            active.state, active.expired_by, active.HasField("expired_at")) == (
        client_id, "HIGH", "db", "*", "disk swap, CHG-1234", by, ACTIVE, "", False)
    assert near(active.starts_at, now) and near(active.created_at, now)
    assert active.ends_at.ToDatetime(UTC) - active.starts_at.ToDatetime(UTC) == timedelta(hours=2)
    assert got == active
    assert (pending.severity, pending.source, pending.name, pending.comment, pending.state) == (
        "*", "*", "disk_full", "maintenance", PENDING)
    assert pending.starts_at.ToDatetime(UTC) == now + timedelta(hours=1)
    assert ids(listed) == [pending.silence_id, active.silence_id]  # newest first
    assert (expired.state, expired.expired_by, expired.ends_at) == (EXPIRED, by, active.ends_at)
    assert active.starts_at.ToDatetime(UTC) <= expired.expired_at.ToDatetime(UTC) and near(expired.expired_at, now)
    assert again == (grpc.StatusCode.FAILED_PRECONDITION,
                     f"silence_id: {active.silence_id} is EXPIRED, not PENDING or ACTIVE")
    assert ids(not_ended) == [pending.silence_id]
    assert (expired_pending.state, expired_pending.expired_by) == (EXPIRED, by)
    assert [(silence.silence_id, silence.state) for silence in every.silences] == [
        (pending.silence_id, EXPIRED), (active.silence_id, EXPIRED)]
    assert list(none_left.silences) == []


async def test_a_silence_that_ended_by_itself_is_expired_and_cannot_be_expired_again(
        stack_settings: StackSettings) -> None:
    async with rule_service(stack_settings) as service:
        client_id = await new_client(service)
        [row] = await fetch(
            stack_settings,
            "INSERT INTO silences (client_id, severity, source, name, starts_at, ends_at, comment, created_by)"
            " VALUES ($1, '*', 'db', '*', now() - interval '2 hours', now() - interval '1 hour', 'old', 'test')"
            " RETURNING silence_id::text", client_id)
        silence_id = row["silence_id"]
        async with service.channel() as channel:
            shown = await stub(channel).GetSilence(api.GetSilenceRequest(silence_id=silence_id))
            refused = await answer(stub(channel).ExpireSilence(api.ExpireSilenceRequest(silence_id=silence_id)))
            current = await stub(channel).ListSilences(api.ListSilencesRequest(client_id=client_id))
            history = await stub(channel).ListSilences(api.ListSilencesRequest(client_id=client_id,
                                                                               include_expired=True))
    assert (shown.state, shown.HasField("expired_at"), shown.expired_by) == (EXPIRED, False, "")
    assert refused == (grpc.StatusCode.FAILED_PRECONDITION, f"silence_id: {silence_id} is EXPIRED, not PENDING or"
                                                            " ACTIVE")
    assert (ids(current), ids(history)) == ([], [silence_id])


async def test_a_start_in_the_past_is_now_and_the_table_holds_what_the_sender_reads(
    stack_settings: StackSettings,
) -> None:
    async with rule_service(stack_settings) as service:
        client_id = await new_client(service)
        before = datetime.now(UTC)
        async with service.channel() as channel:
            created = await stub(channel).CreateSilence(request(
                client_id, starts_at=at(before - timedelta(days=2)), ends_at=at(before + timedelta(hours=1))))
    [row] = await fetch(stack_settings, "SELECT client_id::text, severity, source, name, starts_at, ends_at, comment,"
                                        " created_by, expired_at, expired_by FROM silences")
    assert before <= created.starts_at.ToDatetime(UTC) < before + SLACK
    assert tuple(row) == (client_id, "HIGH", "db", "*", created.starts_at.ToDatetime(UTC),
                          before + timedelta(hours=1), "disk swap, CHG-1234", created.created_by, None, None)


async def test_a_tenant_sees_and_manages_only_its_own_silences(stack_settings: StackSettings) -> None:
    async with rule_service(stack_settings) as service:
        own, other = await new_client(service, "own"), await new_client(service, "other")
        key = await tenant_key(service, own)
        async with service.channel() as channel:
            theirs = await stub(channel).CreateSilence(request(other, comment="theirs"))
        async with service.channel(api_key=key.key) as channel:
            mine = await stub(channel).CreateSilence(request(own))
            answers = [
                await answer(stub(channel).GetSilence(api.GetSilenceRequest(silence_id=theirs.silence_id))),
                await answer(stub(channel).ExpireSilence(api.ExpireSilenceRequest(silence_id=theirs.silence_id))),
                await answer(stub(channel).CreateSilence(request(other))),
                await answer(stub(channel).ListSilences(api.ListSilencesRequest(client_id=other))),
            ]
            listed = await stub(channel).ListSilences(api.ListSilencesRequest(include_expired=True))
            # A token naming a position after every silence: still only its own.
            forged = encode_cursor(datetime(9999, 1, 1, tzinfo=UTC), "ffffffff-ffff-4fff-bfff-ffffffffffff")
            from_forged = await stub(channel).ListSilences(api.ListSilencesRequest(page_token=forged))
            unknown = str(uuid.uuid4())
            missing = await answer(stub(channel).GetSilence(api.GetSilenceRequest(silence_id=unknown)))
        async with service.channel() as channel:
            untouched = await stub(channel).GetSilence(api.GetSilenceRequest(silence_id=theirs.silence_id))
            everyone = await stub(channel).ListSilences(api.ListSilencesRequest())
    assert answers == [
        (NOT_FOUND, f"silence_id: no silence {theirs.silence_id}"),
        (NOT_FOUND, f"silence_id: no silence {theirs.silence_id}"),
        (NOT_FOUND, f"client_id: no client {other}"),
        (NOT_FOUND, f"client_id: no client {other}"),
    ]
    assert missing == (NOT_FOUND, f"silence_id: no silence {unknown}")
    assert ids(listed) == ids(from_forged) == [mine.silence_id]
    assert untouched.state == ACTIVE
    assert ids(everyone) == [mine.silence_id, theirs.silence_id]


async def test_pages_hold_each_silence_once_newest_first(stack_settings: StackSettings) -> None:
    async with rule_service(stack_settings) as service:
        client_id = await new_client(service)
        async with service.channel() as channel:
            created = [await stub(channel).CreateSilence(request(client_id, name=f"n{number}"))
                       for number in range(5)]
            pages, token = [], ""
            while True:
                page = await stub(channel).ListSilences(api.ListSilencesRequest(page_size=2, page_token=token))
                pages.append(ids(page))
                token = page.next_page_token
                if not token:
                    break
            bad = await answer(stub(channel).ListSilences(api.ListSilencesRequest(page_token="garbage")))
            too_big = await answer(stub(channel).ListSilences(api.ListSilencesRequest(page_size=1001)))
    assert [len(page) for page in pages] == [2, 2, 1]
    assert [silence_id for page in pages for silence_id in page] == [silence.silence_id for silence in
                                                                     reversed(created)]
    assert bad == (INVALID, "page_token: not a token this service issued")
    assert too_big == (INVALID, "page_size: between 0 and 1000")


async def test_a_client_has_at_most_max_silences_per_client_not_yet_ended(stack_settings: StackSettings) -> None:
    async with rule_service(stack_settings, max_silences_per_client=2) as service:
        client_id = await new_client(service)
        async with service.channel() as channel:
            first = await stub(channel).CreateSilence(request(client_id))
            await stub(channel).CreateSilence(request(client_id))
            third = await answer(stub(channel).CreateSilence(request(client_id)))
            await stub(channel).ExpireSilence(api.ExpireSilenceRequest(silence_id=first.silence_id))
            after_expiry = await answer(stub(channel).CreateSilence(request(client_id)))
    assert third == (grpc.StatusCode.RESOURCE_EXHAUSTED,
                     f"client_id: client {client_id} has 2 silences not yet ended, the most a client may have (2);"
                     " expire one first")
    assert after_expiry == (OK, None)


async def test_deleting_a_client_deletes_its_silences(stack_settings: StackSettings) -> None:
    async with rule_service(stack_settings) as service:
        client_id = await new_client(service)
        async with service.channel() as channel:
            await stub(channel).CreateSilence(request(client_id))
            await rule_service_pb2_grpc.RuleServiceStub(channel).DeleteClient(
                rule_service_pb2.DeleteClientRequest(client_id=client_id))
    assert await fetch(stack_settings, "SELECT 1 FROM silences") == []


FAR = datetime(2200, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("fields, problem", [
    ({"severity": "URGENT"}, "severity: unknown severity 'URGENT' (expected LOW, MEDIUM, HIGH, CRITICAL or *)"),
    ({"severity": ""}, "severity: unknown severity '' (expected LOW, MEDIUM, HIGH, CRITICAL or *)"),
    ({"source": ""}, "source: missing (use * to match any value)"),
    ({"source": "s" * 257}, "source: at most 256 characters"),
    ({"name": "disk\u202e"}, "name: contains the format character U+202E"),
    ({"name": "disk\x00"}, "name: contains the control character U+0000"),
    ({"comment": ""}, "comment: missing: say why the notifications are silenced"),
    ({"comment": "c" * 1001}, "comment: at most 1000 characters"),
    ({"comment": "line\nbreak"}, "comment: contains the control character U+000A"),
    ({"duration": None}, "ends_at: give ends_at or duration, one of them"),
    ({"duration": Duration()}, "duration: must be positive"),
    ({"duration": Duration(seconds=-60)}, "duration: must be positive"),
    ({"duration": Duration(seconds=1, nanos=-5)}, "duration: nanos -5 does not go with seconds 1"),
    ({"duration": Duration(seconds=2**62)}, f"duration: {2**62} s is out of range"),
    ({"duration": hours(24 * 366)}, "duration: longer than 365 days, the longest a silence may last"),
    ({"ends_at": at(FAR)}, "ends_at: the silence would end at 2200-01-01T00:00:00+00:00, more than 365 days from now,"
                           " the longest a silence may last"),
    ({"ends_at": Timestamp(seconds=2**40)}, f"ends_at: {2**40} seconds since the epoch is after 9999-01-01"),
    ({"starts_at": Timestamp(seconds=10, nanos=-1)}, "starts_at: nanos -1 is not in [0, 999999999]"),
    ({"starts_at": at(FAR)}, "starts_at: 2200-01-01T00:00:00+00:00 is more than 365 days from now, the longest a"
                             " silence may last"),
    ({"client_id": "nope"}, "client_id: not a UUID: 'nope'"),
    ({"client_id": ""}, "client_id: missing"),
])
async def test_an_invalid_silence_is_invalid_argument_naming_the_field_and_creates_nothing(
        stack_settings: StackSettings, fields: dict[str, Any], problem: str) -> None:
    async with rule_service(stack_settings) as service:
        made = request(**{"client_id": await new_client(service), **fields})
        async with service.channel() as channel:
            refused = await answer(stub(channel).CreateSilence(made))
    assert refused == (INVALID, problem)
    assert await fetch(stack_settings, "SELECT 1 FROM silences") == []


async def test_an_end_before_the_start_is_invalid_naming_both(stack_settings: StackSettings) -> None:
    async with rule_service(stack_settings) as service:
        made = request(await new_client(service), ends_at=Timestamp(seconds=1_000_000_000))
        async with service.channel() as channel:
            code, details = await answer(stub(channel).CreateSilence(made))
    assert code == INVALID
    assert re.fullmatch(r"ends_at: 2001-09-09T01:46:40\+00:00 is not after the silence's start, "
                        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?\+00:00", details or ""), details


@pytest.mark.parametrize("rpc", ["GetSilence", "ExpireSilence"])
async def test_a_silence_id_that_is_no_uuid_is_invalid(stack_settings: StackSettings, rpc: str) -> None:
    message = api.GetSilenceRequest if rpc == "GetSilence" else api.ExpireSilenceRequest
    async with rule_service(stack_settings) as service, service.channel() as channel:
        refused = await answer(getattr(stub(channel), rpc)(message(silence_id="s-1")))
    assert refused == (INVALID, "silence_id: not a UUID: 's-1'")
