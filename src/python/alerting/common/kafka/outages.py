"""Telling a dependency outage from a poison record (pure).

An outage (Kafka, Postgres, Redis or the mail server out of reach, overloaded, restarting,
or refusing this service's credentials) passes: the work is retried with backoff and
nothing is skipped. Any other exception raised while decoding or handling a record is taken
to be caused by that record, which can then never be processed: it is dead-lettered.
Wrongly calling an outage poison would dead-letter good records, so every error of a
client library that speaks of the dependency's state counts as an outage.
"""

from __future__ import annotations

import sys

# SQLSTATE classes and codes of Postgres that describe the server's state, not the data:
# connection (08), authorization (28), database missing (3D), transaction rollback, such
# as a serialization failure or deadlock (40), resources (53), operator intervention such
# as a shutdown or statement timeout (57), system (58), internal (XX), and a schema or
# privileges not in place yet (42501 insufficient privilege, 42P01 undefined table,
# 42703 undefined column, 42883 undefined function).
POSTGRES_OUTAGE_CLASSES = ("08", "28", "3D", "40", "53", "57", "58", "XX")
POSTGRES_OUTAGE_CODES = ("42501", "42P01", "42703", "42883")


def is_outage(error: BaseException) -> bool:
    """Whether `error` says a dependency cannot be used now, so the work is to be retried."""
    # Connections, sockets, TLS, timeouts, and the sender's SMTP client (whose errors are
    # OSErrors, as smtplib's are).
    if isinstance(error, OSError | TimeoutError):
        return True
    # A library's errors can exist only once it is imported: no import here costs a worker
    # that does not use it.
    kafka = sys.modules.get("aiokafka.errors")
    if kafka is not None and isinstance(error, kafka.KafkaError):
        # A message too large for the broker is one a record made: no retry will send it.
        return not isinstance(error, kafka.MessageSizeTooLargeError | kafka.RecordTooLargeError
                              | kafka.RecordListTooLargeError)
    redis = sys.modules.get("redis.exceptions")
    if redis is not None and isinstance(error, redis.RedisError):
        # The values this platform writes are validated first: only DataError (a value the
        # client cannot encode) is about the data.
        return not isinstance(error, redis.DataError)
    asyncpg = sys.modules.get("asyncpg.exceptions")
    if asyncpg is not None:
        if isinstance(error, asyncpg.PostgresError):
            sqlstate = str(getattr(error, "sqlstate", "") or "")
            return sqlstate[:2] in POSTGRES_OUTAGE_CLASSES or sqlstate in POSTGRES_OUTAGE_CODES
        if isinstance(error, asyncpg.InternalClientError):
            return True
        # A closed connection or pool; its ValueError subclasses are about an argument.
        if isinstance(error, asyncpg.InterfaceError):
            return not isinstance(error, ValueError)
    return False


def poison_reason(error: BaseException) -> str:
    """The dead letter's reason for an unforeseen error: its type and message."""
    return f"{type(error).__name__}: {error}"
