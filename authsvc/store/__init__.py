"""Storage: SQLAlchemy models, the unit of work with its repositories, Alembic migrations."""
