"""service clients: processes acting for the gateway with identifiers of their own (R6)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 09:00:00
"""
from alembic import op
import sqlalchemy as sa

from authsvc.store.models import UtcDateTime


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'service_clients',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('client_id', sa.String(64), nullable=False),
        sa.Column('company', sa.String(200), nullable=True),
        sa.Column('scopes', sa.Text(), nullable=False),
        sa.Column('secret_hash', sa.String(512), nullable=True),
        sa.Column('status', sa.String(16), nullable=False),
        sa.Column('created_by', sa.String(100), nullable=False),
        sa.Column('created_at', UtcDateTime(timezone=True), nullable=False),
        sa.Column('approved_by', sa.String(100), nullable=True),
        sa.Column('approved_at', UtcDateTime(timezone=True), nullable=True),
        sa.Column('rotated_at', UtcDateTime(timezone=True), nullable=True),
        sa.Column('last_used_at', UtcDateTime(timezone=True), nullable=True),
        sa.Column('status_changed_at', UtcDateTime(timezone=True), nullable=False),
    )
    op.create_index('ix_service_clients_client_id', 'service_clients', ['client_id'])


def downgrade() -> None:
    op.drop_index('ix_service_clients_client_id', table_name='service_clients')
    op.drop_table('service_clients')
