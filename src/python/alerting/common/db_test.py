import pytest
from pydantic import SecretStr

from alerting.common import db
from alerting.common.db import DatabaseRole
from alerting.common.settings import DatabaseSettings, DataPlaneLogin, MigrationLogin
from alerting.testsupport.stack import StackSettings

URL = "postgresql://owner:url%40secret@db.internal:6543/alerting?sslmode=require"


@pytest.fixture
def no_password_files(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings made here alone, without the test suite's own password files (pants.toml)."""
    for name in ("DATABASE", "MIGRATION_DATABASE"):
        monkeypatch.delenv(f"ALERTING_{name}_PASSWORD_FILE", raising=False)


def test_the_owner_logs_in_as_the_url_says_unless_its_password_is_set_apart(no_password_files: None) -> None:
    in_url = DatabaseSettings(database_url=URL, database_password=None)
    assert db.login(in_url, DatabaseRole.OWNER) == ("owner", "url@secret")
    apart = DatabaseSettings(database_url=URL, database_password=SecretStr("file-secret"))
    assert db.login(apart, DatabaseRole.OWNER) == ("owner", "file-secret")
    nowhere = DatabaseSettings(database_url="postgresql://db.internal/alerting", database_password=None)
    assert db.login(nowhere, DatabaseRole.OWNER) == (None, None)


def test_a_service_role_replaces_the_urls_login_and_never_sees_the_owners_password() -> None:
    settings = DataPlaneLogin(database_url=URL, data_plane_database_user="dp",
                              data_plane_database_password=SecretStr("s"))
    assert db.connect_options(settings, DatabaseRole.DATA_PLANE) == {
        "dsn": "postgresql://db.internal:6543/alerting?sslmode=require", "user": "dp", "password": "s"}
    # An empty password is no password (libpq's defaults apply), not the URL's.
    blank = settings.model_copy(update={"data_plane_database_password": SecretStr("")})
    assert db.login(blank, DatabaseRole.DATA_PLANE) == ("dp", None)


def test_the_owner_url_carries_the_owners_login_encoded(no_password_files: None) -> None:
    settings = DatabaseSettings(database_url="postgresql://owner@db.internal:6543/alerting",
                                database_password=SecretStr("p@ss:w/rd"))
    url = db.owner_url(settings)
    assert url == "postgresql://owner:p%40ss%3Aw%2Frd@db.internal:6543/alerting"
    assert db.login(DatabaseSettings(database_url=url), DatabaseRole.OWNER) == ("owner", "p@ss:w/rd")


def test_migrations_log_in_as_the_migration_role_acting_as_the_owner(no_password_files: None) -> None:
    settings = MigrationLogin(database_url=URL, migration_database_user="mig",
                              migration_database_password=SecretStr("m:p"))
    assert db.migration_url(settings) == (
        "postgresql://mig:m%3Ap@db.internal:6543/alerting?sslmode=require&options=-c%20role%3Downer")


async def test_a_pool_logs_in_as_its_role(stack_settings: StackSettings) -> None:
    pool = await db.create_pool(stack_settings, DatabaseRole.NOTIFICATION_ADMIN)
    try:
        assert await pool.fetchval("SELECT current_user") == "alerting_notification_admin"
    finally:
        await pool.close()
