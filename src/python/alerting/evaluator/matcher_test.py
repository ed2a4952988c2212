import random
from collections.abc import Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerting.common.vocabulary import SEVERITIES, WILDCARD
from alerting.evaluator.matcher import ClientMatch, Grant, IndexedRule, RuleIndex

# What matched() and reference_match() compare: (client_id, rule_ids) pairs.
Matches = set[tuple[str, tuple[str, ...]]]


def rule(rule_id: str, client: str = "c1", severity: str = "HIGH", source: str = "db", name: str = "disk",
         emails: Iterable[str] = ("ops@x.io",), enabled: bool = True, version: int = 1) -> IndexedRule:
    return IndexedRule(rule_id, client, severity, source, name, tuple(emails), enabled, version)


def matched(index: RuleIndex, severity: str = "HIGH", source: str = "db", name: str = "disk") -> Matches:
    return {(m.client_id, m.rule_ids) for m in index.match(severity, source, name)}


def granted(*sources: str, clients: Iterable[str] = ("c1", "c2")) -> RuleIndex:
    """An index whose clients are granted exactly these sources."""
    index = RuleIndex()
    index.load_grants(Grant(client, source, False) for client in clients for source in sources)
    return index


def test_exact_match_is_case_sensitive() -> None:
    index = granted("db", "DB")
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
    index = granted("db", "something-else")
    index.upsert(rule("r1", severity=pattern[0], source=pattern[1], name=pattern[2]))
    assert matched(index) == {("c1", ("r1",))}
    concrete = [i for i, value in enumerate(pattern) if value != WILDCARD]
    other = ["HIGH", "db", "disk"]
    other[concrete[0]] = "something-else" if concrete[0] else "LOW"
    assert matched(index, *other) == set()


def test_several_rules_of_one_client_give_one_match_with_every_rule_and_email() -> None:
    index = granted("db")
    index.upsert(rule("r2", emails=("b@x.io", "a@x.io")))
    index.upsert(rule("r1", source="*", emails=("a@x.io",)))
    [match] = index.match("HIGH", "db", "disk")
    assert match.rule_ids == ("r1", "r2")
    assert match.emails == ("a@x.io", "b@x.io")


def test_each_matching_client_gets_its_own_match() -> None:
    index = granted("db")
    index.upsert(rule("r1", client="c1"))
    index.upsert(rule("r2", client="c2", name="*"))
    assert matched(index) == {("c1", ("r1",)), ("c2", ("r2",))}


def test_disabled_and_deleted_rules_never_match() -> None:
    index = granted("db")
    index.upsert(rule("r1", enabled=False))
    index.upsert(rule("r2"))
    assert matched(index) == {("c1", ("r2",))}
    assert index.delete("r2")
    assert matched(index) == set()
    assert not index.delete("r2")


def test_an_upsert_replaces_the_rule_whole() -> None:
    index = granted("db", "web")
    index.upsert(rule("r1", version=1))
    index.upsert(rule("r1", source="web", version=2))
    assert matched(index) == set()
    assert matched(index, source="web") == {("c1", ("r1",))}
    index.upsert(rule("r1", source="db", enabled=False, version=3))
    assert matched(index, source="web") == matched(index) == set()
    assert len(index) == 1


def reference_match(rules: dict[str, IndexedRule], severity: str, source: str, name: str,
                    grants: Iterable[Grant] | None = None) -> Matches:
    """Independent naive matcher: scan every rule, and with `grants`, keep the clients granted
    the source (exactly, or by a prefix of it)."""
    found: dict[str, list[str]] = {}
    for r in rules.values():
        pairs = ((r.severity, severity), (r.source, source), (r.name, name))
        if r.enabled and all(pattern in (WILDCARD, value) for pattern, value in pairs):
            found.setdefault(r.client_id, []).append(r.rule_id)
    if grants is not None:
        owners = {g.client_id for g in grants if source.startswith(g.source) if g.prefix or g.source == source}
        found = {client: ids for client, ids in found.items() if client in owners}
    return {(client, tuple(sorted(ids))) for client, ids in found.items()}


def test_agrees_with_a_naive_scan_on_random_rules_and_changes() -> None:
    rng = random.Random(7)
    severities = ["LOW", "MEDIUM", "HIGH", "CRITICAL"]
    sources, names = [f"s{i}" for i in range(5)], [f"n{i}" for i in range(5)]
    index = granted(*sources, "other", clients=[f"c{i}" for i in range(20)])
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
    loaded, upserted = (granted("s0", "s1", "s2", "s3", clients=["c0", "c1", "c2"]) for _ in range(2))
    loaded.load(rules)
    for r in rules:
        upserted.upsert(r)
    assert len(loaded) == len(upserted) == 40
    for source in ("s0", "s1", "s2", "s3"):
        assert loaded.match("HIGH", source, "disk") == upserted.match("HIGH", source, "disk")
    loaded.delete("r1")
    assert "r1" not in {rule_id for m in loaded.match("HIGH", "s1", "disk") for rule_id in m.rule_ids}


