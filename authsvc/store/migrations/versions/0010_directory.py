"""directory sync ([9 of 12]): the entries each company's directory fed, and the runs

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 12:00:00
"""
from alembic import op
import sqlalchemy as sa

from authsvc.store.models import UtcDateTime


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'directory_entries',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('company', sa.String(200), nullable=False),
        sa.Column('entry_id', sa.String(128), nullable=False),
        sa.Column('kind', sa.String(8), nullable=False),
        sa.Column('dn', sa.Text(), nullable=False),
        sa.Column('dn_key', sa.String(1000), nullable=False),
        sa.Column('subject', sa.String(100), nullable=False),
        sa.Column('digest', sa.String(64), nullable=False),
        sa.Column('seen_at', UtcDateTime(timezone=True), nullable=False),
        sa.Column('removed_at', UtcDateTime(timezone=True), nullable=True),
    )
    op.create_index('ix_directory_entries_company_entry', 'directory_entries', ['company', 'entry_id'],
                    unique=True)
    op.create_index('ix_directory_entries_seen_at', 'directory_entries', ['seen_at'])
    op.create_index('ix_directory_entries_company_dn', 'directory_entries', ['company', 'dn_key'])
    op.create_table(
        'directory_runs',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('company', sa.String(200), nullable=False),
        sa.Column('mode', sa.String(16), nullable=False),
        sa.Column('dry_run', sa.Boolean(), nullable=False),
        sa.Column('actor', sa.String(100), nullable=False),
        sa.Column('started_at', UtcDateTime(timezone=True), nullable=False),
        sa.Column('finished_at', UtcDateTime(timezone=True), nullable=True),
        sa.Column('result', sa.String(16), nullable=False),
        sa.Column('high_water', sa.String(64), nullable=True),
        sa.Column('counts', sa.Text(), nullable=False),
        sa.Column('error', sa.String(500), nullable=True),
    )
    op.create_index('ix_directory_runs_company', 'directory_runs', ['company'])


def downgrade() -> None:
    op.drop_index('ix_directory_runs_company', table_name='directory_runs')
    op.drop_table('directory_runs')
    op.drop_index('ix_directory_entries_company_dn', table_name='directory_entries')
    op.drop_index('ix_directory_entries_seen_at', table_name='directory_entries')
    op.drop_index('ix_directory_entries_company_entry', table_name='directory_entries')
    op.drop_table('directory_entries')
