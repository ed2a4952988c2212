import asyncpg
from aiokafka.admin import AIOKafkaAdminClient

from alerting.common import topics
from alerting.common.kafka import kafka_client_options
from alerting.common.redis_client import redis_client
from alerting.testsupport.stack import StackSettings


async def test_each_test_gets_its_own_prefixed_topics(stack_settings: StackSettings) -> None:
    admin = AIOKafkaAdminClient(**kafka_client_options(stack_settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
    finally:
        await admin.close()
    for name in topics.INPUT_TOPICS:
        assert stack_settings.topic(name) in existing
        assert stack_settings.topic(topics.dead_letter(name)) in existing


async def test_each_test_gets_a_migrated_database_of_its_own(stack_settings: StackSettings) -> None:
    connection = await asyncpg.connect(stack_settings.database_url)
    try:
        tables = {
            row["tablename"]
            for row in await connection.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }
        assert {"clients", "rules", "rule_outbox", "notifications"} <= tables
        assert await connection.fetchval("SELECT count(*) FROM notifications") == 0
    finally:
        await connection.close()


async def test_redis_versioned_key_round_trip(stack_settings: StackSettings) -> None:
    client = redis_client(stack_settings)
    key = stack_settings.redis_key("rules:version")
    try:
        assert await client.get(key) is None
        async with client.pipeline(transaction=True) as pipe:
            pipe.set(key, 41)
            pipe.incr(key)
            results = await pipe.execute()
        assert results == [True, 42]
        value = await client.get(key)
        assert value is not None
        assert int(value) == 42
    finally:
        await client.aclose()
