"""The Redis rule snapshot that evaluators warm from and the rule-updater keeps current.

Keys (under RedisSettings.redis_key_prefix):
  rules:snapshot       hash  rule_id -> its signature (32 bytes) and serialized alerting.v1.Rule
  rules:version        the seq of the last `rule.changed` change applied (monotonic)
  rules:snapshot:meta  hash  next_offset (the first `rule.changed` offset NOT covered),
                             count (entries in rules:snapshot, to detect damage),
                             grants (entries in rules:grants),
                             signature (of the version, next_offset, count and grants)
  rules:grants         hash  changelog.grant_key -> its signature and serialized alerting.v1.SourceGrant
A batch of changes is applied by one Lua script, so the four keys always agree. The
script refuses the batch when the snapshot lost its metadata or rules, or does not reach
the batch's first offset (SnapshotIncomplete): the caller then rebuilds it from Postgres
(alerting.rules.rebuild), rather than patch it into a snapshot that only looks complete.

Signatures are HMAC-SHA256 with RuleSnapshotSettings.rule_snapshot_key, which the rule-updater (the
one writer) and the evaluator (which checks) hold: whoever else can write Redis cannot
make a rule, a grant, a version or an offset that a reader accepts (SnapshotCorrupt), so
the evaluator never matches alerts against rules or grants that Postgres does not hold. An
entry's signature covers its field (rule_id, grant key) and payload; the metadata's covers
the version, the offset and both counts, so an entry cannot be added, dropped or moved.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar, cast

import redis.asyncio as redis
from google.protobuf.message import DecodeError
from redis.asyncio.lock import Lock
from redis.exceptions import ResponseError

from alerting.common.settings import RuleSnapshotSettings, secret_value
from alerting.rules.changelog import DELETE, GRANT, REVOKE, UPSERT, change_key, grant_key
from alerting.v1 import events_pb2, rule_pb2

R = TypeVar("R")

SNAPSHOT_KEY = "rules:snapshot"
VERSION_KEY = "rules:version"
META_KEY = "rules:snapshot:meta"
GRANTS_KEY = "rules:grants"
LOCK_KEY = "rules:snapshot:lock"
LOAD_CHUNK = 20_000
SIGNATURE_BYTES = 32  # HMAC-SHA256

# The letter a change's op has in _APPLY_CHANGES: a rule upserted or deleted, a grant given
# or revoked.
_OPS = {UPSERT: "U", DELETE: "D", GRANT: "G", REVOKE: "R"}
# ARGV: the version, next_offset, count and grants the caller read and checked the signature
# of, first_offset, next_offset (the batch's offsets), then (offset, seq, op U|D|G|R, key,
# signed payload) per change, in log order. A change applies as changelog.applies says, and
# only once: one at an offset the snapshot already covers (read again after a crash before
# the commit) is skipped. The metadata's signature is removed: the caller signs what it
# returns, {applied, version, next_offset, count, grants}; a reader finding none rebuilds.
# Returns why it refused the batch instead, if it did.
_APPLY_CHANGES = """
local covered, count, granted = unpack(redis.call('HMGET', KEYS[3], 'next_offset', 'count', 'grants'))
local version = redis.call('GET', KEYS[2])
if not (covered and count and version) then
  return 'no snapshot metadata'
end
if not granted then
  return 'no grant count: written before source grants existed'
end
if version ~= ARGV[1] or covered ~= ARGV[2] or count ~= ARGV[3] or granted ~= ARGV[4] then
  return 'its metadata changed since it was checked'
end
if tonumber(ARGV[5]) > tonumber(covered) then
  return 'it covers rule.changed offsets before ' .. covered .. ', the batch starts at ' .. ARGV[5]
end
local held = redis.call('HLEN', KEYS[1])
if held ~= tonumber(count) then
  return 'it holds ' .. held .. ' rules, its metadata says ' .. count
end
local grants_held = redis.call('HLEN', KEYS[4])
if grants_held ~= tonumber(granted) then
  return 'it holds ' .. grants_held .. ' grants, its metadata says ' .. granted
