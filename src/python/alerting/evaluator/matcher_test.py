import random
from collections.abc import Iterable

import pytest

from alerting.common.vocabulary import WILDCARD
from alerting.evaluator.matcher import IndexedRule, RuleIndex

# What matched() and reference_match() compare: (client_id, rule_ids) pairs.
Matches = set[tuple[str, tuple[str, ...]]]


def rule(rule_id: str, client: str = "c1", severity: str = "HIGH", source: str = "db", name: str = "disk",
         emails: Iterable[str] = ("ops@x.io",), enabled: bool = True, version: int = 1) -> IndexedRule:
    return IndexedRule(rule_id, client, severity, source, name, tuple(emails), enabled, version)


def matched(index: RuleIndex, severity: str = "HIGH", source: str = "db", name: str = "disk") -> Matches:
    return {(m.client_id, m.rule_ids) for m in index.match(severity, source, name)}


def test_exact_match_is_case_sensitive() -> None:
    index = RuleIndex()
    index.upsert(rule("r1"))
    assert matched(index) == {("c1", ("r1",))}
    assert matched(index, source="DB") == set()
    assert matched(index, severity="LOW") == set()


@pytest.mark.parametrize(
    "pattern",
    [("*", "db", "disk"), ("HIGH", "*", "disk"), ("HIGH", "db", "*"), ("*", "*", "disk"), ("*", "db", "*"),
     ("HIGH", "*", "*")],
)
def test_wildcards_match_any_value(pattern: tuple[str, str, str]) -> None:
    index = RuleIndex()
    index.upsert(rule("r1", severity=pattern[0], source=pattern[1], name=pattern[2]))
    assert matched(index) == {("c1", ("r1",))}
    concrete = [i for i, value in enumerate(pattern) if value != WILDCARD]
    other = ["HIGH", "db", "disk"]
    other[concrete[0]] = "something-else" if concrete[0] else "LOW"
    assert matched(index, *other) == set()


def test_several_rules_of_one_client_give_one_match_with_every_rule_and_email() -> None:
    index = RuleIndex()
    index.upsert(rule("r2", emails=("b@x.io", "a@x.io")))
    index.upsert(rule("r1", source="*", emails=("a@x.io",)))
    [match] = index.match("HIGH", "db", "disk")
    assert match.rule_ids == ("r1", "r2")
    assert match.emails == ("a@x.io", "b@x.io")


def test_each_matching_client_gets_its_own_match() -> None:
    index = RuleIndex()
    index.upsert(rule("r1", client="c1"))
    index.upsert(rule("r2", client="c2", name="*"))
    assert matched(index) == {("c1", ("r1",)), ("c2", ("r2",))}


def test_disabled_and_deleted_rules_never_match() -> None:
    index = RuleIndex()
    index.upsert(rule("r1", enabled=False))
    index.upsert(rule("r2"))
    assert matched(index) == {("c1", ("r2",))}
    assert index.delete("r2")
    assert matched(index) == set()
    assert not index.delete("r2")


def test_an_upsert_replaces_the_rule_whole() -> None:
    index = RuleIndex()
    index.upsert(rule("r1", version=1))
    index.upsert(rule("r1", source="web", version=2))
    assert matched(index) == set()
    assert matched(index, source="web") == {("c1", ("r1",))}
    index.upsert(rule("r1", source="db", enabled=False, version=3))
    assert matched(index, source="web") == matched(index) == set()
    assert len(index) == 1


def reference_match(rules: dict[str, IndexedRule], severity: str, source: str, name: str) -> Matches:
    """Independent naive matcher: scan every rule."""
    found: dict[str, list[str]] = {}
    for r in rules.values():
        pairs = ((r.severity, severity), (r.source, source), (r.name, name))
        if r.enabled and all(pattern in (WILDCARD, value) for pattern, value in pairs):
            found.setdefault(r.client_id, []).append(r.rule_id)
    return {(client, tuple(sorted(ids))) for client, ids in found.items()}


def test_agrees_with_a_naive_scan_on_random_rules_and_changes() -> None:
    rng = random.Random(7)
    severities = ["LOW", "MEDIUM", "HIGH", "CRITICAL"]
    sources, names = [f"s{i}" for i in range(5)], [f"n{i}" for i in range(5)]
    index = RuleIndex()
    live: dict[str, IndexedRule] = {}
    for step in range(3000):
        rule_id = f"r{rng.randrange(400)}"
        if rng.random() < 0.15:
            index.delete(rule_id)
            live.pop(rule_id, None)
            continue
        pattern = (rng.choice(severities + ["*"]), rng.choice(sources + ["*"]), rng.choice(names + ["*"]))
        if pattern == ("*", "*", "*"):
            continue
        new = rule(rule_id, f"c{rng.randrange(20)}", *pattern, enabled=rng.random() > 0.1, version=step)
        index.upsert(new)
        live[rule_id] = new
    for severity in severities:
        for source in sources + ["other"]:
            for name in names:
                assert matched(index, severity, source, name) == reference_match(live, severity, source, name)


def test_bulk_load_matches_like_upserts() -> None:
    rules = [rule(f"r{i}", client=f"c{i % 3}", source=f"s{i % 4}", enabled=i % 5 != 0) for i in range(40)]
    loaded, upserted = RuleIndex(), RuleIndex()
    loaded.load(rules)
    for r in rules:
        upserted.upsert(r)
    assert len(loaded) == len(upserted) == 40
    for source in ("s0", "s1", "s2", "s3"):
        assert loaded.match("HIGH", source, "disk") == upserted.match("HIGH", source, "disk")
    loaded.delete("r1")
    assert "r1" not in {rule_id for m in loaded.match("HIGH", "s1", "disk") for rule_id in m.rule_ids}


def test_a_single_matching_rule_lists_its_emails_sorted_and_once() -> None:
    index = RuleIndex()
    index.upsert(rule("r1", emails=("b@x.io", "a@x.io", "b@x.io")))
    [match] = index.match("HIGH", "db", "disk")
    assert match == ("c1", ("r1",), ("a@x.io", "b@x.io"))

