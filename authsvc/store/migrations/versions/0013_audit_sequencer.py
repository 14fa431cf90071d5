"""audit events inserted without a lock, sealed into the chain by one sequencer

The events table gets its own key (`id`), a `seq` that stays empty until the event is sealed,
and the writer's position and event MAC (docs/decisions/0013); `audit_writers` keeps each
writer's last sealed position. Existing events are sealed already: they keep their seq, hash and
MAC, and take their seq as id.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 13:40:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

_FIELDS = "ts, actor, action, subject, result, terminal, source, detail"
_INDEXES = (('ix_audit_subject', 'subject'), ('ix_audit_action', 'action'), ('ix_audit_ts', 'ts'))


def _fields() -> list[sa.Column]:
    return [
        sa.Column('ts', sa.String(40), nullable=False),
        sa.Column('actor', sa.String(100), nullable=False),
        sa.Column('action', sa.String(64), nullable=False),
        sa.Column('subject', sa.String(100), nullable=False),
        sa.Column('result', sa.String(32), nullable=False),
        sa.Column('terminal', sa.String(100), nullable=False),
        sa.Column('source', sa.String(100), nullable=False),
        sa.Column('detail', sa.Text(), nullable=False),
    ]


def _replace(new: str) -> None:
    """The old table gives way to `new` (its indexes go with it and are made again)."""
    op.drop_table('audit_events')
    op.rename_table(new, 'audit_events')
    for name, column in _INDEXES:
        op.create_index(name, 'audit_events', [column])


def upgrade() -> None:
    op.create_table(
        'audit_events_new',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), primary_key=True,
                  autoincrement=True),
        sa.Column('seq', sa.Integer(), nullable=True),
        *_fields(),
        sa.Column('writer', sa.String(32), nullable=False, server_default=''),
        sa.Column('wseq', sa.Integer(), nullable=False, server_default='0'),
        sa.Column('emac', sa.String(64), nullable=True),
        sa.Column('prev_hash', sa.String(64), nullable=True),
        sa.Column('hash', sa.String(64), nullable=True),
        sa.Column('mac', sa.String(64), nullable=True),
        sa.UniqueConstraint('seq'),
    )
    op.execute(f"INSERT INTO audit_events_new (id, seq, {_FIELDS}, writer, wseq, prev_hash, hash, mac) "  # noqa: S608
               f"SELECT seq, seq, {_FIELDS}, '', 0, prev_hash, hash, mac FROM audit_events")
    _replace('audit_events_new')
    if op.get_bind().dialect.name == 'postgresql':  # new ids follow the copied ones
        op.execute("SELECT setval(pg_get_serial_sequence('audit_events', 'id'), "
                   "GREATEST((SELECT MAX(id) FROM audit_events), 1))")
    op.create_table(
        'audit_writers',
        sa.Column('writer', sa.String(32), primary_key=True),
        sa.Column('last_wseq', sa.Integer(), nullable=False),
        sa.Column('mac', sa.String(64), nullable=False),
    )


def downgrade() -> None:
    op.drop_table('audit_writers')
    op.create_table(
        'audit_events_old',
        sa.Column('seq', sa.Integer(), autoincrement=False, primary_key=True),
        *_fields(),
        sa.Column('prev_hash', sa.String(64), nullable=False),
        sa.Column('hash', sa.String(64), nullable=False),
        sa.Column('mac', sa.String(64), nullable=True),
    )
    op.execute(f"INSERT INTO audit_events_old (seq, {_FIELDS}, prev_hash, hash, mac) "  # noqa: S608
               f"SELECT seq, {_FIELDS}, prev_hash, hash, mac FROM audit_events WHERE seq > 0")
    _replace('audit_events_old')
