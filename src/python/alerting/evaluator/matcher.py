"""The in-memory rule index: match cost depends on the number of matches, not of rules.

A rule's pattern is its (severity, source, name), each concrete or "*": rules are kept
in buckets by pattern, and an alert probes the 7 patterns that match it (all-wildcard
rules are invalid), one dict lookup each.

Alerts have owners: a rule matches only alerts from a source granted to its client, exactly
or by a prefix. An alert first looks up the clients granted its source (one dict lookup, plus
one per distinct length of the prefixes granted); a source granted to no one matches nothing
and probes nothing, and a candidate rule of a client not granted the source is passed over.

A bucket holds, per client, the ClientMatch its rules give (their ids sorted, their
endpoints sorted and once), kept current as rules change: an alert whose client matches
through one bucket gets that ClientMatch as it is, and only a client matching through
several buckets has theirs merged. Most of a client's rules name a source and no name
(severity given or not), and an alert of that source matches both kinds: per severity and
source, the index keeps the two buckets merged (a roll-up), made by the first alert that
needs it and dropped when either bucket changes, so the merge is not made per alert.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence, Set, ValuesView
from itertools import compress, repeat
from typing import NamedTuple, TypeVar

from alerting.common.vocabulary import SEVERITIES, WILDCARD

NO_CLIENTS: frozenset[str] = frozenset()
# The severities an alert can have (alerts are checked): roll-ups are made for these
# alone, all of which a change to a (*, source, *) bucket drops.
ROLLED_UP = frozenset(SEVERITIES)


# NamedTuples, not dataclasses: a million of them are built at every warm start.
class IndexedRule(NamedTuple):
    rule_id: str
    client_id: str
    severity: str
    source: str
    name: str
    emails: tuple[str, ...]
    enabled: bool
    version: int


# IndexedRule's fields in order, as a plain tuple: what RuleIndex.load takes.
RuleFields = tuple[str, str, str, str, str, tuple[str, ...], bool, int]


class Grant(NamedTuple):
    """A source, or every source that starts with it (`prefix`), granted to a client."""

    client_id: str
    source: str
    prefix: bool


class ClientMatch(NamedTuple):
    client_id: str
    rule_ids: tuple[str, ...]
    emails: tuple[str, ...]


# A bucket: the ClientMatch of its rules when they are all of one client (most buckets
# that name a source hold its owner's rules alone), else per client the ClientMatch of its.
Bucket = ClientMatch | dict[str, ClientMatch]
Pattern = tuple[str, str, str]
K = TypeVar("K")


class RuleIndex:
    def __init__(self) -> None:
        self._rules: dict[str, IndexedRule] = {}
        self._buckets: dict[Pattern, Bucket] = {}
        # By (severity, source): the merge of the buckets (severity, source, *) and (*, source, *),
        # when both exist and an alert needed it.
        self._rollups: dict[tuple[str, str], Bucket] = {}
        # Each email list seen, as given and normalized, to its one shared normalized tuple.
        self._emails: dict[tuple[str, ...], tuple[str, ...]] = {}
        # The clients granted each exact source, and each prefix.
        self._exact_grants: dict[str, set[str]] = {}
        self._prefix_grants: dict[str, set[str]] = {}
        # How many prefixes granted have each length, and those lengths: what an alert's
        # source is cut to.
        self._prefixes_of_length: dict[int, int] = {}
        self._prefix_lengths: tuple[int, ...] = ()

    def __len__(self) -> int:
        return len(self._rules)

    def get(self, rule_id: str) -> IndexedRule | None:
        return self._rules.get(rule_id)

    def rules(self) -> ValuesView[IndexedRule]:
        return self._rules.values()

    def load(self, rows: Iterable[RuleFields]) -> None:
        """Add rules the index does not hold, without version checks: a warm start's from
        Postgres. A row holds IndexedRule's fields in order (a plain tuple
        will do)."""
        columns = [list(column) for column in zip(*rows, strict=True)]
        if columns:
            self.load_columns(*columns)

    def load_columns(self, rule_ids: Sequence[str], client_ids: Sequence[str], severities: Sequence[str],
                     sources: Sequence[str], names: Sequence[str], emails: Sequence[tuple[str, ...]],
                     enabled: Sequence[bool], versions: Sequence[int]) -> None:
        """As load, IndexedRule's fields given as a sequence each: a warm start's bulk path.

        Each rule shares the strings many rules repeat (client ids, patterns, email lists),
        its emails sorted and unique as a match lists them. What runs once per rule is left
        to map and zip (a warm start runs it a million times): the rules, and a match per
        rule, are made by them; a rule alone of its client in its bucket sets its match as
        the bucket's, and the matches of several rules are remade once, at the end."""
        intern, new, by_id, buckets = sys.intern, tuple.__new__, self._rules, self._buckets
        client_ids, severities, sources, names = (list(map(intern, column))
                                                  for column in (client_ids, severities, sources, names))
        shared = [held if held is not None else self._shared_emails(listed)
                  for held, listed in zip(map(self._emails.get, emails), emails, strict=True)]
        by_id.update(zip(rule_ids, map(new, repeat(IndexedRule), zip(
            rule_ids, client_ids, severities, sources, names, shared, enabled, versions, strict=True)), strict=True))
        matches = map(new, repeat(ClientMatch), zip(client_ids, zip(rule_ids, strict=True), shared, strict=True))
        patterns = zip(severities, sources, names, strict=True)
        several: dict[tuple[Pattern, str], None] = {}  # each bucket and client once
        for pattern, match in compress(zip(patterns, matches, strict=True), enabled):
            if buckets.setdefault(pattern, match) is not match:
                held = self._held(pattern, match.client_id)
                if held is None:
                    store_in(buckets, pattern, match)
                else:  # its rule ids for now: remade below
                    store_in(buckets, pattern, new(ClientMatch, (match.client_id, held.rule_ids + match.rule_ids,
                                                                 match.emails)))
                    several[pattern, match.client_id] = None
        for pattern, client_id in several:
            held = self._held(pattern, client_id)
            assert held is not None
            store_in(buckets, pattern, self._client_match(client_id, [by_id[rule_id] for rule_id in held.rule_ids]))
        self._rollups.clear()  # made again as alerts need them

    def _shared_emails(self, emails: tuple[str, ...]) -> tuple[str, ...]:
        """The one shared tuple of these emails sorted and unique, remembered as given too."""
        normalized = tuple(sorted(set(emails)))
        shared = self._emails[emails] = self._emails.setdefault(normalized, normalized)
        return shared

    def _held(self, pattern: Pattern, client_id: str) -> ClientMatch | None:
        return held_in(self._buckets, pattern, client_id)

    def _store(self, pattern: Pattern, match: ClientMatch) -> None:
        store_in(self._buckets, pattern, match)
        self._forget_roll_ups(pattern)

    def _drop(self, pattern: Pattern, client_id: str) -> None:
        drop_from(self._buckets, pattern, client_id)
        self._forget_roll_ups(pattern)

    def _forget_roll_ups(self, pattern: Pattern) -> None:
        """Drop the roll-ups the bucket of `pattern` is part of, if any."""
        severity, source, name = pattern
        if name == WILDCARD and source != WILDCARD:
            for rolled_severity in (SEVERITIES if severity == WILDCARD else (severity,)):
                self._rollups.pop((rolled_severity, source), None)

    def _roll_up(self, severity: str, source: str, every: Bucket, own: Bucket) -> Bucket:
        """The roll-up of (severity, source), made of its two buckets, and kept."""
        rolled = dict(every) if isinstance(every, dict) else {every.client_id: every}
        for matched in (own.values() if isinstance(own, dict) else (own,)):
            held = rolled.get(matched.client_id)
            rolled[matched.client_id] = matched if held is None else merged(held, matched)
        bucket: Bucket = rolled
        if len(rolled) == 1:
            [bucket] = rolled.values()
        self._rollups[severity, source] = bucket
        return bucket

    def _client_match(self, client_id: str, rules: list[IndexedRule]) -> ClientMatch:
        """What `rules`, the client's rules in one bucket, match: their ids and endpoints."""
        first = rules[0].emails
        if len(rules) == 1:
            return tuple.__new__(ClientMatch, (client_id, (rules[0].rule_id,), first))
        # A client's rules mostly share its one list of emails.
        if all(rule.emails is first for rule in rules):
            emails = first
        else:
            merged_emails = tuple(sorted({email for rule in rules for email in rule.emails}))
            emails = self._emails.setdefault(merged_emails, merged_emails)
        return tuple.__new__(ClientMatch, (client_id, tuple(sorted(rule.rule_id for rule in rules)), emails))

    def upsert(self, rule: IndexedRule) -> None:
        """Add or replace a rule. Which changes apply, and in what order, the caller decides
        (rules.changelog.applies), as for the snapshot."""
        current = self._rules.get(rule.rule_id)
        if current is not None:
            self._unlink(current)
        emails = self._emails.get(rule.emails) or self._shared_emails(rule.emails)
        intern = sys.intern
        rule = tuple.__new__(IndexedRule, (rule.rule_id, intern(rule.client_id), intern(rule.severity),
                                           intern(rule.source), intern(rule.name), emails, rule.enabled, rule.version))
        self._rules[rule.rule_id] = rule
        if rule.enabled:
            pattern = (rule.severity, rule.source, rule.name)
            held = self._held(pattern, rule.client_id)
            self._store(pattern, self._client_match(rule.client_id, [rule] if held is None else [
                rule, *(self._rules[rule_id] for rule_id in held.rule_ids)]))

    def delete(self, rule_id: str) -> bool:
        current = self._rules.get(rule_id)
        if current is None:
            return False
        self._unlink(current)
        del self._rules[rule_id]
        return True

    def grants(self) -> set[Grant]:
        return {Grant(client_id, source, prefix)
                for prefix, granted in ((False, self._exact_grants), (True, self._prefix_grants))
                for source, clients in granted.items() for client_id in clients}

    def load_grants(self, grants: Iterable[Grant]) -> None:
        for grant in grants:
            self.grant(grant)

    def grant(self, grant: Grant) -> None:
        """Give the client the source's alerts; giving it again changes nothing."""
        granted = self._prefix_grants if grant.prefix else self._exact_grants
        clients = granted.get(grant.source)
        if clients is None:
            clients = granted[grant.source] = set()
            if grant.prefix:
                self._count_prefix(len(grant.source), 1)
        clients.add(sys.intern(grant.client_id))

    def revoke(self, grant: Grant) -> bool:
        granted = self._prefix_grants if grant.prefix else self._exact_grants
        clients = granted.get(grant.source)
        if clients is None or grant.client_id not in clients:
            return False
        clients.discard(grant.client_id)
        if not clients:
            del granted[grant.source]
            if grant.prefix:
                self._count_prefix(len(grant.source), -1)
        return True

    def _count_prefix(self, length: int, change: int) -> None:
        count = self._prefixes_of_length.get(length, 0) + change
        if count:
            self._prefixes_of_length[length] = count
        else:
            del self._prefixes_of_length[length]
        if count == 0 or (count == 1 and change == 1):  # a length went or appeared
            self._prefix_lengths = tuple(sorted(self._prefixes_of_length))

    def owners(self, source: str) -> Set[str]:
        """The clients granted the alerts of `source`, exactly or by a prefix of it."""
        owners: Set[str] = self._exact_grants.get(source, NO_CLIENTS)
        if self._prefix_lengths:
            by_prefix = [clients for length in self._prefix_lengths if length <= len(source)
                         if (clients := self._prefix_grants.get(source[:length]))]
            if by_prefix:
                owners = set(owners).union(*by_prefix)
        return owners

    def match(self, severity: str, source: str, name: str) -> list[ClientMatch]:
        """Every client granted the source with a matching enabled rule, each with all its
        matching rules."""
        # The exact grants inline: most deployments grant no prefix, and a call costs here.
        owners = self.owners(source) if self._prefix_lengths else self._exact_grants.get(source, NO_CLIENTS)
        if not owners:
            return []
        buckets = self._buckets
        rolled = self._rollups.get((severity, source))
        every = own = None
        if rolled is None:
            every, own = buckets.get((WILDCARD, source, WILDCARD)), buckets.get((severity, source, WILDCARD))
            if every is not None and own is not None and severity in ROLLED_UP:
                rolled, every, own = self._roll_up(severity, source, every, own), None, None
        # One probe per pattern that matches, spelled out: this is the evaluator's hot path.
        candidates = (
            buckets.get((severity, WILDCARD, WILDCARD)),
            rolled,
            every,
            own,
            buckets.get((WILDCARD, WILDCARD, name)),
            buckets.get((severity, WILDCARD, name)),
            buckets.get((WILDCARD, source, name)),
            buckets.get((severity, source, name)),
        )
        found: list[ClientMatch] = []
        for bucket in candidates:
            if bucket is None:
                continue
            if isinstance(bucket, dict):
                # Whichever is smaller walked: a bucket of a severity alone may hold every client.
                for client_id in (bucket if len(bucket) <= len(owners) else owners):
                    if client_id in owners and (matched := bucket.get(client_id)) is not None:
                        found.append(matched)
            elif bucket.client_id in owners:
                found.append(bucket)
        if len(found) < 2:
            return found
        by_client: dict[str, ClientMatch] = {}
        for matched in found:
            held = by_client.get(matched.client_id)
            by_client[matched.client_id] = matched if held is None else merged(held, matched)
        return list(by_client.values())

    def _unlink(self, rule: IndexedRule) -> None:
        if not rule.enabled:
            return
        pattern = (rule.severity, rule.source, rule.name)
        held = self._held(pattern, rule.client_id)
        assert held is not None
        if len(held.rule_ids) == 1:
            self._drop(pattern, rule.client_id)
        else:
            self._store(pattern, self._client_match(
                rule.client_id, [self._rules[rule_id] for rule_id in held.rule_ids if rule_id != rule.rule_id]))


