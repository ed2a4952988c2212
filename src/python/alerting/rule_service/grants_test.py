"""Source grants over real gRPC, with Postgres and the outbox relay to Kafka: what an admin
grants, lists and revokes, what each request refuses, and the changes `rule.changed` gets."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from alerting.common import topics
from alerting.rule_service.validation import encode_grant_position
from alerting.rules.changelog import GRANT, REVOKE, UPSERT
from alerting.testsupport.calls import answer
from alerting.testsupport.services import read, rule_service
from alerting.testsupport.stack import StackSettings
from alerting.v1 import api_key_service_pb2, api_key_service_pb2_grpc, events_pb2, rule_service_pb2_grpc
from alerting.v1 import rule_service_pb2 as api


def keys_of(response: api.ListSourceGrantsResponse) -> list[tuple[str, str, bool]]:
    return [(grant.client_id, grant.source, grant.prefix) for grant in response.grants]


async def test_an_admin_grants_lists_and_revokes_sources(stack_settings: StackSettings) -> None:
    async with rule_service(stack_settings) as service, service.channel() as channel:
        stub = rule_service_pb2_grpc.RuleServiceStub(channel)
        acme = (await stub.CreateClient(api.CreateClientRequest(name="acme"))).client_id
        globex = (await stub.CreateClient(api.CreateClientRequest(name="globex"))).client_id
        exact = await stub.CreateSourceGrant(api.CreateSourceGrantRequest(client_id=acme, source="db"))
        prefix = await stub.CreateSourceGrant(api.CreateSourceGrantRequest(client_id=acme, source="db", prefix=True))
        again = await stub.CreateSourceGrant(api.CreateSourceGrantRequest(client_id=acme, source="db"))
        await stub.CreateSourceGrant(api.CreateSourceGrantRequest(client_id=globex, source="db"))
        me = await api_key_service_pb2_grpc.ApiKeyServiceStub(channel).WhoAmI(api_key_service_pb2.WhoAmIRequest())

        listed = await stub.ListSourceGrants(api.ListSourceGrantsRequest(client_id=acme))
        everyone = await stub.ListSourceGrants(api.ListSourceGrantsRequest())
        await stub.DeleteSourceGrant(api.DeleteSourceGrantRequest(client_id=acme, source="db"))
        after = await stub.ListSourceGrants(api.ListSourceGrantsRequest(client_id=acme))
        missing = await answer(stub.DeleteSourceGrant(api.DeleteSourceGrantRequest(client_id=acme, source="db")))
        unknown_client = await answer(stub.CreateSourceGrant(api.CreateSourceGrantRequest(
            client_id="00000000-0000-4000-8000-000000000000", source="db")))
    assert (exact.client_id, exact.source, exact.prefix, exact.created_by) == (acme, "db", False, me.key_id)
    assert (prefix.source, prefix.prefix) == ("db", True)
    assert again == exact  # granted already: the grant as it was, its creation time included
    assert keys_of(listed) == [(acme, "db", False), (acme, "db", True)]
    assert {(acme, "db", False), (acme, "db", True), (globex, "db", False)} <= set(keys_of(everyone))
    assert keys_of(after) == [(acme, "db", True)]
    assert missing == (grpc.StatusCode.NOT_FOUND, f"source: client {acme} has no grant of the source 'db'")
    assert unknown_client == (grpc.StatusCode.NOT_FOUND, "client_id: no such client")


@pytest.mark.parametrize("fields, problem", [
    ({"source": ""}, "source: missing"),
    ({"source": "*"}, "source: '*' holds '*': grant an exact source, or a prefix (prefix set) for every source that"
                      " starts with it"),
    ({"source": "team-*", "prefix": True}, "source: 'team-*' holds '*': grant an exact source, or a prefix (prefix"
                                           " set) for every source that starts with it"),
    ({"source": "s" * 257}, "source: at most 256 characters"),
    ({"source": "db\x00"}, "source: contains the control character U+0000"),
    ({"source": "db\u202e"}, "source: contains the format character U+202E"),
    ({"client_id": "not-a-uuid"}, "client_id: not a UUID: 'not-a-uuid'"),
    ({"client_id": ""}, "client_id: missing"),
])
async def test_an_invalid_grant_is_invalid_argument_naming_the_field(
    stack_settings: StackSettings, fields: dict[str, Any], problem: str
) -> None:
    async with rule_service(stack_settings) as service, service.channel() as channel:
        stub = rule_service_pb2_grpc.RuleServiceStub(channel)
        client_id = (await stub.CreateClient(api.CreateClientRequest(name="acme"))).client_id
        request: dict[str, Any] = {"client_id": client_id, "source": "db", **fields}
        created = await answer(stub.CreateSourceGrant(api.CreateSourceGrantRequest(**request)))
        deleted = await answer(stub.DeleteSourceGrant(api.DeleteSourceGrantRequest(**request)))
    assert created == deleted == (grpc.StatusCode.INVALID_ARGUMENT, problem)


async def test_pages_of_grants_hold_each_grant_once_and_a_forged_token_stays_inside_the_tenant(
    stack_settings: StackSettings,
) -> None:
    async with rule_service(stack_settings) as service:
        async with service.channel() as channel:
            stub = rule_service_pb2_grpc.RuleServiceStub(channel)
            acme = (await stub.CreateClient(api.CreateClientRequest(name="acme"))).client_id
            other = (await stub.CreateClient(api.CreateClientRequest(name="other"))).client_id
            sources = [f"s{n}" for n in range(5)]
            for source in sources:
                for prefix in (False, True):
                    await stub.CreateSourceGrant(api.CreateSourceGrantRequest(client_id=acme, source=source,
                                                                              prefix=prefix))
            await stub.CreateSourceGrant(api.CreateSourceGrantRequest(client_id=other, source="secret"))
            tenant = await api_key_service_pb2_grpc.ApiKeyServiceStub(channel).CreateApiKey(
                api_key_service_pb2.CreateApiKeyRequest(role=api_key_service_pb2.ROLE_TENANT, client_id=acme))
            pages, token = [], ""
            while True:
                page = await stub.ListSourceGrants(api.ListSourceGrantsRequest(client_id=acme, page_size=3,
                                                                               page_token=token))
                pages.append(keys_of(page))
                token = page.next_page_token
                if not token:
                    break
            bad_token = await answer(stub.ListSourceGrants(api.ListSourceGrantsRequest(page_token="not-a-token")))
        async with service.channel(api_key=tenant.key) as channel:
            # A token naming a position before every client: the tenant still sees only its own.
            forged = encode_grant_position("00000000-0000-4000-8000-000000000000", "", False)
            seen = await rule_service_pb2_grpc.RuleServiceStub(channel).ListSourceGrants(
                api.ListSourceGrantsRequest(page_token=forged, page_size=1000))
    assert [len(page) for page in pages] == [3, 3, 3, 1]
    assert [key for page in pages for key in page] == [(acme, source, prefix) for source in sources
                                                       for prefix in (False, True)]
    assert bad_token == (grpc.StatusCode.INVALID_ARGUMENT, "page_token: not a token this service issued")
    assert {client for client, _, _ in keys_of(seen)} == {acme}


async def test_grants_and_revocations_reach_rule_changed_in_commit_order_keyed_by_grant(
    stack_settings: StackSettings,
) -> None:
    """Deleting a client revokes its grants on the log too: the cascade removed them from
    Postgres, and the snapshot and the indexes must forget them alike."""
    async with rule_service(stack_settings) as service, service.channel() as channel:
        stub = rule_service_pb2_grpc.RuleServiceStub(channel)
        client_id = (await stub.CreateClient(api.CreateClientRequest(name="acme"))).client_id
        await stub.CreateSourceGrant(api.CreateSourceGrantRequest(client_id=client_id, source="db"))
        await stub.CreateSourceGrant(api.CreateSourceGrantRequest(client_id=client_id, source="db"))  # no change
        await stub.CreateSourceGrant(api.CreateSourceGrantRequest(client_id=client_id, source="web.", prefix=True))
        rule = await stub.CreateRule(api.CreateRuleRequest(client_id=client_id, severity="*", source="*",
                                                           name="disk", emails=["ops@x.io"]))
        await stub.DeleteSourceGrant(api.DeleteSourceGrantRequest(client_id=client_id, source="db"))
        await stub.DeleteClient(api.DeleteClientRequest(client_id=client_id))
        records = await read(stack_settings, topics.RULE_CHANGED, 6)
    changes = [events_pb2.RuleChanged.FromString(record.value) for record in records]
    exact, prefix = f"grant:{client_id}:exact:db", f"grant:{client_id}:prefix:web."
    assert [(record.key.decode(), change.op, change.client_id) for record, change in zip(records, changes,
                                                                                         strict=True)][:4] == [
        (exact, GRANT, client_id), (prefix, GRANT, client_id), (rule.rule_id, UPSERT, client_id),
        (exact, REVOKE, client_id)]
    # DeleteClient: the rule's delete, then the revocation of the grant it still had.
    assert [(record.key.decode(), events_pb2.RuleChanged.Op.Name(change.op)) for record, change in
            zip(records[4:], changes[4:], strict=True)] == [(rule.rule_id, "OP_DELETE"), (prefix, "OP_REVOKE")]
    revoked = [(change.grant.source, change.grant.prefix, change.rule_id) for change in changes if change.op == REVOKE]
    assert revoked == [("db", False, ""), ("web.", True, "")]
    assert [change.seq for change in changes] == sorted(change.seq for change in changes)
