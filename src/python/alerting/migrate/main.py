"""`migrate`: the one migration runner for every service (yoyo-migrations underneath).

    migrate up | down [--steps N | --all] | status | check

It logs in as the migration role (ALERTING_MIGRATION_DATABASE_USER and _PASSWORD[_FILE]),
acting as the owner role (the URL's user) for the migrations themselves; `up` first creates
the service roles that do not exist yet and afterwards sets the password of each from its
settings, which only the migration role may (CREATEROLE).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click
import psycopg
from psycopg import sql
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
    wait_random,
)
from yoyo import get_backend, read_migrations
from yoyo.backends import DatabaseBackend
from yoyo.migrations import MigrationList

from alerting.common.db import SERVICE_ROLES, DatabaseRole, login, migration_url, role_login_url
from alerting.common.settings import MigrateSettings
from alerting.migrate.checks import check_migrations

DEFAULT_DATABASE_URL = "postgresql://alerting@127.0.0.1:5432/alerting"


def yoyo_url(database_url: str) -> str:
    """yoyo names its psycopg 3 driver in the URL scheme."""
    scheme, rest = database_url.split("://", 1)
    return f"postgresql+psycopg://{rest}" if scheme in ("postgres", "postgresql") else database_url


def default_migrations_dir() -> str:
    return os.environ.get("ALERTING_MIGRATIONS_DIR", "migrations")


@click.group()
@click.option("--database-url", envvar="ALERTING_DATABASE_URL", default=DEFAULT_DATABASE_URL, show_default=True)
@click.option("--dir", "migrations_dir", default=default_migrations_dir, show_default="migrations",
              type=click.Path(file_okay=False), help="Folder of NNNNNN_name.sql / .rollback.sql files.")
@click.option("--connect-timeout", default=60.0, show_default=True,
              help="Seconds to keep retrying the connection while the database is not reachable yet.")
@click.pass_context
def cli(context: click.Context, database_url: str, migrations_dir: str, connect_timeout: float) -> None:
    context.obj = {"database_url": database_url, "dir": migrations_dir, "connect_timeout": connect_timeout}


def _migrations_folder(context: click.Context) -> tuple[Path, list[str]]:
    """The folder and the names of its *.sql files; a missing folder is an error, not an empty one."""
    directory = Path(context.obj["dir"])
    if not directory.is_dir():
        raise click.ClickException(f"migrations folder {directory} not found (use --dir or ALERTING_MIGRATIONS_DIR)")
    return directory, [path.name for path in directory.glob("*.sql")]


def _settings(context: click.Context) -> MigrateSettings:
    """The ALERTING_* settings (the migration role's and the service roles' logins), on the URL given."""
    return MigrateSettings(database_url=context.obj["database_url"])


def _open(context: click.Context) -> tuple[DatabaseBackend, MigrationList]:
    directory, filenames = _migrations_folder(context)
    problems = check_migrations(filenames)
    if problems:
        raise click.ClickException("inconsistent migrations:\n  " + "\n  ".join(problems))
    backend = connect(migration_url(_settings(context)), context.obj["connect_timeout"])
    return backend, read_migrations(str(directory))


def connect(database_url: str, timeout: float) -> DatabaseBackend:
    """yoyo's backend, retrying with backoff while the server refuses connections (a
    database container still starting): the runner need not be started after it."""

    def say_retrying(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        click.echo(f"database not reachable yet, retrying: {error}", err=True)

    retrying = Retrying(
        retry=retry_if_exception_type(psycopg.OperationalError),
        wait=wait_exponential_jitter(initial=0.2, max=5),
        stop=stop_after_delay(timeout),
        before_sleep=say_retrying,
        reraise=True,
    )
    return retrying(get_backend, yoyo_url(database_url))


@cli.command()
@click.pass_context
def up(context: click.Context) -> None:
    """Apply every pending migration (under yoyo's lock, so concurrent runs are safe)."""
    settings = _settings(context)
    backend, migrations = _open(context)
    with psycopg.connect(role_login_url(settings, DatabaseRole.MIGRATION), autocommit=True) as roles:
        create_roles(roles)
        with backend.lock():
            pending = backend.to_apply(migrations)
            backend.apply_migrations(pending)
        click.echo(f"applied {len(pending)} migration(s)" + "".join(f"\n  {m.id}" for m in pending))
        for line in set_passwords(roles, settings):
            click.echo(line)


# The service roles the migrations grant to. Roles belong to the cluster and only the
# migration role may create them, not the owner the migrations run as: created here first.
PLATFORM_ROLES = tuple(MigrateSettings.model_fields[f"{role.value}_database_user"].default for role in SERVICE_ROLES)


def create_roles(connection: psycopg.Connection[Any]) -> None:
    """Create each of PLATFORM_ROLES that does not exist, LOGIN without a password; another
    database's migration may be creating it at the same moment."""
    for name in PLATFORM_ROLES:
        if connection.execute("SELECT FROM pg_roles WHERE rolname = %s", (name,)).fetchone():
            continue
        try:
            connection.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name)))
        except (psycopg.errors.DuplicateObject, psycopg.errors.UniqueViolation):
            pass


