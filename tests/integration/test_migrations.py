"""The Alembic migrations build exactly the schema the models describe, on both backends."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from authsvc.store.models import Base

pytestmark = pytest.mark.backends("sqlite", "postgres")  # the production shape is the point here


def test_migrated_schema_matches_the_models(deps):
    with deps.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_migrating_twice_is_harmless(deps):
    from authsvc.store.db import migrate

    migrate(deps.engine)
    with deps.engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() is not None


def test_an_instance_refuses_an_old_schema(tmp_path):
    import pytest

    from authsvc.store.db import SchemaNotCurrent
    from authsvc.web import create_app
    from tests.conftest import make_settings

    settings = make_settings(str(tmp_path / "fresh"))
    with pytest.raises(SchemaNotCurrent, match="authsvc db upgrade"):
        create_app(settings)
