"""The gRPC ReceiverService: clients' email, webhook and Slack receivers in `receivers`.

An email receiver's addresses are checked as a rule's are. A URL is checked when saved
(rules/receivers.py; the sender checks it again, resolved, at every request). A webhook's
signing secret is made here, shown once in the answer that made it, and stored sealed under
the receiver-secret key: without that key the service cannot make webhooks
(FAILED_PRECONDITION says so). An admin acts on any client's receivers, a tenant on its own;
another client's ids are NOT_FOUND. The SQL is store/receivers.py's."""

from __future__ import annotations

from typing import TYPE_CHECKING

import asyncpg

from alerting.common.settings import DEFAULT_MAX_RECEIVERS_PER_CLIENT
from alerting.common.validation import MAX_FIELD, InvalidField, canonical_uuid, email_addresses, text
from alerting.rule_service import validation
from alerting.rule_service.auth import caller, visible_client_id
from alerting.rule_service.errors import FailedPrecondition, grpc_errors
from alerting.rule_service.store import receivers as receiver_store
from alerting.rules import receivers
from alerting.rules.receivers import OutboundPolicy, Sealer
from alerting.v1 import receiver_service_pb2 as api
from alerting.v1 import receiver_service_pb2_grpc

if TYPE_CHECKING:
    from alerting.rule_service.errors import Context

KIND_NAMES = {api.RECEIVER_KIND_EMAIL: "email", api.RECEIVER_KIND_WEBHOOK: "webhook",
              api.RECEIVER_KIND_SLACK: "slack"}


class ReceiverService(receiver_service_pb2_grpc.ReceiverServiceServicer):
    def __init__(self, pool: asyncpg.Pool, sealer: Sealer | None, outbound: OutboundPolicy,
                 max_receivers_per_client: int = DEFAULT_MAX_RECEIVERS_PER_CLIENT) -> None:
        self.pool = pool
        self.sealer = sealer
        self.outbound = outbound
        self.max_receivers_per_client = max_receivers_per_client

    def sealed(self, secret: str) -> bytes:
        if self.sealer is None:
            raise FailedPrecondition("kind: this rule-service has no receiver-secret key"
                                     " (ALERTING_RECEIVER_SECRET_KEY_FILE) to keep webhook secrets and Slack URLs"
                                     " with")
        return self.sealer.seal(secret)

    @grpc_errors
    async def CreateReceiver(self, request: api.CreateReceiverRequest, context: Context
                             ) -> api.CreateReceiverResponse:
        client_id = visible_client_id(request.client_id)
        name = text(request.name, "name", MAX_FIELD)
        if request.kind not in KIND_NAMES:
            raise InvalidField("kind", "RECEIVER_KIND_EMAIL, RECEIVER_KIND_WEBHOOK or RECEIVER_KIND_SLACK")
        kind = KIND_NAMES[request.kind]
        endpoint = self.endpoint(kind, request.url, list(request.addresses))
        secret = receivers.new_secret() if kind == "webhook" else ""
        created = await receiver_store.create(self.pool, client_id, name, kind, endpoint,
                                              self.sealed(secret) if secret else None, caller().key_id,
                                              self.max_receivers_per_client)
        return api.CreateReceiverResponse(receiver=created, signing_secret=secret)

    def endpoint(self, kind: str, url: str, addresses: list[str]) -> receiver_store.Endpoint:
        """Where a receiver of `kind` delivers, checked: addresses for email, a URL otherwise,
        which for Slack is a credential, kept sealed and shown redacted."""
        if kind == "email":
            if url:
                raise InvalidField("url", "an email receiver has addresses, not a URL")
            return receiver_store.Endpoint(None, email_addresses(addresses, "addresses"))
        if addresses:
            raise InvalidField("addresses", f"a {kind} receiver has a URL, not addresses")
        checked = receivers.url(url, self.outbound)
        if kind == "slack":
            return receiver_store.Endpoint(receivers.redacted(checked), [], self.sealed(checked))
        return receiver_store.Endpoint(checked, [])

    @grpc_errors
    async def GetReceiver(self, request: api.GetReceiverRequest, context: Context) -> api.Receiver:
        receiver_id = canonical_uuid(request.receiver_id, "receiver_id")
        return await receiver_store.get(self.pool, receiver_id, caller().visible_client())

    @grpc_errors
    async def ListReceivers(self, request: api.ListReceiversRequest, context: Context) -> api.ListReceiversResponse:
        client_id = visible_client_id(request.client_id) if request.client_id else caller().visible_client()
        size = validation.page_size(request.page_size)
        after = validation.decode_page_token(request.page_token)
        listed, last = await receiver_store.list_page(self.pool, client_id, after, size)
        return api.ListReceiversResponse(receivers=listed,
                                         next_page_token=validation.encode_page_token(last) if last else "")

    @grpc_errors
    async def RotateReceiverSecret(self, request: api.RotateReceiverSecretRequest, context: Context
                                   ) -> api.RotateReceiverSecretResponse:
        receiver_id = canonical_uuid(request.receiver_id, "receiver_id")
        secret = receivers.new_secret()
        rotated = await receiver_store.rotate(self.pool, receiver_id, caller().visible_client(), self.sealed(secret),
                                              caller().key_id)
        return api.RotateReceiverSecretResponse(receiver=rotated, signing_secret=secret)

    @grpc_errors
    async def UpdateReceiver(self, request: api.UpdateReceiverRequest, context: Context) -> api.Receiver:
        receiver_id = canonical_uuid(request.receiver_id, "receiver_id")
        expected = validation.expected_version(request.expected_version, required=False)
        current = await receiver_store.get(self.pool, receiver_id, caller().visible_client())
        endpoint = self.endpoint(KIND_NAMES[current.kind], request.url, list(request.addresses))
        return await receiver_store.update(self.pool, receiver_id, caller().visible_client(), endpoint,
                                           expected or current.version, caller().key_id)

    @grpc_errors
    async def DeleteReceiver(self, request: api.DeleteReceiverRequest, context: Context
                             ) -> api.DeleteReceiverResponse:
        receiver_id = canonical_uuid(request.receiver_id, "receiver_id")
        await receiver_store.delete(self.pool, receiver_id, caller().visible_client())
        return api.DeleteReceiverResponse()
