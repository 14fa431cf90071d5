"""audit retention: the signed records of the audit events archived out of the database

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 12:10:00
"""
from alembic import op
import sqlalchemy as sa

from authsvc.store.models import UtcDateTime


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'audit_archives',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('first_seq', sa.Integer(), nullable=False, unique=True),
        sa.Column('last_seq', sa.Integer(), nullable=False),
        sa.Column('first_prev_hash', sa.String(64), nullable=False),
        sa.Column('last_hash', sa.String(64), nullable=False),
        sa.Column('sha256', sa.String(64), nullable=False),
        sa.Column('file_name', sa.String(200), nullable=False),
        sa.Column('created_at', UtcDateTime(timezone=True), nullable=False),
        sa.Column('mac', sa.String(64), nullable=False),
    )


def downgrade() -> None:
    op.drop_table('audit_archives')
