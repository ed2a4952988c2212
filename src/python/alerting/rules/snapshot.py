"""The Redis rule snapshot that evaluators warm from and the rule-updater keeps current.

Keys (under RedisSettings.redis_key_prefix):
  rules:snapshot       hash  chunk number -> its signature (32 bytes) and its rules, as
                             columns (encode_chunk); a rule lives in chunk chunk_of(rule_id)
  rules:version        the seq of the last `rule.changed` change applied (monotonic)
  rules:snapshot:meta  hash  format (FORMAT: how chunks are written),
                             next_offset (the first `rule.changed` offset NOT covered),
                             count (rules in all chunks), chunks (entries in rules:snapshot),
                             grants (entries in rules:grants), both to detect damage,
                             signature (of the format, version, next_offset and counts)
  rules:grants         hash  changelog.grant_key -> its signature and serialized alerting.v1.SourceGrant
Chunks, not an entry per rule: a warm start turns a chunk's columns into the index without
a protobuf message per rule. A snapshot of another format (one written by an older
release: an entry per rule, no `format`) is never read as this one: readers find it
corrupt, the writer incomplete, and both rebuild it from Postgres.

A batch of changes is applied by the writer to the chunks it touches, under the writers'
lock, and written by one Lua script, so the four keys always agree. The script refuses the
batch when the metadata changed since the writer checked it; the writer refuses it when
the snapshot lost its metadata, or does not reach the batch's first offset
(SnapshotIncomplete), and the script when it lost chunks or grants: the caller then
rebuilds it from Postgres (alerting.rules.rebuild), rather than patch it into a snapshot
that only looks complete.

Signatures are HMAC-SHA256 with RuleSnapshotSettings.rule_snapshot_key, which the rule-updater (the
one writer) and the evaluator (which checks) hold: whoever else can write Redis cannot
make a rule, a grant, a version or an offset that a reader accepts (SnapshotCorrupt), so
the evaluator never matches alerts against rules or grants that Postgres does not hold. An
entry's signature covers its field (chunk number, grant key) and payload; the metadata's
covers the format, the version, the offset and the counts, so an entry cannot be added,
dropped or moved.
"""

from __future__ import annotations

import hmac
import json
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Generic, NamedTuple, TypeVar, cast

import redis.asyncio as redis
from google.protobuf.message import DecodeError
from redis.asyncio.lock import Lock
from redis.exceptions import ResponseError

from alerting.common.settings import RuleSnapshotSettings, secret_value
from alerting.rules.changelog import GRANT, REVOKE, UPSERT, grant_key
from alerting.v1 import events_pb2, rule_pb2

R = TypeVar("R")

SNAPSHOT_KEY = "rules:snapshot"
VERSION_KEY = "rules:version"
META_KEY = "rules:snapshot:meta"
GRANTS_KEY = "rules:grants"
LOCK_KEY = "rules:snapshot:lock"
FORMAT = b"columns-1"
# A million rules make chunks of about a thousand: what a change rewrites.
CHUNKS = 1024
SCAN_CHUNKS = 64  # per HSCAN step: about 3 MB at a million rules
LOAD_CHUNK = 20_000  # grants per HSET of a full write
SIGNATURE_BYTES = 32  # HMAC-SHA256

# ARGV: the version, next_offset, count, chunks and grants the writer read and checked the
# signature of, the batch's next_offset, the version and rule count after it, then
# (C|G, field, signed payload, or "" to delete) per chunk or grant written. The metadata's
# signature is removed: the caller signs what it returns, {version, next_offset, count,
# chunks, grants}; a reader finding none rebuilds. Returns why it refused the batch instead.
_APPLY_CHANGES = """
local covered, count, chunks, granted, format = unpack(
  redis.call('HMGET', KEYS[3], 'next_offset', 'count', 'chunks', 'grants', 'format'))
local version = redis.call('GET', KEYS[2])
if version ~= ARGV[1] or covered ~= ARGV[2] or count ~= ARGV[3] or chunks ~= ARGV[4] or granted ~= ARGV[5]
    or format ~= ARGV[6] then
  return 'its metadata changed since it was checked'
end
local held = redis.call('HLEN', KEYS[1])
if held ~= tonumber(chunks) then
  return 'it holds ' .. held .. ' rule chunks, its metadata says ' .. chunks
end
local grants_held = redis.call('HLEN', KEYS[4])
if grants_held ~= tonumber(granted) then
  return 'it holds ' .. grants_held .. ' grants, its metadata says ' .. granted
end
for i = 10, #ARGV, 3 do
  local key = ARGV[i] == 'C' and KEYS[1] or KEYS[4]
  if ARGV[i + 2] == '' then
    redis.call('HDEL', key, ARGV[i + 1])
  else
    redis.call('HSET', key, ARGV[i + 1], ARGV[i + 2])
  end
end
redis.call('SET', KEYS[2], ARGV[8])
local next_offset = math.max(tonumber(ARGV[7]), tonumber(covered))
chunks, granted = redis.call('HLEN', KEYS[1]), redis.call('HLEN', KEYS[4])
redis.call('HSET', KEYS[3], 'next_offset', next_offset, 'count', ARGV[9], 'chunks', chunks, 'grants', granted)
redis.call('HDEL', KEYS[3], 'signature')
return {tonumber(ARGV[8]), next_offset, tonumber(ARGV[9]), chunks, granted}
"""


