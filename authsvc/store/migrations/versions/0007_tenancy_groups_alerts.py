"""administration for many companies: departures, remote approval and maintenance windows on
accounts; groups with their members; the alert inbox

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 05:30:00
"""
from alembic import op
import sqlalchemy as sa

from authsvc.store.models import UtcDateTime


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('leaves_at', UtcDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('remote_until', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('window_starts_at', UtcDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('window_ends_at', UtcDateTime(timezone=True), nullable=True))
    op.create_table(
        'groups',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('company', sa.String(200), nullable=False),
        sa.Column('name', sa.String(100), nullable=False),
        sa.Column('factors', sa.Text(), nullable=False),
        sa.Column('services', sa.Text(), nullable=False),
        sa.Column('created_by', sa.String(100), nullable=False),
        sa.Column('created_at', UtcDateTime(timezone=True), nullable=False),
    )
    op.create_index('ix_groups_company_name', 'groups', ['company', 'name'], unique=True)
    op.create_table(
        'group_members',
        sa.Column('group_id', sa.Integer(), sa.ForeignKey('groups.id'), primary_key=True),
        sa.Column('account_id', sa.Integer(), sa.ForeignKey('accounts.id'), primary_key=True),
        sa.Column('requested_by', sa.String(100), nullable=False),
        sa.Column('requested_at', UtcDateTime(timezone=True), nullable=False),
        sa.Column('approved_by', sa.String(100), nullable=True),
        sa.Column('approved_at', UtcDateTime(timezone=True), nullable=True),
    )
    op.create_table(
        'alerts',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('company', sa.String(200), nullable=True),
        sa.Column('kind', sa.String(64), nullable=False),
        sa.Column('subject', sa.String(100), nullable=False),
        sa.Column('detail', sa.Text(), nullable=False),
        sa.Column('raised_at', UtcDateTime(timezone=True), nullable=False),
        sa.Column('acknowledged_by', sa.String(100), nullable=True),
        sa.Column('acknowledged_at', UtcDateTime(timezone=True), nullable=True),
    )
    op.create_index('ix_alerts_company', 'alerts', ['company'])
    op.create_index('ix_alerts_raised_at', 'alerts', ['raised_at'])


def downgrade() -> None:
    op.drop_table('alerts')
    op.drop_table('group_members')
    op.drop_index('ix_groups_company_name', table_name='groups')
    op.drop_table('groups')
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        for column in ('window_ends_at', 'window_starts_at', 'remote_until', 'leaves_at'):
            batch_op.drop_column(column)
