"""audit events by time: the reports' periods and the retention cut-off read a range of `ts`

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 13:00:00
"""
from alembic import op


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_audit_ts', 'audit_events', ['ts'])


def downgrade() -> None:
    op.drop_index('ix_audit_ts', table_name='audit_events')
