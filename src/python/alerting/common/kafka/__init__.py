"""The platform's Kafka runtime: clients, publishing, decoding, the dead-letter format, and
the batch loop every worker runs with its hooks (`run_worker`). What services use is
imported from here; the modules beside say what each part does."""

from alerting.common.kafka.clients import (
    MAX_PARTITION_FETCH_BYTES,
    kafka_client_options,
    make_consumer,
    make_producer,
    start_clients,
)
from alerting.common.kafka.dead_letters import dead_letter_message
from alerting.common.kafka.decoding import InvalidEvent, decode
from alerting.common.kafka.leave import stop_consumer
from alerting.common.kafka.publishing import OutgoingMessage, publish_all
from alerting.common.kafka.runtime import Companion, Wiring, run_worker
from alerting.common.kafka.worker import Delivery, Handler

__all__ = [
    "MAX_PARTITION_FETCH_BYTES",
    "Companion",
    "Delivery",
    "Handler",
    "InvalidEvent",
    "OutgoingMessage",
    "Wiring",
    "dead_letter_message",
    "decode",
    "kafka_client_options",
    "make_consumer",
    "make_producer",
    "publish_all",
    "run_worker",
    "start_clients",
    "stop_consumer",
]