end
version = tonumber(version)
covered = tonumber(covered)
local applied = 0
for i = 7, #ARGV, 5 do
  local seq = tonumber(ARGV[i + 1])
  if tonumber(ARGV[i]) >= covered and seq > version then
    local op = ARGV[i + 2]
    if op == 'U' then
      redis.call('HSET', KEYS[1], ARGV[i + 3], ARGV[i + 4])
    elseif op == 'D' then
      redis.call('HDEL', KEYS[1], ARGV[i + 3])
    elseif op == 'G' then
      redis.call('HSET', KEYS[4], ARGV[i + 3], ARGV[i + 4])
    else
      redis.call('HDEL', KEYS[4], ARGV[i + 3])
    end
    version = seq
    applied = applied + 1
  end
end
redis.call('SET', KEYS[2], version)
local next_offset = math.max(tonumber(ARGV[6]), covered)
count, granted = redis.call('HLEN', KEYS[1]), redis.call('HLEN', KEYS[4])
redis.call('HSET', KEYS[3], 'next_offset', next_offset, 'count', count, 'grants', granted)
redis.call('HDEL', KEYS[3], 'signature')
return {applied, version, next_offset, count, granted}
"""


class SnapshotCorrupt(Exception):
    pass


class SnapshotIncomplete(Exception):
    """The snapshot cannot take a batch and stay complete: its metadata is gone (Redis lost
    it, or it was written before grants existed), it does not reach the batch's first offset
    (Redis went back to an older state), or it lost rules or grants."""


@dataclass
class Snapshot(Generic[R]):
    rules: list[R]  # alerting.v1.Rule messages, or what a reader converted them to
    version: int
    next_offset: int
    grants: list[rule_pb2.SourceGrant] = field(default_factory=list)


def unconverted(rule: rule_pb2.Rule) -> rule_pb2.Rule:
    return rule


def signing_key(settings: RuleSnapshotSettings) -> bytes:
    """The snapshot's HMAC key; none is no snapshot at all, rather than one nobody checks."""
    key = secret_value(settings.rule_snapshot_key)
    if not key:
        raise ValueError("ALERTING_RULE_SNAPSHOT_KEY (or _FILE) is not set: the rule snapshot can be neither "
                         "signed nor checked")
    return key.encode()


def signed(key: bytes, field: str, payload: bytes) -> bytes:
    """A snapshot entry: the signature of its hash field (rule_id, grant key) and payload, then the payload."""
    return _entry_signature(key, field.encode(), payload) + payload


def _entry_signature(key: bytes, field: bytes, payload: bytes) -> bytes:
    return hmac.digest(key, b"entry\0" + field + b"\0" + payload, "sha256")


def _meta_signature(key: bytes, version: int, next_offset: int, count: int, granted: int) -> bytes:
    return hmac.digest(key, b"meta\0%d\0%d\0%d\0%d" % (version, next_offset, count, granted), "sha256")


async def _read_meta(client: redis.Redis, meta_key: str, version_key: str) -> tuple[dict[bytes, bytes], bytes | None]:
    """The metadata hash and the version, as stored (the client decodes no responses)."""
    meta = cast(dict[bytes, bytes], await client.hgetall(meta_key))
    return meta, cast(bytes | None, await client.get(version_key))


def _checked_meta(key: bytes, meta: dict[bytes, bytes], stored_version: bytes | None) -> tuple[int, int, int, int]:
    """The version, next_offset, count and grants, if their signature holds; SnapshotCorrupt if not."""
    if meta and b"grants" not in meta:
        raise SnapshotCorrupt("no grant count in the snapshot metadata: written before source grants existed")
    try:
        next_offset, count, granted = int(meta[b"next_offset"]), int(meta[b"count"]), int(meta[b"grants"])
        version = int(stored_version)  # type: ignore[arg-type]  # None raises TypeError: corrupt
    except (KeyError, TypeError, ValueError) as error:
        raise SnapshotCorrupt(f"bad snapshot metadata: {error!r}") from error
    if not hmac.compare_digest(meta.get(b"signature", b""), _meta_signature(key, version, next_offset, count, granted)):
        raise SnapshotCorrupt(f"the snapshot's version {version}, offset {next_offset} and counts {count}, {granted} "
                              "are not signed with the rule snapshot key")
    return version, next_offset, count, granted


