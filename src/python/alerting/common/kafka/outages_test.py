"""Telling a dependency outage (retried) from a poison record (dead-lettered)."""

import asyncio

import asyncpg
import pytest
import redis.exceptions
from aiokafka import errors as kafka

from alerting.common.kafka.outages import is_outage, poison_reason


@pytest.mark.parametrize("error", [
    ConnectionRefusedError(111, "refused"), TimeoutError(), asyncio.TimeoutError(), OSError("ssl"),
    kafka.KafkaConnectionError(), kafka.NotLeaderForPartitionError(), kafka.KafkaTimeoutError(),
    redis.exceptions.ConnectionError(), redis.exceptions.BusyLoadingError(),
    asyncpg.exceptions.CannotConnectNowError(), asyncpg.exceptions.SerializationError(),
    asyncpg.exceptions.InsufficientPrivilegeError(), asyncpg.exceptions.UndefinedTableError(),
    asyncpg.exceptions.AdminShutdownError(), asyncpg.exceptions.DeadlockDetectedError(),
], ids=lambda error: type(error).__name__)
def test_a_dependency_out_of_reach_or_not_ready_is_an_outage(error: BaseException) -> None:
    assert is_outage(error)


@pytest.mark.parametrize("error", [
    ValueError("Timestamp is not valid"), KeyError("x"), ZeroDivisionError(),
    UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"),
    kafka.MessageSizeTooLargeError(), kafka.RecordTooLargeError(),
    redis.exceptions.DataError("cannot encode"),
    asyncpg.exceptions.CharacterNotInRepertoireError(), asyncpg.exceptions.NumericValueOutOfRangeError(),
    asyncpg.exceptions.UniqueViolationError(),
], ids=lambda error: type(error).__name__)
def test_an_error_a_record_causes_is_no_outage(error: BaseException) -> None:
    assert not is_outage(error)


def test_the_reason_of_an_unforeseen_error_names_its_type() -> None:
    assert poison_reason(ValueError("Timestamp is not valid")) == "ValueError: Timestamp is not valid"