def test_rules_by_source_alone_and_by_severity_and_source_give_one_match_as_they_come_and_go() -> None:
    """What the roll-up of (severity, source, *) and (*, source, *) keeps merged."""
    index = granted("db")
    index.upsert(rule("every", severity="*", name="*", emails=("a@x.io",)))
    index.upsert(rule("high", name="*", emails=("b@x.io",)))
    assert index.match("HIGH", "db", "disk") == [("c1", ("every", "high"), ("a@x.io", "b@x.io"))]
    assert index.match("LOW", "db", "disk") == [("c1", ("every",), ("a@x.io",))]
    assert index.delete("every")
    assert index.match("HIGH", "db", "disk") == [("c1", ("high",), ("b@x.io",))]
    assert index.match("LOW", "db", "disk") == []
    index.upsert(rule("high", severity="LOW", name="*", emails=("b@x.io",), version=2))
    assert index.match("HIGH", "db", "disk") == []
    assert index.match("LOW", "db", "disk") == [("c1", ("high",), ("b@x.io",))]


def test_a_single_matching_rule_lists_its_emails_sorted_and_once() -> None:
    index = granted("db")
    index.upsert(rule("r1", emails=("b@x.io", "a@x.io", "b@x.io")))
    [match] = index.match("HIGH", "db", "disk")
    assert match == ("c1", ("r1",), ("a@x.io", "b@x.io"))



# ------------------------------------------------------------------ alert ownership
def test_a_client_with_rules_for_every_alert_receives_only_its_granted_sources() -> None:
    """Four rules, one per severity, source and name "*": every alert the client may see, and
    no other."""
    index = RuleIndex()
    for number, severity in enumerate(SEVERITIES):
        index.upsert(rule(f"r{number}", client="nosy", severity=severity, source="*", name="*"))
    index.upsert(rule("owner-rule", client="owner", severity="*", source="payments", name="*"))
    index.load_grants([Grant("nosy", "web", False), Grant("owner", "payments", False)])
    assert matched(index, "HIGH", "web") == {("nosy", ("r2",))}
    assert matched(index, "HIGH", "payments") == {("owner", ("owner-rule",))}
    assert matched(index, "HIGH", "unowned") == set()


def test_a_rule_naming_a_source_not_granted_to_its_client_matches_nothing() -> None:
    index = granted("db", clients=["owner"])
    index.upsert(rule("r1", client="thief", source="db"))
    assert matched(index) == set()
    index.grant(Grant("thief", "db", False))
    assert matched(index) == {("thief", ("r1",))}
    assert index.revoke(Grant("thief", "db", False))
    assert matched(index) == set()
    assert not index.revoke(Grant("thief", "db", False))


def test_a_prefix_grants_every_source_that_starts_with_it_and_no_other() -> None:
    index = RuleIndex()
    index.upsert(rule("r1", source="*"))
    index.grant(Grant("c1", "team-a.", True))
    assert [bool(matched(index, source=source)) for source in ("team-a.", "team-a.db", "team-a", "team-b.db",
                                                              "xteam-a.db")] == [True, True, False, False, False]
    index.grant(Grant("c1", "team-a.db", False))
    assert index.revoke(Grant("c1", "team-a.", True))
    assert [bool(matched(index, source=source)) for source in ("team-a.db", "team-a.web")] == [True, False]


def test_a_grant_given_twice_is_one_grant() -> None:
    index = RuleIndex()
    index.grant(Grant("c1", "db", False))
    index.grant(Grant("c1", "db", False))
    index.grant(Grant("c1", "db", True))
    assert index.grants() == {Grant("c1", "db", False), Grant("c1", "db", True)}
    assert index.revoke(Grant("c1", "db", False))
    assert index.grants() == {Grant("c1", "db", True)}


# Few clients and sources, sources that are prefixes of one another, so that grants overlap.
ownership_clients = st.sampled_from(["c1", "c2", "c3"])
ownership_sources = st.sampled_from(["a", "ab", "abc", "b", "ba"])


@st.composite
def ownership_rules(draw: st.DrawFn) -> IndexedRule:
    pattern = (draw(st.sampled_from(["HIGH", "LOW", WILDCARD])), draw(st.one_of(st.just(WILDCARD), ownership_sources)),
               draw(st.sampled_from(["n", WILDCARD])))
    if pattern == (WILDCARD, WILDCARD, WILDCARD):
        pattern = ("HIGH", WILDCARD, WILDCARD)
    return rule(draw(st.sampled_from([f"r{n}" for n in range(8)])), draw(ownership_clients), *pattern,
                enabled=draw(st.booleans()))


grants = st.builds(Grant, ownership_clients, ownership_sources, st.booleans())


@given(changes=st.lists(st.one_of(ownership_rules(), st.tuples(st.just("grant"), grants),
                                  st.tuples(st.just("revoke"), grants)), max_size=30),
       alert=st.tuples(st.sampled_from(["HIGH", "LOW"]), ownership_sources, st.sampled_from(["n", "m"])))