def _checked_payload(key: bytes, field: bytes, entry: bytes) -> bytes:
    """An entry's payload, if its signature holds; SnapshotCorrupt if not."""
    signature, payload = entry[:SIGNATURE_BYTES], entry[SIGNATURE_BYTES:]
    if not hmac.compare_digest(signature, _entry_signature(key, field, payload)):
        raise SnapshotCorrupt(f"entry {field.decode(errors='replace')} of the snapshot is not signed with the "
                              "rule snapshot key")
    return payload


def keys(settings: RuleSnapshotSettings) -> list[str]:
    return [settings.redis_key(key) for key in (SNAPSHOT_KEY, VERSION_KEY, META_KEY, GRANTS_KEY)]


def lock(client: redis.Redis, settings: RuleSnapshotSettings) -> Lock:
    """Serializes snapshot writers (the rule-updater's batches and any rebuild)."""
    return client.lock(settings.redis_key(LOCK_KEY), timeout=120, blocking_timeout=300)


async def load(client: redis.Redis, settings: RuleSnapshotSettings) -> Snapshot[rule_pb2.Rule] | None:
    """The snapshot, None when there is none; SnapshotCorrupt when it cannot be trusted."""
    return await load_converted(client, settings, unconverted)


async def load_converted(
    client: redis.Redis, settings: RuleSnapshotSettings, convert: Callable[[rule_pb2.Rule], R]
) -> Snapshot[R] | None:
    """As load, each rule passed through `convert` as soon as it is parsed: a reader that keeps
    something smaller than the message never holds a million messages at once.
    Read under the writers' lock: a scan that overlapped a rule-updater batch could see a
    rule twice or miss its count, and trigger a needless rebuild."""
    try:
        async with lock(client, settings):
            return await _read(client, settings, convert)
    except ResponseError as error:
        # A snapshot key of another type (WRONGTYPE). Outages raise ConnectionError instead.
        raise SnapshotCorrupt(f"unreadable snapshot: {error}") from error


async def _read(
    client: redis.Redis, settings: RuleSnapshotSettings, convert: Callable[[rule_pb2.Rule], R]
) -> Snapshot[R] | None:
    key = signing_key(settings)
    snapshot_key, version_key, meta_key, grants_key = keys(settings)
    meta, stored_version = await _read_meta(client, meta_key, version_key)
    if not meta and stored_version is None:
        return None
    version, next_offset, count, granted = _checked_meta(key, meta, stored_version)
    rules: list[R] = []
    parse = rule_pb2.Rule.FromString
    following: asyncio.Future[tuple[int, dict[bytes, bytes]]] | None = None
    try:
        cursor, chunk = await _scan_chunk(client, snapshot_key, 0)
        while True:
            # Ask for the next chunk before parsing this one, so Redis works meanwhile.
            following = asyncio.ensure_future(_scan_chunk(client, snapshot_key, cursor)) if cursor else None
            await asyncio.sleep(0)  # lets that request go out
            rules.extend(convert(parse(_checked_payload(key, rule_id, entry))) for rule_id, entry in chunk.items())
            if following is None:
                break
            cursor, chunk = await following
    except (DecodeError, SnapshotCorrupt) as error:
        if following is not None:
            following.cancel()
        if isinstance(error, SnapshotCorrupt):
            raise
        raise SnapshotCorrupt(f"undecodable rule in snapshot: {error}") from error
    if len(rules) != count:
        raise SnapshotCorrupt(f"snapshot holds {len(rules)} rules, its metadata says {count}")
    return Snapshot(rules, version, next_offset, await _read_grants(client, key, grants_key, granted))


async def _read_grants(client: redis.Redis, key: bytes, grants_key: str, granted: int) -> list[rule_pb2.SourceGrant]:
    """The grants (a few per client: read whole), `granted` of them as the metadata says."""
    stored = cast(dict[bytes, bytes], await client.hgetall(grants_key))
    try:
        grants = [rule_pb2.SourceGrant.FromString(_checked_payload(key, field, entry))
                  for field, entry in stored.items()]
    except DecodeError as error:
        raise SnapshotCorrupt(f"undecodable grant in snapshot: {error}") from error
    if len(grants) != granted:
        raise SnapshotCorrupt(f"snapshot holds {len(grants)} grants, its metadata says {granted}")
    return grants