class SnapshotCorrupt(Exception):
    pass


class SnapshotIncomplete(Exception):
    """The snapshot cannot take a batch and stay complete: its metadata is gone (Redis lost
    it, or it was written before grants existed, or in another format), it does not reach
    the batch's first offset (Redis went back to an older state), or it lost chunks or
    grants."""


@dataclass
class Snapshot(Generic[R]):
    rules: list[R]  # alerting.v1.Rule messages, or what a reader converted them to
    version: int
    next_offset: int
    grants: list[rule_pb2.SourceGrant] = field(default_factory=list)


class RuleColumns(NamedTuple):
    """One chunk's rules as the evaluator's index takes them: a list per field. Strings and
    recipients repeated in a chunk are one shared object (the index interns them across chunks)."""

    rule_ids: list[str]
    client_ids: list[str]
    severities: list[str]
    sources: list[str]
    names: list[str]
    # Each distinct (emails, receiver_ids) of the chunk once, and which one each rule has.
    recipients: list[tuple[tuple[str, ...], tuple[str, ...]]]
    recipients_of: list[int]
    enabled: list[bool]
    versions: list[int]


@dataclass
class StoredSnapshot:
    """The snapshot as read from Redis, its metadata checked, its entries not yet."""

    version: int
    next_offset: int
    count: int
    chunks: dict[bytes, bytes]
    grants: dict[bytes, bytes]
    granted: int


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
    """A snapshot entry: the signature of its hash field (chunk, grant key) and payload, then the payload."""
    return _entry_signature(key, field.encode(), payload) + payload


def _entry_signature(key: bytes, field: bytes, payload: bytes) -> bytes:
    return hmac.digest(key, b"entry\0" + field + b"\0" + payload, "sha256")


def _meta_signature(key: bytes, version: int, next_offset: int, count: int, chunks: int, granted: int) -> bytes:
    return hmac.digest(key, b"meta\0%s\0%d\0%d\0%d\0%d\0%d" % (FORMAT, version, next_offset, count, chunks, granted),
                       "sha256")


def chunk_of(rule_id: str) -> str:
    """The chunk (its field in rules:snapshot) that holds the rule."""
    return str(zlib.crc32(rule_id.encode()) % CHUNKS)


# ---------------------------------------------------------------- chunks
# A rule as a chunk holds it: rule_id, client_id, severity, source, name, emails,
# receiver_ids, enabled, version, created_at and updated_at (seconds, nanos), updated_by.
Row = tuple[str, str, str, str, str, tuple[str, ...], tuple[str, ...], bool, int, int, int, int, int, str]


def row_of(rule: rule_pb2.Rule) -> Row:
    return (rule.rule_id, rule.client_id, rule.severity, rule.source, rule.name, tuple(rule.emails),
            tuple(rule.receiver_ids), rule.enabled, rule.version, rule.created_at.seconds, rule.created_at.nanos,
            rule.updated_at.seconds, rule.updated_at.nanos, rule.updated_by)


def message_of(row: Row) -> rule_pb2.Rule:
    (rule_id, client_id, severity, source, name, emails, receiver_ids, enabled, version, created, created_nanos,
     updated, updated_nanos, updated_by) = row
    rule = rule_pb2.Rule(rule_id=rule_id, client_id=client_id, severity=severity, source=source, name=name,
                         emails=emails, receiver_ids=receiver_ids, enabled=enabled, version=version,
                         updated_by=updated_by)
    if created or created_nanos:  # an unset timestamp stays unset
        rule.created_at.FromNanoseconds(created * 1_000_000_000 + created_nanos)
    if updated or updated_nanos:
        rule.updated_at.FromNanoseconds(updated * 1_000_000_000 + updated_nanos)
    return rule


