"""The ReceiverService over real gRPC on the real stack: webhooks with a secret shown once
and stored sealed, Slack receivers without one, email receivers with addresses, updates at
a version, URLs refused naming the field, names unique
per client, rotation, deletion refused while a rule names the receiver, and paging."""

from __future__ import annotations

from typing import Any

import grpc

from alerting.common.settings import DatabaseSettings
from alerting.rules.receivers import Sealer
from alerting.testsupport.calls import answer, new_client
from alerting.testsupport.services import RECEIVER_SECRET_KEY, fetch, rule_service
from alerting.testsupport.stack import StackSettings
from alerting.v1 import receiver_service_pb2 as api
from alerting.v1 import receiver_service_pb2_grpc, rule_service_pb2, rule_service_pb2_grpc

WEBHOOK, SLACK, EMAIL = api.RECEIVER_KIND_WEBHOOK, api.RECEIVER_KIND_SLACK, api.RECEIVER_KIND_EMAIL


def stub(channel: grpc.aio.Channel) -> receiver_service_pb2_grpc.ReceiverServiceAsyncStub:
    return receiver_service_pb2_grpc.ReceiverServiceStub(channel)


async def sealed_secret(settings: DatabaseSettings, receiver_id: str) -> str:
    [row] = await fetch(settings, "SELECT secret_sealed FROM receivers WHERE receiver_id = $1", receiver_id)
    return Sealer(RECEIVER_SECRET_KEY).unseal(bytes(row["secret_sealed"]))


async def test_a_webhooks_secret_is_shown_once_stored_sealed_and_rotated(stack_settings: StackSettings) -> None:
    async with rule_service(stack_settings) as service, service.channel() as channel:
        client_id = await new_client(service)
        created = await stub(channel).CreateReceiver(api.CreateReceiverRequest(
            client_id=client_id, name="ops hook", kind=WEBHOOK, url="http://127.0.0.1:8091/hooks/ops"))
        receiver = created.receiver
        assert (receiver.client_id, receiver.name, receiver.kind, receiver.url, receiver.version) == (
            client_id, "ops hook", WEBHOOK, "http://127.0.0.1:8091/hooks/ops", 1)
        assert created.signing_secret.startswith("whsec_")
        assert await sealed_secret(service.settings, receiver.receiver_id) == created.signing_secret
        shown = await stub(channel).GetReceiver(api.GetReceiverRequest(receiver_id=receiver.receiver_id))
        assert shown == receiver and created.signing_secret not in str(shown)

        rotated = await stub(channel).RotateReceiverSecret(
            api.RotateReceiverSecretRequest(receiver_id=receiver.receiver_id))
        assert rotated.receiver.version == 2 and rotated.signing_secret != created.signing_secret
        assert await sealed_secret(service.settings, receiver.receiver_id) == rotated.signing_secret

        slack = await stub(channel).CreateReceiver(api.CreateReceiverRequest(
            client_id=client_id, name="chat", kind=SLACK, url="https://hooks.slack.com/services/T0/B0/x"))
        assert (slack.signing_secret, slack.receiver.url) == ("", "https://hooks.slack.com/services/T0/B0/…")
        [row] = await fetch(service.settings, "SELECT url_sealed FROM receivers WHERE receiver_id = $1",
                            slack.receiver.receiver_id)
        assert Sealer(RECEIVER_SECRET_KEY).unseal(bytes(row["url_sealed"])) == "https://hooks.slack.com/services/T0/B0/x"
        assert await answer(stub(channel).RotateReceiverSecret(
            api.RotateReceiverSecretRequest(receiver_id=slack.receiver.receiver_id))) == (
            grpc.StatusCode.FAILED_PRECONDITION,
            f"receiver_id: {slack.receiver.receiver_id} has no secret: only webhooks sign their requests"
            " (it is of kind slack)")


async def test_what_a_request_may_not_hold_is_refused_naming_the_field(stack_settings: StackSettings) -> None:
    async with rule_service(stack_settings, outbound_allowed_networks=()) as service, service.channel() as channel:
        client_id = await new_client(service)

        def create(**fields: Any) -> grpc.aio.UnaryUnaryCall:
            defaults: dict[str, Any] = {"client_id": client_id, "name": "hook", "kind": WEBHOOK,
                                           "url": "https://hooks.example.com/x"}
            return stub(channel).CreateReceiver(api.CreateReceiverRequest(**(defaults | fields)))

        invalid = grpc.StatusCode.INVALID_ARGUMENT
        assert await answer(create(url="http://127.0.0.1:8091/x")) == (
            invalid, "url: 127.0.0.1 is a loopback address; requests may not go there")
        assert await answer(create(url="https://169.254.169.254/")) == (
            invalid, "url: 169.254.169.254 is the cloud metadata address; requests may not go there")
        assert await answer(create(kind=api.RECEIVER_KIND_UNSPECIFIED)) == (
            invalid, "kind: RECEIVER_KIND_EMAIL, RECEIVER_KIND_WEBHOOK or RECEIVER_KIND_SLACK")
        assert await answer(create(addresses=["ops@x.io"])) == (
            invalid, "addresses: a webhook receiver has a URL, not addresses")
        assert await answer(create(kind=EMAIL)) == (invalid, "url: an email receiver has addresses, not a URL")
        assert await answer(create(kind=EMAIL, url="")) == (
            invalid, "addresses: at least one email address is required")
        assert (await answer(create(kind=EMAIL, url="", addresses=["not an address"])))[0:1] == (invalid,)
        assert (await answer(create(name="")))[0] == invalid
        assert await answer(create()) == (grpc.StatusCode.OK, None)
        assert await answer(create()) == (
            grpc.StatusCode.ALREADY_EXISTS, f"name: client {client_id} has a receiver named 'hook'")