def merged(first: ClientMatch, second: ClientMatch) -> ClientMatch:
    """One client's matches from two buckets: their rules differ, their endpoints may not."""
    emails = first.emails if first.emails is second.emails else tuple(sorted({*first.emails, *second.emails}))
    return tuple.__new__(ClientMatch, (first.client_id, tuple(sorted(first.rule_ids + second.rule_ids)), emails))


def held_in(table: dict[K, Bucket], key: K, client_id: str) -> ClientMatch | None:
    """The client's match in the bucket at `key`, if any."""
    bucket = table.get(key)
    if isinstance(bucket, dict):
        return bucket.get(client_id)
    return bucket if bucket is not None and bucket.client_id == client_id else None


def store_in(table: dict[K, Bucket], key: K, match: ClientMatch) -> None:
    """Set the client's match in the bucket at `key`."""
    bucket = table.get(key)
    if isinstance(bucket, dict):
        bucket[match.client_id] = match
    elif bucket is None or bucket.client_id == match.client_id:
        table[key] = match
    else:
        table[key] = {bucket.client_id: bucket, match.client_id: match}


def drop_from(table: dict[K, Bucket], key: K, client_id: str) -> None:
    """Remove the client's match from the bucket at `key`."""
    bucket = table[key]
    if not isinstance(bucket, dict):
        del table[key]
        return
    del bucket[client_id]
    if len(bucket) == 1:
        [table[key]] = bucket.values()
