"""Pure rules of the identity service: no Flask, no SQLAlchemy, no I/O; time is passed in."""
