"""The in-memory rule index: match cost depends on the number of matches, not of rules.

Each rule has a shape, the set of its fields that are concrete (not "*"): 7 shapes, as
all-wildcard rules are invalid. Per shape, a dict maps the tuple of concrete values to
the rules with exactly those values. An alert probes each non-empty shape once.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, ValuesView
from typing import NamedTuple

from alerting.common.vocabulary import WILDCARD

FIELDS = ("severity", "source", "name")
# Shapes as bit masks over FIELDS: bit i set = field i is concrete.
SHAPES = tuple(range(1, 8))


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


class RuleIndex:
    def __init__(self) -> None:
        self._rules: dict[str, IndexedRule] = {}
        self._buckets: dict[int, dict[tuple[str, ...], list[IndexedRule]]] = {shape: {} for shape in SHAPES}
        # Each email list seen, as given and normalized, to its one shared normalized tuple.
        self._emails: dict[tuple[str, ...], tuple[str, ...]] = {}

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
        warm start runs it a million times."""
        intern, new = sys.intern, tuple.__new__
        by_id, buckets, shared_emails = self._rules, self._buckets, self._emails
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
                buckets[shape].setdefault(KEY_OF[shape](rule.severity, rule.source, rule.name), []).append(rule)

    def upsert(self, rule: IndexedRule) -> None:
        """Add or replace a rule. Which changes apply, and in what order, the caller decides
        (rules.changelog.applies), as for the snapshot."""
        current = self._rules.get(rule.rule_id)
        if current is not None:
            self._unlink(current)
        self.load((rule,))

    def delete(self, rule_id: str) -> bool:
        current = self._rules.pop(rule_id, None)
        if current is None:
            return False
        self._unlink(current)
        return True

    def match(self, severity: str, source: str, name: str) -> list[ClientMatch]:
        """Every client with a matching enabled rule, each with all its matching rules."""
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
        by_client: dict[str, list[IndexedRule]] = {}
        for matched in candidates:
            if matched:
                for rule in matched:
                    rules = by_client.get(rule.client_id)
                    if rules is None:
                        by_client[rule.client_id] = [rule]
                    else:
                        rules.append(rule)
        return [
            # Most clients match through one rule, whose emails are already sorted and unique.
            ClientMatch(client_id, (rules[0].rule_id,), rules[0].emails) if len(rules) == 1 else ClientMatch(
                client_id,
                tuple(sorted(rule.rule_id for rule in rules)),
                tuple(sorted({email for rule in rules for email in rule.emails})),
            )
            for client_id, rules in by_client.items()
        ]

    def _unlink(self, rule: IndexedRule) -> None:
        if not rule.enabled:
            return
        shape = shape_of(rule)
        key = KEY_OF[shape](rule.severity, rule.source, rule.name)
        bucket = self._buckets[shape][key]
        bucket.remove(rule)
        if not bucket:
            del self._buckets[shape][key]
