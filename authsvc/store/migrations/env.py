"""Alembic environment: runs against the engine handed over by authsvc.store.db.migrate."""

from alembic import context

from authsvc.store.models import Base

engine = context.config.attributes["engine"]
with engine.begin() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata,
                      render_as_batch=connection.dialect.name == "sqlite")
    context.run_migrations()