def encode_chunk(rows: Sequence[Row]) -> bytes:
    """A chunk's rules (at least one) as JSON columns: first what the index needs (each
    distinct string and recipient list once, and per rule which), then, after a newline,
    the rest. Column by column, by zip and map: a batch rewrites whole chunks."""
    (rule_ids, client_ids, severities, sources, names, emails, receiver_ids, enabled, versions,
     *details) = map(list, zip(*rows, strict=True))
    strings = list(dict.fromkeys(chain(client_ids, severities, sources, names)))
    string_at = {text: position for position, text in enumerate(strings)}.__getitem__
    pairs = list(zip(emails, receiver_ids, strict=True))
    recipients = list(dict.fromkeys(pairs))
    recipients_at = {pair: position for position, pair in enumerate(recipients)}.__getitem__
    head = [rule_ids, strings, *(list(map(string_at, column)) for column in (client_ids, severities, sources, names)),
            recipients, list(map(recipients_at, pairs)), enabled, versions]
    return _json(head) + b"\n" + _json(details)


def _json(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def decode_columns(payload: bytes) -> RuleColumns:
    """What the index needs of a chunk; the rest of it is not even parsed."""
    try:
        (rule_ids, strings, clients, severities, sources, names, recipients, recipients_of, enabled,
         versions) = json.loads(payload[:payload.index(b"\n")])
        shared = strings.__getitem__
        columns = RuleColumns(rule_ids, list(map(shared, clients)), list(map(shared, severities)),
                              list(map(shared, sources)), list(map(shared, names)),
                              [(tuple(emails), tuple(receivers)) for emails, receivers in recipients], recipients_of,
                              enabled, versions)
        if len(recipients_of) and not 0 <= min(recipients_of) <= max(recipients_of) < len(recipients):
            raise IndexError("recipients out of range")
    except (ValueError, TypeError, IndexError, UnicodeDecodeError) as error:
        raise SnapshotCorrupt(f"undecodable rule chunk in snapshot: {error!r}") from error
    if any(len(column) != len(rule_ids) for column in columns if column is not columns.recipients):
        raise SnapshotCorrupt("a rule chunk of the snapshot has columns of different lengths")
    return columns


def decode_rows(payload: bytes) -> list[Row]:
    """A chunk's rules, whole."""
    columns = decode_columns(payload)
    try:
        details = json.loads(payload[payload.index(b"\n") + 1:])
        recipients = zip(*map(columns.recipients.__getitem__, columns.recipients_of), strict=True)
        return list(zip(*columns[:5], *recipients, *columns[7:], *details, strict=True))
    except (ValueError, TypeError) as error:
        raise SnapshotCorrupt(f"undecodable rule chunk in snapshot: {error!r}") from error


# ---------------------------------------------------------------- reading
async def _read_meta(client: redis.Redis, meta_key: str, version_key: str) -> tuple[dict[bytes, bytes], bytes | None]:
    """The metadata hash and the version, as stored (the client decodes no responses)."""
    meta = cast(dict[bytes, bytes], await client.hgetall(meta_key))
    return meta, cast(bytes | None, await client.get(version_key))


def _checked_meta(key: bytes, meta: dict[bytes, bytes], stored_version: bytes | None) -> tuple[int, int, int, int, int]:
    """The version, next_offset, count, chunks and grants, if their signature holds; SnapshotCorrupt if not."""
    if meta and b"grants" not in meta:
        raise SnapshotCorrupt("no grant count in the snapshot metadata: written before source grants existed")
    if meta and meta.get(b"format") != FORMAT:
        raise SnapshotCorrupt(f"the snapshot is in format {meta.get(b'format', b'(none: an entry per rule)')!r}, "
                              f"not {FORMAT!r}: written by another release")
    try:
        next_offset, count, chunks, granted = (int(meta[name]) for name in (b"next_offset", b"count", b"chunks",
                                                                            b"grants"))
        version = int(stored_version)  # type: ignore[arg-type]  # None raises TypeError: corrupt
    except (KeyError, TypeError, ValueError) as error:
        raise SnapshotCorrupt(f"bad snapshot metadata: {error!r}") from error
    if not hmac.compare_digest(meta.get(b"signature", b""),
                               _meta_signature(key, version, next_offset, count, chunks, granted)):
        raise SnapshotCorrupt(f"the snapshot's version {version}, offset {next_offset} and counts {count}, {chunks}, "
                              f"{granted} are not signed with the rule snapshot key")
    return version, next_offset, count, chunks, granted


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
    """As load, each rule passed through `convert` as soon as its chunk is parsed."""
    stored = await read_stored(client, settings)
    if stored is None:
        return None
    key = signing_key(settings)
    rules = [convert(message_of(row)) for field, entry in stored.chunks.items()
             for row in decode_rows(_checked_payload(key, field, entry))]
    _check_count(len(rules), stored.count)
    return Snapshot(rules, stored.version, stored.next_offset, decode_grants(key, stored))


def load_columns(settings: RuleSnapshotSettings, stored: StoredSnapshot) -> Snapshot[RuleColumns]:
    """The snapshot read, as columns per chunk (what the evaluator's index is built from);
    SnapshotCorrupt when it cannot be trusted."""
    key = signing_key(settings)
    chunks = [decode_columns(_checked_payload(key, field, entry)) for field, entry in stored.chunks.items()]
    _check_count(sum(len(chunk.rule_ids) for chunk in chunks), stored.count)
    return Snapshot(chunks, stored.version, stored.next_offset, decode_grants(key, stored))


def _check_count(held: int, count: int) -> None:
    if held != count:
        raise SnapshotCorrupt(f"snapshot holds {held} rules, its metadata says {count}")


async def read_stored(client: redis.Redis, settings: RuleSnapshotSettings) -> StoredSnapshot | None:
    """The snapshot as stored, its metadata checked; None when there is none. Read under the
    writers' lock: a scan that overlapped a rule-updater batch could see a chunk twice or
    miss its count, and trigger a needless rebuild."""
    try:
        async with lock(client, settings):
            return await _read_stored(client, settings)
    except ResponseError as error:
        # A snapshot key of another type (WRONGTYPE). Outages raise ConnectionError instead.
        raise SnapshotCorrupt(f"unreadable snapshot: {error}") from error


async def _read_stored(client: redis.Redis, settings: RuleSnapshotSettings) -> StoredSnapshot | None:
    key = signing_key(settings)
    snapshot_key, version_key, meta_key, grants_key = keys(settings)
    meta, stored_version = await _read_meta(client, meta_key, version_key)
    if not meta and stored_version is None:
        return None
    version, next_offset, count, chunk_count, granted = _checked_meta(key, meta, stored_version)
    chunks: dict[bytes, bytes] = {}
    cursor = 0
    while True:
        cursor, scanned = cast(tuple[int, dict[bytes, bytes]],
                               await client.hscan(snapshot_key, cursor, count=SCAN_CHUNKS))
        chunks.update(scanned)
        if not cursor:
            break
    if len(chunks) != chunk_count:
        raise SnapshotCorrupt(f"snapshot holds {len(chunks)} rule chunks, its metadata says {chunk_count}")
    grants = cast(dict[bytes, bytes], await client.hgetall(grants_key))  # a few per client: read whole
    return StoredSnapshot(version, next_offset, count, chunks, grants, granted)


def decode_grants(key: bytes, stored: StoredSnapshot) -> list[rule_pb2.SourceGrant]:
    """The grants, `granted` of them as the metadata says."""
    try:
        grants = [rule_pb2.SourceGrant.FromString(_checked_payload(key, field, entry))
                  for field, entry in stored.grants.items()]
    except DecodeError as error:
        raise SnapshotCorrupt(f"undecodable grant in snapshot: {error}") from error
    if len(grants) != stored.granted:
        raise SnapshotCorrupt(f"snapshot holds {len(grants)} grants, its metadata says {stored.granted}")
    return grants


# ---------------------------------------------------------------- writing
async def apply_changes(
    client: redis.Redis,
    settings: RuleSnapshotSettings,
    changes: Sequence[tuple[int, events_pb2.RuleChanged]],
    first_offset: int,
    next_offset: int,
) -> int:
    """Apply the (offset, change) pairs read from `rule.changed` offsets [first_offset,
    next_offset) that the snapshot does not cover yet and that are newer than rules:version,
    atomically, and sign the result; returns how many applied. A change applies as
    changelog.applies says, and only once: one at an offset the snapshot already covers
    (read again after a crash before the commit) is skipped. SnapshotIncomplete, with
    nothing applied, when the snapshot cannot take them or its metadata's signature does not
    hold (a version raised by someone else would make every change after it look old).
    Called under the writers' lock."""
    key = signing_key(settings)
    snapshot_keys = keys(settings)
    snapshot_key, version_key, meta_key, _ = snapshot_keys
    meta, stored_version = await _read_meta(client, meta_key, version_key)
    if stored_version is None or not {b"next_offset", b"count"} <= meta.keys():
        raise SnapshotIncomplete("no snapshot metadata")
    if b"grants" not in meta:
        raise SnapshotIncomplete("no grant count: written before source grants existed")
    try:
        version, covered, count, chunk_count, granted = _checked_meta(key, meta, stored_version)
    except SnapshotCorrupt as error:
        raise SnapshotIncomplete(str(error)) from error
    if first_offset > covered:
        raise SnapshotIncomplete(f"it covers rule.changed offsets before {covered}, the batch starts at {first_offset}")
    applying = []
    for offset, change in changes:
        if offset >= covered and change.seq > version:
            applying.append(change)
            version = change.seq
    rule_changes = [change for change in applying if change.op not in (GRANT, REVOKE)]
    chunks = await _read_chunks(client, key, snapshot_key, {chunk_of(change.rule_id) for change in rule_changes})
    held = sum(len(rules) for rules in chunks.values())
    writes: list[bytes | str] = []
    for change in applying:
        if change.op in (GRANT, REVOKE):
            field = grant_key(change.grant)
            writes += ["G", field, signed(key, field, change.grant.SerializeToString()) if change.op == GRANT else b""]
        elif change.op == UPSERT:
            chunks[chunk_of(change.rule_id)][change.rule_id] = row_of(change.rule)
        else:
            chunks[chunk_of(change.rule_id)].pop(change.rule_id, None)
    count += sum(len(rules) for rules in chunks.values()) - held
    for field, rules in chunks.items():
        writes += ["C", field, signed(key, field, encode_chunk(list(rules.values()))) if rules else b""]
    checked = [stored_version, *(meta[name] for name in (b"next_offset", b"count", b"chunks", b"grants")), FORMAT]
    result = await client.eval(_APPLY_CHANGES, len(snapshot_keys), *snapshot_keys, *checked, next_offset, version,
                               count, *writes)
    if isinstance(result, bytes):
        raise SnapshotIncomplete(result.decode())
    version, covered, count, chunk_count, granted = (int(value) for value in result)
    await client.hset(meta_key, "signature", _meta_signature(key, version, covered, count, chunk_count, granted))
    return len(applying)


async def _read_chunks(client: redis.Redis, key: bytes, snapshot_key: str,
                       fields: set[str]) -> dict[str, dict[str, Row]]:
    """The rules of these chunks by rule_id (none for a chunk not written yet);
    SnapshotIncomplete when one cannot be trusted."""
    if not fields:
        return {}
    names = sorted(fields)
    entries = cast(list[bytes | None], await client.hmget(snapshot_key, names))
    try:
        return {name: {} if entry is None else
                {row[0]: row for row in decode_rows(_checked_payload(key, name.encode(), entry))}
                for name, entry in zip(names, entries, strict=True)}
    except SnapshotCorrupt as error:
        raise SnapshotIncomplete(str(error)) from error


async def write_full(client: redis.Redis, settings: RuleSnapshotSettings, snapshot: Snapshot[rule_pb2.Rule]) -> None:
    """Replace the whole snapshot: written beside it in parts, then swapped in atomically,
    so readers never see half of it and Redis is never blocked for the whole write."""
    key = signing_key(settings)
    snapshot_key, version_key, meta_key, grants_key = keys(settings)
    staging_key, grants_staging_key = f"{snapshot_key}:staging", f"{grants_key}:staging"
    await client.delete(staging_key, grants_staging_key)
    chunks: dict[str, list[Row]] = {}
    for rule in snapshot.rules:
        chunks.setdefault(chunk_of(rule.rule_id), []).append(row_of(rule))
    fields = list(chunks)
    for start in range(0, len(fields), SCAN_CHUNKS):
        await client.hset(staging_key, mapping={
            field: signed(key, field, encode_chunk(chunks[field])) for field in fields[start : start + SCAN_CHUNKS]})
    for start in range(0, len(snapshot.grants), LOAD_CHUNK):
        grants = snapshot.grants[start : start + LOAD_CHUNK]
        await client.hset(grants_staging_key, mapping={
            grant_key(grant): signed(key, grant_key(grant), grant.SerializeToString()) for grant in grants})
    async with client.pipeline(transaction=True) as pipe:
        if chunks:
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
            "format": FORMAT, "next_offset": snapshot.next_offset, "count": len(snapshot.rules),
            "chunks": len(chunks), "grants": len(snapshot.grants),
            "signature": _meta_signature(key, snapshot.version, snapshot.next_offset, len(snapshot.rules),
                                         len(chunks), len(snapshot.grants))})
        await pipe.execute()
