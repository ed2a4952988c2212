"""The in-memory rule index: match cost depends on the number of matches, not of rules.

Each rule has a shape, the set of its fields that are concrete (not "*"): 7 shapes, as
all-wildcard rules are invalid. Per shape, a dict maps the tuple of concrete values to
the rules with exactly those values. An alert probes each non-empty shape once.

Alerts have owners: a rule matches only alerts from a source granted to its client, exactly
or by a prefix. An alert first looks up the clients granted its source (one dict lookup, plus
one per distinct length of the prefixes granted); a source granted to no one matches nothing
and probes nothing, and a candidate rule of a client not granted the source is passed over.

A bucket holds, per client, the ClientMatch its rules give (their ids sorted, their
endpoints sorted and once), kept current as rules change: an alert whose client matches
through one bucket gets that ClientMatch as it is, and only a client matching through
several buckets has theirs merged.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Set, ValuesView
from typing import NamedTuple

from alerting.common.vocabulary import WILDCARD

FIELDS = ("severity", "source", "name")
# Shapes as bit masks over FIELDS: bit i set = field i is concrete.
SHAPES = tuple(range(1, 8))
NO_CLIENTS: frozenset[str] = frozenset()


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


def shape_of(rule: IndexedRule) -> int:
    return (rule.severity != WILDCARD) | (rule.source != WILDCARD) << 1 | (rule.name != WILDCARD) << 2


# Per shape, the bucket key from (severity, source, name): the concrete values only.
KEY_OF = {
    1: lambda severity, source, name: (severity,),
    2: lambda severity, source, name: (source,),
    3: lambda severity, source, name: (severity, source),
    4: lambda severity, source, name: (name,),
    5: lambda severity, source, name: (severity, name),
    6: lambda severity, source, name: (source, name),
    7: lambda severity, source, name: (severity, source, name),
}


# A bucket: per client, the ClientMatch of its rules in the bucket.
Bucket = dict[str, ClientMatch]


class RuleIndex:
    def __init__(self) -> None:
        self._rules: dict[str, IndexedRule] = {}
        self._buckets: dict[int, dict[tuple[str, ...], Bucket]] = {shape: {} for shape in SHAPES}
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
        """Add rules the index does not hold, without version checks: the warm start's bulk
        path, and upsert's. A row holds IndexedRule's fields in order (a plain tuple will do).

        Each rule shares the strings many rules repeat (client ids, patterns, email lists),
        its emails sorted and unique as a match lists them. Spelled out in one loop, as a
        warm start runs it a million times; the buckets' matches are made once per bucket
        and client, after it."""
        intern, new = sys.intern, tuple.__new__
        by_id, shared_emails = self._rules, self._emails
        added: dict[tuple[int, tuple[str, ...], str], list[IndexedRule]] = {}
        for rule_id, client_id, severity, source, name, emails, enabled, version in rows:
            shared = shared_emails.get(emails)
            if shared is None:
                normalized = tuple(sorted(set(emails)))
                shared = shared_emails[emails] = shared_emails.setdefault(normalized, normalized)
            # tuple.__new__ skips the NamedTuple's Python-level __new__.
            rule = new(IndexedRule, (rule_id, intern(client_id), intern(severity), intern(source), intern(name),
                                     shared, enabled, version))
            by_id[rule_id] = rule
            if enabled:
                shape = shape_of(rule)
                group = (shape, KEY_OF[shape](rule.severity, rule.source, rule.name), rule.client_id)
                grouped = added.get(group)
                if grouped is None:
                    added[group] = [rule]
                else:
                    grouped.append(rule)
        buckets = self._buckets
        for (shape, key, client_id), rules in added.items():
            bucket = buckets[shape].get(key)
            if bucket is None:
                bucket = buckets[shape][key] = {}
            held = bucket.get(client_id)
            if held is not None:
                rules += [by_id[rule_id] for rule_id in held.rule_ids]
            bucket[client_id] = self._client_match(client_id, rules)

    def _client_match(self, client_id: str, rules: list[IndexedRule]) -> ClientMatch:
        """What `rules`, the client's rules in one bucket, match: their ids and endpoints."""
        if len(rules) == 1:
            return ClientMatch(client_id, (rules[0].rule_id,), rules[0].emails)
        emails = tuple(sorted({email for rule in rules for email in rule.emails}))
        return ClientMatch(client_id, tuple(sorted(rule.rule_id for rule in rules)),
                           self._emails.setdefault(emails, emails))

    def upsert(self, rule: IndexedRule) -> None:
        """Add or replace a rule. Which changes apply, and in what order, the caller decides
        (rules.changelog.applies), as for the snapshot."""
        current = self._rules.get(rule.rule_id)
        if current is not None:
            self._unlink(current)
        self.load((rule,))

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
        # One probe per shape, keys spelled out: this is the evaluator's hot path.
        candidates = (
            buckets[1].get((severity,)),
            buckets[2].get((source,)),
            buckets[3].get((severity, source)),
            buckets[4].get((name,)),
            buckets[5].get((severity, name)),
            buckets[6].get((source, name)),
            buckets[7].get((severity, source, name)),
        )
        found: dict[str, ClientMatch] = {}
        for bucket in candidates:
            if bucket:
                # Whichever is smaller walked: a bucket of a severity alone may hold every client.
                for client_id in (bucket if len(bucket) <= len(owners) else owners):
                    if client_id in owners and (matched := bucket.get(client_id)) is not None:
                        held = found.get(client_id)
                        found[client_id] = matched if held is None else merged(held, matched)
        return list(found.values())

    def _unlink(self, rule: IndexedRule) -> None:
        if not rule.enabled:
            return
        shape = shape_of(rule)
        key = KEY_OF[shape](rule.severity, rule.source, rule.name)
        bucket = self._buckets[shape][key]
        held = bucket[rule.client_id]
        if len(held.rule_ids) == 1:
            del bucket[rule.client_id]
            if not bucket:
                del self._buckets[shape][key]
        else:
            bucket[rule.client_id] = self._client_match(
                rule.client_id, [self._rules[rule_id] for rule_id in held.rule_ids if rule_id != rule.rule_id])


def merged(first: ClientMatch, second: ClientMatch) -> ClientMatch:
    """One client's matches from two buckets: their rules differ, their endpoints may not."""
    emails = first.emails if first.emails is second.emails else tuple(sorted({*first.emails, *second.emails}))
    return ClientMatch(first.client_id, tuple(sorted(first.rule_ids + second.rule_ids)), emails)
