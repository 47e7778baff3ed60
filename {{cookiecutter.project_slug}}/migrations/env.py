"""Alembic's environment for `flask db ...` (Flask-Migrate): the app's engine, and every table it owns.

The schema is two metadata objects: the app's models (`db.metadata`) and gatekeeper's own tables
(`gatekeeper_control.metadata`: the store's and the exposures', kept apart so the folder stays drop-in).
Autogenerate compares both.
"""

import logging
from logging.config import fileConfig

from alembic import context
from flask import current_app

from {{ cookiecutter.package_name }}.gatekeeper_control import metadata as gatekeeper_metadata

config = context.config
fileConfig(config.config_file_name, disable_existing_loggers=False)
log = logging.getLogger("alembic.env")

migrate = current_app.extensions["migrate"]
target_metadata = [migrate.db.metadata, gatekeeper_metadata]


def skip_empty_revisions(context, revision, directives):
    """`flask db migrate` with no model change writes no empty revision."""
    if getattr(config.cmd_opts, "autogenerate", False) and directives[0].upgrade_ops.is_empty():
        directives[:] = []
        log.info("No changes in schema detected.")


def run_migrations_offline() -> None:
    """`flask db upgrade --sql`: print the SQL instead of running it."""
    url = migrate.db.engine.url.render_as_string(hide_password=False)
    context.configure(url=url, target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    conf_args = {"process_revision_directives": skip_empty_revisions, **migrate.configure_args}
    with migrate.db.engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, **conf_args)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
