from alerting.migrate.checks import CONTROL_PLANE, DATA_PLANE, check_migrations, owner_of

CLEAN = [
    "000001_create_clients.sql",
    "000001_create_clients.rollback.sql",
    "000002_create_rules.sql",
    "000002_create_rules.rollback.sql",
    "000006_create_notifications.sql",
    "000006_create_notifications.rollback.sql",
]


def test_a_consistent_folder_has_no_problems() -> None:
    assert check_migrations(CLEAN) == []


def test_gap_within_an_owners_range() -> None:
    files = [f for f in CLEAN if not f.startswith("000002")] + ["000003_x.sql", "000003_x.rollback.sql"]
    assert check_migrations(files) == ["gap in control plane (rule-service): 000002 is missing before 000003"]


def test_data_plane_must_start_at_its_first_number() -> None:
    files = [f for f in CLEAN if not f.startswith("000006")] + ["000007_x.sql", "000007_x.rollback.sql"]
    assert check_migrations(files) == ["gap in data plane (aggregator, sender): 000006 is missing before 000007"]


def test_duplicate_number() -> None:
    problems = check_migrations(CLEAN + ["000002_other.sql", "000002_other.rollback.sql"])
    assert problems == ["duplicate number 000002: 000002_create_rules.sql, 000002_other.sql"]


def test_missing_rollback_and_orphan_rollback() -> None:
    files = [f for f in CLEAN if f != "000002_create_rules.rollback.sql"] + ["000003_y.rollback.sql"]
    problems = check_migrations(files)
    assert "000002_create_rules.sql: missing its rollback 000002_create_rules.rollback.sql" in problems
    assert "000003_y.rollback.sql: rollback without its migration" in problems


def test_a_rollback_named_unlike_its_migration_is_reported() -> None:
    files = [f for f in CLEAN if f != "000002_create_rules.rollback.sql"] + ["000002_create_rule.rollback.sql"]
    assert check_migrations(files) == [
        "000002_create_rules.sql: missing its rollback 000002_create_rules.rollback.sql",
        "000002_create_rule.rollback.sql: name differs from its migration 000002_create_rules.sql",
    ]


def test_a_second_rollback_of_one_number_is_reported_even_beside_the_right_one() -> None:
    problems = check_migrations(CLEAN + ["000002_old_name.rollback.sql"])
    assert problems == ["000002_old_name.rollback.sql: name differs from its migration 000002_create_rules.sql"]


def test_every_rollback_without_a_migration_is_reported() -> None:
    problems = check_migrations(CLEAN + ["000003_y.rollback.sql", "000003_z.rollback.sql"])
    assert problems == ["000003_y.rollback.sql: rollback without its migration",
                        "000003_z.rollback.sql: rollback without its migration"]


def test_bad_names_are_reported() -> None:
    problems = check_migrations(CLEAN + ["7_Add Things.sql"])
    assert problems == ["7_Add Things.sql: name must be NNNNNN_lower_snake.sql or NNNNNN_lower_snake.rollback.sql"]


def test_number_outside_every_range() -> None:
    problems = check_migrations(CLEAN + ["000000_zero.sql", "000000_zero.rollback.sql"])
    assert sorted(problems) == ["000000_zero.rollback.sql: number 0 is outside every owner's range",
                                "000000_zero.sql: number 0 is outside every owner's range"]


def test_an_empty_folder_is_not_consistent() -> None:
    assert check_migrations([]) == ["no migrations at all: is this the migrations folder?"]


def test_each_owner_continues_in_its_own_later_range() -> None:
    later = ["000010_control.sql", "000010_control.rollback.sql", "000011_more.sql", "000011_more.rollback.sql",
             "500000_data.sql", "500000_data.rollback.sql"]
    assert check_migrations(CLEAN + later) == []
    assert [getattr(owner_of(number), "owner", None) for number in (5, 9, 10, 11, 499_999, 500_000)] == [
        CONTROL_PLANE, DATA_PLANE, CONTROL_PLANE, CONTROL_PLANE, CONTROL_PLANE, DATA_PLANE]


def test_a_later_range_starts_at_its_first_number_too() -> None:
    files = CLEAN + ["000012_control.sql", "000012_control.rollback.sql", "500001_data.sql",
                     "500001_data.rollback.sql"]
    assert check_migrations(files) == ["gap in control plane (rule-service): 000010 is missing before 000012",
                                       "gap in data plane (aggregator, sender): 500000 is missing before 500001"]