def set_passwords(connection: psycopg.Connection[Any], settings: MigrateSettings) -> list[str]:
    """Set the password of each service's role whose password is set (an unset or empty one
    leaves the role's password to whoever manages it); one line per role set.
    Only the SCRAM verifier, computed here as psql's \\password does, is sent: the password
    itself never reaches the server or its logs, nor this output."""
    # Roles belong to the whole cluster: migrations of other databases (the tests migrate one
    # per test process) may alter the same role at the same moment, which Postgres refuses
    # with "tuple concurrently updated" rather than waiting. Trying again succeeds.
    retrying = Retrying(retry=retry_if_exception_type(psycopg.errors.InternalError_),
                        wait=wait_random(0.01, 0.2), stop=stop_after_attempt(20), reraise=True)
    lines = []
    for role in SERVICE_ROLES:
        user, password = login(settings, role)
        if not (user and password):
            continue
        verifier = connection.pgconn.encrypt_password(password.encode(), user.encode(), b"scram-sha-256")
        statement = sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(user), sql.Literal(verifier.decode()))
        retrying(connection.execute, statement)
        lines.append(f"set the password of {user}")
    return lines


@cli.command()
@click.option("--steps", default=1, show_default=True, help="How many applied migrations to roll back.")
@click.option("--all", "everything", is_flag=True, help="Roll back every applied migration.")
@click.pass_context
def down(context: click.Context, steps: int, everything: bool) -> None:
    """Roll back the most recently applied migrations."""
    backend, migrations = _open(context)
    with backend.lock():
        applied = backend.to_rollback(migrations)
        chosen = applied if everything else applied[:steps]
        backend.rollback_migrations(chosen)
    click.echo(f"rolled back {len(chosen)} migration(s)" + "".join(f"\n  {m.id}" for m in chosen))


@cli.command()
@click.pass_context
def status(context: click.Context) -> None:
    """List every migration as applied or pending."""
    backend, migrations = _open(context)
    applied = {m.id for m in backend.to_rollback(migrations)}
    for migration in migrations:
        click.echo(f"{'applied' if migration.id in applied else 'pending':8} {migration.id}")


@cli.command()
@click.pass_context
def check(context: click.Context) -> None:
    """Fail on a missing folder, gaps, duplicates, unpaired rollbacks or numbers outside their owner's range."""
    directory, filenames = _migrations_folder(context)
    problems = check_migrations(filenames)
    for problem in problems:
        click.echo(problem, err=True)
    if problems:
        sys.exit(1)
    click.echo(f"{directory}: {len(filenames)} files, consistent")


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