async def _scan_chunk(client: redis.Redis, key: str, cursor: int) -> tuple[int, dict[bytes, bytes]]:
    """One HSCAN step of the snapshot hash: the next cursor (0 at the end) and rule payloads."""
    return cast(tuple[int, dict[bytes, bytes]], await client.hscan(key, cursor, count=LOAD_CHUNK))


async def apply_changes(
    client: redis.Redis,
    settings: RuleSnapshotSettings,
    changes: Sequence[tuple[int, events_pb2.RuleChanged]],
    first_offset: int,
    next_offset: int,
) -> int:
    """Apply the (offset, change) pairs read from `rule.changed` offsets [first_offset,
    next_offset) that the snapshot does not cover yet and that are newer than rules:version,
    atomically, and sign the result; returns how many applied. SnapshotIncomplete, with
    nothing applied, when the snapshot cannot take them or its metadata's signature does not
    hold (a version raised by someone else would make every change after it look old).
    Called under the writers' lock."""
    key = signing_key(settings)
    snapshot_keys = keys(settings)
    _, version_key, meta_key, _ = snapshot_keys
    meta, stored_version = await _read_meta(client, meta_key, version_key)
    checked: list[bytes | str | int] = [b""] * 4
    if meta and stored_version is not None and b"grants" in meta:  # else the script says what is missing
        try:
            checked = list(_checked_meta(key, meta, stored_version))
        except SnapshotCorrupt as error:
            raise SnapshotIncomplete(str(error)) from error
    arguments: list[bytes | str | int] = [*checked, first_offset, next_offset]
    for offset, change in changes:
        field = change_key(change)
        payload = (signed(key, field, change.rule.SerializeToString()) if change.op == UPSERT
                   else signed(key, field, change.grant.SerializeToString()) if change.op == GRANT else b"")
        arguments += [offset, change.seq, _OPS[change.op], field, payload]
    result = await client.eval(_APPLY_CHANGES, len(snapshot_keys), *snapshot_keys, *arguments)
    if isinstance(result, bytes):
        raise SnapshotIncomplete(result.decode())
    applied, version, covered, count, granted = (int(value) for value in result)
    await client.hset(meta_key, "signature", _meta_signature(key, version, covered, count, granted))
    return applied


async def write_full(client: redis.Redis, settings: RuleSnapshotSettings, snapshot: Snapshot[rule_pb2.Rule]) -> None:
    """Replace the whole snapshot: written beside it in chunks, then swapped in atomically,
    so readers never see half of it and Redis is never blocked for the whole write."""
    key = signing_key(settings)
    snapshot_key, version_key, meta_key, grants_key = keys(settings)
    staging_key, grants_staging_key = f"{snapshot_key}:staging", f"{grants_key}:staging"
    await client.delete(staging_key, grants_staging_key)
    for start in range(0, len(snapshot.rules), LOAD_CHUNK):
        chunk = snapshot.rules[start : start + LOAD_CHUNK]
        await client.hset(staging_key, mapping={
            rule.rule_id: signed(key, rule.rule_id, rule.SerializeToString()) for rule in chunk})
    for start in range(0, len(snapshot.grants), LOAD_CHUNK):
        grants = snapshot.grants[start : start + LOAD_CHUNK]
        await client.hset(grants_staging_key, mapping={
            grant_key(grant): signed(key, grant_key(grant), grant.SerializeToString()) for grant in grants})
    async with client.pipeline(transaction=True) as pipe:
        if snapshot.rules:
            pipe.rename(staging_key, snapshot_key)
        else:
            pipe.delete(snapshot_key)
        if snapshot.grants:
            pipe.rename(grants_staging_key, grants_key)
        else:
            pipe.delete(grants_key)
        pipe.set(version_key, snapshot.version)
        pipe.delete(meta_key)  # whatever it held, even a key of another type
        pipe.hset(meta_key, mapping={
            "next_offset": snapshot.next_offset, "count": len(snapshot.rules), "grants": len(snapshot.grants),
            "signature": _meta_signature(key, snapshot.version, snapshot.next_offset, len(snapshot.rules),
                                         len(snapshot.grants))})
        await pipe.execute()
