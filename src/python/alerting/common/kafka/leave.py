"""A static member's leave: LeaveGroup v3 (KIP-345), which names a member by its instance id.
aiokafka sends only the older versions, which cannot, and skips leaving for static members;
the request goes through aiokafka's internals (its requirement is bounded for that)."""

from __future__ import annotations

import logging

from aiokafka import AIOKafkaConsumer
from aiokafka.client import ConnectionGroup
from aiokafka.errors import KafkaError
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import Array, Int16, Int32, Schema, String

log = logging.getLogger(__name__)


class _LeaveGroupResponse_v3(Response):
    API_KEY = 13
    API_VERSION = 3
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("error_code", Int16),
        ("members", Array(("member_id", String("utf-8")), ("group_instance_id", String("utf-8")),
                          ("error_code", Int16))),
    )


class _LeaveGroupRequest_v3(RequestStruct):
    API_KEY = 13
    API_VERSION = 3
    RESPONSE_TYPE = _LeaveGroupResponse_v3
    SCHEMA = Schema(
        ("group_id", String("utf-8")),
        ("members", Array(("member_id", String("utf-8")), ("group_instance_id", String("utf-8")))),
    )


class _StaticMemberLeave(Request[_LeaveGroupRequest_v3]):
    API_KEY = 13

    def __init__(self, group_id: str, member_id: str, instance_id: str) -> None:
        self.group_id = group_id
        self.member_id = member_id
        self.instance_id = instance_id

    def build(self, request_struct_class: type[_LeaveGroupRequest_v3]) -> _LeaveGroupRequest_v3:
        return request_struct_class(self.group_id, [(self.member_id, self.instance_id)])


async def stop_consumer(consumer: AIOKafkaConsumer) -> None:
    """Stop a group consumer, leaving the group first so its partitions are handed over at
    once rather than after the session timeout: aiokafka leaves only as a dynamic member,
    so a static member (one with an instance id) leaves here. Best effort: a failed leave
    costs the session timeout, nothing more."""
    coordinator = consumer._coordinator  # no public API reaches the group coordinator
    instance_id = consumer._group_instance_id
    joined = coordinator is not None and coordinator.generation > 0 and coordinator.coordinator_id is not None
    if instance_id and joined:
        request = _StaticMemberLeave(coordinator.group_id, coordinator.member_id, instance_id)
        try:
            response = await consumer._client.send(coordinator.coordinator_id, request,
                                                   group=ConnectionGroup.COORDINATION)
            if response.error_code:
                log.warning("leaving the group as %s failed: error %d", instance_id, response.error_code)
        except KafkaError as error:
            log.warning("leaving the group as %s failed: %r", instance_id, error)
    await consumer.stop()