async def test_a_receiver_a_rule_names_cannot_be_deleted_and_rules_name_only_their_clients(
    stack_settings: StackSettings
) -> None:
    async with rule_service(stack_settings) as service, service.channel() as channel:
        client_id, other_id = await new_client(service), await new_client(service, "other")
        receiver = (await stub(channel).CreateReceiver(api.CreateReceiverRequest(
            client_id=client_id, name="hook", kind=WEBHOOK, url="http://127.0.0.1:8091/x"))).receiver
        rules = rule_service_pb2_grpc.RuleServiceStub(channel)
        rule = await rules.CreateRule(rule_service_pb2.CreateRuleRequest(
            client_id=client_id, severity="HIGH", source="db", name="*", receiver_ids=[receiver.receiver_id]))
        assert (list(rule.emails), list(rule.receiver_ids)) == ([], [receiver.receiver_id])
        assert await answer(rules.CreateRule(rule_service_pb2.CreateRuleRequest(
            client_id=other_id, severity="HIGH", source="db", name="*", receiver_ids=[receiver.receiver_id]))) == (
            grpc.StatusCode.NOT_FOUND, f"receiver_ids: no receiver {receiver.receiver_id}")
        assert await answer(rules.CreateRule(rule_service_pb2.CreateRuleRequest(
            client_id=client_id, severity="HIGH", source="db", name="*"))) == (
            grpc.StatusCode.INVALID_ARGUMENT, "emails: at least one email address or receiver is required")

        delete = api.DeleteReceiverRequest(receiver_id=receiver.receiver_id)
        assert await answer(stub(channel).DeleteReceiver(delete)) == (
            grpc.StatusCode.FAILED_PRECONDITION,
            f"receiver_id: rules name {receiver.receiver_id}: {rule.rule_id}; change them first")
        await rules.UpdateRule(rule_service_pb2.UpdateRuleRequest(
            rule_id=rule.rule_id, severity="HIGH", source="db", name="*", emails=["ops@x.io"], enabled=True,
            expected_version=rule.version))
        assert await answer(stub(channel).DeleteReceiver(delete)) == (grpc.StatusCode.OK, None)
        assert await answer(stub(channel).GetReceiver(api.GetReceiverRequest(receiver_id=receiver.receiver_id))) == (
            grpc.StatusCode.NOT_FOUND, f"receiver_id: no receiver {receiver.receiver_id}")


async def test_receivers_are_listed_by_id_a_page_at_a_time(stack_settings: StackSettings) -> None:
    async with rule_service(stack_settings) as service, service.channel() as channel:
        client_id = await new_client(service)
        made = sorted([(await stub(channel).CreateReceiver(api.CreateReceiverRequest(
            client_id=client_id, name=f"hook {n}", kind=SLACK, url="https://hooks.slack.com/x"))).receiver.receiver_id
            for n in range(5)])
        seen, token = [], ""
        while True:
            listed = await stub(channel).ListReceivers(
                api.ListReceiversRequest(client_id=client_id, page_size=2, page_token=token))
            seen += [receiver.receiver_id for receiver in listed.receivers]
            token = listed.next_page_token
            if not token:
                break
        assert seen == made


async def test_an_email_receiver_keeps_a_teams_addresses_and_changes_them_at_a_version(
    stack_settings: StackSettings
) -> None:
    async with rule_service(stack_settings) as service, service.channel() as channel:
        client_id = await new_client(service)
        created = await stub(channel).CreateReceiver(api.CreateReceiverRequest(
            client_id=client_id, name="on call", kind=EMAIL, addresses=["ops@X.io", "ops@x.io", "dba@x.io"]))
        receiver = created.receiver
        assert (receiver.kind, receiver.url, list(receiver.addresses), created.signing_secret) == (
            EMAIL, "", ["ops@x.io", "dba@x.io"], "")
        rules = rule_service_pb2_grpc.RuleServiceStub(channel)
        rule = await rules.CreateRule(rule_service_pb2.CreateRuleRequest(
            client_id=client_id, severity="HIGH", source="db", name="*", receiver_ids=[receiver.receiver_id]))
        assert list(rule.receiver_ids) == [receiver.receiver_id]

        update = api.UpdateReceiverRequest(receiver_id=receiver.receiver_id, addresses=["sre@x.io"],
                                           expected_version=1)
        updated = await stub(channel).UpdateReceiver(update)
        assert (list(updated.addresses), updated.version) == (["sre@x.io"], 2)
        assert await answer(stub(channel).UpdateReceiver(update)) == (
            grpc.StatusCode.FAILED_PRECONDITION, "expected_version: is 1, the current version is 2")
        assert await answer(stub(channel).UpdateReceiver(api.UpdateReceiverRequest(
            receiver_id=receiver.receiver_id, url="https://hooks.example.com/x"))) == (
            grpc.StatusCode.INVALID_ARGUMENT, "url: an email receiver has addresses, not a URL")
        assert await answer(stub(channel).RotateReceiverSecret(
            api.RotateReceiverSecretRequest(receiver_id=receiver.receiver_id))) == (
            grpc.StatusCode.FAILED_PRECONDITION,
            f"receiver_id: {receiver.receiver_id} has no secret: only webhooks sign their requests"
            " (it is of kind email)")

        hook = (await stub(channel).CreateReceiver(api.CreateReceiverRequest(
            client_id=client_id, name="hook", kind=WEBHOOK, url="http://127.0.0.1:8091/x"))).receiver
        moved = await stub(channel).UpdateReceiver(api.UpdateReceiverRequest(
            receiver_id=hook.receiver_id, url="http://127.0.0.1:8091/y"))
        assert (moved.url, moved.version) == ("http://127.0.0.1:8091/y", 2)
