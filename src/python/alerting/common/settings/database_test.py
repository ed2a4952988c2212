"""Postgres' settings: the owner's login, and each role's, carried by the processes that use it."""

from pathlib import Path

import pytest

from alerting.common.settings import MigrateSettings, secret_value

DATABASE_LOGIN_VARIABLES = [
    f"ALERTING_{name}{suffix}"
    for name in ("DATABASE_PASSWORD", "MIGRATION_DATABASE_USER", "MIGRATION_DATABASE_PASSWORD",
                 "CONTROL_PLANE_DATABASE_USER", "CONTROL_PLANE_DATABASE_PASSWORD",
                 "RULE_READER_DATABASE_USER", "RULE_READER_DATABASE_PASSWORD", "DATA_PLANE_DATABASE_USER",
                 "DATA_PLANE_DATABASE_PASSWORD", "NOTIFICATION_ADMIN_DATABASE_USER",
                 "NOTIFICATION_ADMIN_DATABASE_PASSWORD")
    for suffix in ("", "_FILE")
]


def test_database_logins_default_to_the_local_stack_roles_without_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in DATABASE_LOGIN_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    settings = MigrateSettings()
    assert [(user, password) for user, password in (
        ("alerting", settings.database_password),
        (settings.migration_database_user, settings.migration_database_password),
        (settings.control_plane_database_user, settings.control_plane_database_password),
        (settings.rule_reader_database_user, settings.rule_reader_database_password),
        (settings.data_plane_database_user, settings.data_plane_database_password),
        (settings.notification_admin_database_user, settings.notification_admin_database_password),
    )] == [("alerting", None), ("alerting_migrator", None), ("alerting_control_plane", None),
           ("alerting_rule_reader", None), ("alerting_data_plane", None), ("alerting_notification_admin", None)]


def test_database_passwords_read_from_their_files_and_never_show(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in DATABASE_LOGIN_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "owner").write_text("owner-secret\n")
    (tmp_path / "data_plane").write_text("data-plane-secret\n")
    monkeypatch.setenv("ALERTING_DATABASE_PASSWORD_FILE", str(tmp_path / "owner"))
    monkeypatch.setenv("ALERTING_DATA_PLANE_DATABASE_PASSWORD_FILE", str(tmp_path / "data_plane"))
    monkeypatch.setenv("ALERTING_CONTROL_PLANE_DATABASE_PASSWORD", "control-plane-secret")
    settings = MigrateSettings()
    assert secret_value(settings.database_password) == "owner-secret"
    assert secret_value(settings.data_plane_database_password) == "data-plane-secret"
    assert secret_value(settings.control_plane_database_password) == "control-plane-secret"
    shown = repr(settings) + str(settings.model_dump())
    assert [secret for secret in ("owner-secret", "data-plane-secret", "control-plane-secret") if secret in shown] == []
