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
several buckets has theirs merged.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Set, ValuesView
from typing import NamedTuple

from alerting.common.vocabulary import WILDCARD

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


# A bucket: the ClientMatch of its rules when they are all of one client (most buckets
# that name a source hold its owner's rules alone), else per client the ClientMatch of its.
Bucket = ClientMatch | dict[str, ClientMatch]
Pattern = tuple[str, str, str]


class RuleIndex:
    def __init__(self) -> None:
        self._rules: dict[str, IndexedRule] = {}
        self._buckets: dict[Pattern, Bucket] = {}
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
        warm start runs it a million times: a rule alone of its client in its bucket makes
        the bucket's match for the client at once, and the matches of several rules are
        remade once, after the loop."""
        intern, new = sys.intern, tuple.__new__
        by_id, buckets, shared_emails = self._rules, self._buckets, self._emails
        several: list[tuple[Pattern, str]] = []
        for rule_id, client_id, severity, source, name, emails, enabled, version in rows:
            shared = shared_emails.get(emails)
            if shared is None:
                normalized = tuple(sorted(set(emails)))
                shared = shared_emails[emails] = shared_emails.setdefault(normalized, normalized)
            client_id = intern(client_id)
            pattern = (intern(severity), intern(source), intern(name))
            # tuple.__new__ skips the NamedTuples' Python-level __new__.
            by_id[rule_id] = new(IndexedRule, (rule_id, client_id, *pattern, shared, enabled, version))
            if enabled:
                if pattern not in buckets:
                    buckets[pattern] = new(ClientMatch, (client_id, (rule_id,), shared))
                elif (held := self._held(pattern, client_id)) is None:
                    self._store(pattern, new(ClientMatch, (client_id, (rule_id,), shared)))
                else:  # its rule ids for now: remade below
                    self._store(pattern, new(ClientMatch, (client_id, held.rule_ids + (rule_id,), shared)))
                    several.append((pattern, client_id))
        for pattern, client_id in several:
            held = self._held(pattern, client_id)
            assert held is not None
            self._store(pattern, self._client_match(client_id, [by_id[rule_id] for rule_id in held.rule_ids]))

    def _held(self, pattern: Pattern, client_id: str) -> ClientMatch | None:
        """The client's match in the bucket of `pattern`, if any."""
        bucket = self._buckets.get(pattern)
        if isinstance(bucket, dict):
            return bucket.get(client_id)
        return bucket if bucket is not None and bucket.client_id == client_id else None

    def _store(self, pattern: Pattern, match: ClientMatch) -> None:
        """Set the client's match in the bucket of `pattern`."""
        bucket = self._buckets.get(pattern)
        if isinstance(bucket, dict):
            bucket[match.client_id] = match
        elif bucket is None or bucket.client_id == match.client_id:
            self._buckets[pattern] = match
        else:
            self._buckets[pattern] = {bucket.client_id: bucket, match.client_id: match}

    def _drop(self, pattern: Pattern, client_id: str) -> None:
        """Remove the client's match from the bucket of `pattern`."""
        bucket = self._buckets[pattern]
        if not isinstance(bucket, dict):
            del self._buckets[pattern]
            return
        del bucket[client_id]
        if len(bucket) == 1:
            [self._buckets[pattern]] = bucket.values()

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
        # One probe per pattern that matches, spelled out: this is the evaluator's hot path.
        candidates = (
            buckets.get((severity, WILDCARD, WILDCARD)),
            buckets.get((WILDCARD, source, WILDCARD)),
            buckets.get((severity, source, WILDCARD)),
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