def test_a_rule_matches_exactly_when_its_pattern_matches_and_its_client_is_granted_the_source(
    changes: list[IndexedRule | tuple[str, Grant]], alert: tuple[str, str, str]
) -> None:
    index = RuleIndex()
    rules: dict[str, IndexedRule] = {}
    given_grants: set[Grant] = set()
    for change in changes:
        if isinstance(change, IndexedRule):
            index.upsert(change)
            rules[change.rule_id] = change
        elif change[0] == "grant":
            index.grant(change[1])
            given_grants.add(change[1])
        else:
            assert index.revoke(change[1]) == (change[1] in given_grants)
            given_grants.discard(change[1])
    assert index.grants() == given_grants
    assert matched(index, *alert) == reference_match(rules, *alert, grants=given_grants)


def test_the_prefix_lengths_probed_follow_grants_and_revocations_among_many_prefixes() -> None:
    """A warm start loads every grant: the lengths probed are kept up to date per change, not
    recomputed from every prefix (which would take minutes for these 50,000)."""
    index = RuleIndex()
    index.upsert(rule("r1", source="*"))
    index.load_grants(Grant(f"c{n}", f"team-{n:05d}.", True) for n in range(50_000))
    assert index._prefix_lengths == (len("team-00000."),)
    assert matched(index, source="team-00007.db") == set()  # c7 has no rule
    index.grant(Grant("c1", "t", True))
    assert index._prefix_lengths == (1, len("team-00000."))
    assert matched(index, source="team-00001.db") == matched(index, source="tx") == {("c1", ("r1",))}
    assert index.revoke(Grant("c1", "t", True))
    assert index._prefix_lengths == (len("team-00000."),)


# ------------------------------------------------------------------ precomputed matches
def reference_client_matches(rules: dict[str, IndexedRule], grants: Iterable[Grant], severity: str, source: str,
                             name: str) -> list[ClientMatch]:
    """What match() returns, computed the plain way: every enabled rule whose pattern matches,
    grouped by granted client, its ids sorted, its emails sorted and once; by client id."""
    owners = {g.client_id for g in grants if source.startswith(g.source) if g.prefix or g.source == source}
    found: dict[str, list[IndexedRule]] = {}
    for r in rules.values():
        pairs = ((r.severity, severity), (r.source, source), (r.name, name))
        if r.enabled and r.client_id in owners and all(pattern in (WILDCARD, value) for pattern, value in pairs):
            found.setdefault(r.client_id, []).append(r)
    return [ClientMatch(client, tuple(sorted(r.rule_id for r in held)),
                        tuple(sorted({email for r in held for email in r.emails})))
            for client, held in sorted(found.items())]


emails = st.lists(st.sampled_from(["a@x.io", "b@x.io", "c@x.io", "receiver:w1"]), min_size=1, max_size=3)
dense_sources = st.sampled_from(["a", "ab"])  # few, so that rules of one client share buckets and roll-ups


@st.composite
def rules_with_emails(draw: st.DrawFn) -> IndexedRule:
    pattern = (draw(st.sampled_from(["HIGH", "LOW", WILDCARD])), draw(st.one_of(st.just(WILDCARD), dense_sources)),
               draw(st.sampled_from(["n", WILDCARD])))
    if pattern == (WILDCARD, WILDCARD, WILDCARD):
        pattern = (WILDCARD, "a", WILDCARD)
    return rule(draw(st.sampled_from([f"r{n}" for n in range(6)])), draw(st.sampled_from(["c1", "c2"])), *pattern,
                emails=draw(emails), enabled=draw(st.integers(0, 5).map(bool)))


changes_of_rules = st.lists(st.one_of(rules_with_emails(), st.tuples(st.just("delete"), st.sampled_from(
    [f"r{n}" for n in range(6)]))), max_size=40)


# Alerts of a severity no rule names too ("INFO" is none of SEVERITIES: no roll-up serves it).
@settings(max_examples=300)
@given(loaded=st.lists(rules_with_emails(), max_size=12), changes=changes_of_rules,
       given_grants=st.lists(st.builds(Grant, st.sampled_from(["c1", "c2"]), dense_sources, st.booleans()),
                             min_size=1, max_size=4),
       alerts=st.lists(st.tuples(st.sampled_from(["HIGH", "LOW", "INFO"]), dense_sources, st.sampled_from(["n", "m"])),
                       min_size=1, max_size=6))
def test_precomputed_matches_equal_a_plain_grouping_after_loads_upserts_and_deletes(
    loaded: list[IndexedRule], changes: list[IndexedRule | tuple[str, str]], given_grants: list[Grant],
    alerts: list[tuple[str, str, str]],
) -> None:
    index = RuleIndex()
    index.load_grants(given_grants)
    rules = {r.rule_id: r for r in loaded}
    index.load(rules.values())
    for change in changes:
        if isinstance(change, IndexedRule):
            index.upsert(change)
            rules[change.rule_id] = change
        else:
            assert index.delete(change[1]) == (rules.pop(change[1], None) is not None)
        for alert in alerts:
            found = index.match(*alert)
            assert all(type(m) is ClientMatch for m in found)
            assert sorted(found) == reference_client_matches(rules, given_grants, *alert)
