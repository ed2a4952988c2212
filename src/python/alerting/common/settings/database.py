"""Postgres, and who logs in to it (migrations/MIGRATION_STRATEGY.md, "Roles").

database_url's user is the owner role, which owns the schema; tools and tests log in as
it. Each service logs in as its own role, granted only what it needs: a process's settings
carry the logins of the roles it uses (the classes below, one a role). Migrations run as
the migration role, which alone may create roles and set their passwords, and acts as the
owner for everything else (db.migration_url); `migrate up` sets the service roles'
passwords from the same settings (not the ones left unset)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from alerting.common.settings.base import RetrySettings


class DatabaseSettings(RetrySettings):
    """Where Postgres is, and the owner role's password."""

    database_url: str = Field(default="postgresql://alerting@127.0.0.1:5432/alerting", description=(
        "Postgres' address and database; its user is the owner role, which tools and tests log in as."
        " Each service logs in as its own role instead (the `*_DATABASE_USER` settings)."))
    database_pool_size: int = Field(default=10, description=(
        "The most connections of a service's pool (the fewest is 1)."))
    database_password: SecretStr | None = Field(default=None, description=(
        "The owner role's password, instead of one written in the URL."))


class MigrationLogin(DatabaseSettings):
    """`migrate`'s role."""

    migration_database_user: str = Field(default="alerting_migrator", description=(
        "The role `migrate` logs in as: it creates the service roles and acts as the owner."))
    migration_database_password: SecretStr | None = Field(default=None, description="The migration role's password.")


class ControlPlaneLogin(DatabaseSettings):
    """The rule-service's role: clients, rules, grants, keys, policies, silences, receivers."""

    control_plane_database_user: str = Field(default="alerting_control_plane", description="The rule-service's role.")
    control_plane_database_password: SecretStr | None = Field(default=None, description=(
        "The rule-service role's password."))


class RuleReaderLogin(DatabaseSettings):
    """The role that reads rules to rebuild the snapshot: the rule-updater's and the evaluator's."""

    rule_reader_database_user: str = Field(default="alerting_rule_reader", description=(
        "The role the rule-updater and the evaluator rebuild the rule snapshot as."))
    rule_reader_database_password: SecretStr | None = Field(default=None, description=(
        "The rule reader role's password."))


class DataPlaneLogin(DatabaseSettings):
    """The aggregator's and the sender's role: notifications and their deliveries."""

    data_plane_database_user: str = Field(default="alerting_data_plane", description=(
        "The aggregator's and the sender's role."))
    data_plane_database_password: SecretStr | None = Field(default=None, description="The data plane role's password.")


class NotificationAdminLogin(DatabaseSettings):
    """The role of the rule-service's NotificationService: notifications inspected and retried."""

    notification_admin_database_user: str = Field(default="alerting_notification_admin", description=(
        "The role the rule-service's NotificationService reads and retries notifications as."))
    notification_admin_database_password: SecretStr | None = Field(default=None, description=(
        "The notification admin role's password."))
