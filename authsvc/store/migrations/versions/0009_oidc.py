"""OpenID provider ([8 of 12]): relying parties as service clients of kind "oidc", their
authorization codes, the grants they issued, and the back-channel logout outbox

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 11:30:00
"""
from alembic import op
import sqlalchemy as sa

from authsvc.store.models import UtcDateTime


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('service_clients', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(16), nullable=False, server_default='service'))
        batch_op.add_column(sa.Column('oidc', sa.Text(), nullable=True))
    op.create_table(
        'oidc_codes',
        sa.Column('code_hash', sa.String(64), primary_key=True),
        sa.Column('client_id', sa.String(64), nullable=False),
        sa.Column('user_id', sa.String(100), nullable=False),
        sa.Column('session_ref', sa.String(64), nullable=False),
        sa.Column('redirect_uri', sa.Text(), nullable=False),
        sa.Column('scope', sa.Text(), nullable=False),
        sa.Column('nonce', sa.String(512), nullable=True),
        sa.Column('code_challenge', sa.String(128), nullable=False),
        sa.Column('code_challenge_method', sa.String(8), nullable=False),
        sa.Column('auth_time', UtcDateTime(timezone=True), nullable=False),
        sa.Column('acr', sa.String(64), nullable=False),
        sa.Column('amr', sa.Text(), nullable=False),
        sa.Column('created_at', UtcDateTime(timezone=True), nullable=False),
        sa.Column('expires_at', UtcDateTime(timezone=True), nullable=False),
        sa.Column('used_at', UtcDateTime(timezone=True), nullable=True),
    )
    op.create_index('ix_oidc_codes_expires_at', 'oidc_codes', ['expires_at'])
    op.create_table(
        'oidc_grants',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('code_hash', sa.String(64), nullable=False),
        sa.Column('client_id', sa.String(64), nullable=False),
        sa.Column('user_id', sa.String(100), nullable=False),
        sa.Column('session_ref', sa.String(64), nullable=False),
        sa.Column('issuer', sa.String(500), nullable=False),
        sa.Column('scope', sa.Text(), nullable=False),
        sa.Column('acr', sa.String(64), nullable=False),
        sa.Column('amr', sa.Text(), nullable=False),
        sa.Column('auth_time', UtcDateTime(timezone=True), nullable=False),
        sa.Column('access_hash', sa.String(64), nullable=True, unique=True),
        sa.Column('access_expires_at', UtcDateTime(timezone=True), nullable=True),
        sa.Column('refresh_hash', sa.String(64), nullable=True, unique=True),
        sa.Column('refresh_expires_at', UtcDateTime(timezone=True), nullable=True),
        sa.Column('issued_at', UtcDateTime(timezone=True), nullable=False),
        sa.Column('revoked_at', UtcDateTime(timezone=True), nullable=True),
        sa.Column('revoked_reason', sa.String(32), nullable=True),
    )
    for col in ('code_hash', 'client_id', 'user_id', 'session_ref'):
        op.create_index(f'ix_oidc_grants_{col}', 'oidc_grants', [col])
    op.create_table(
        'oidc_logouts',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('client_id', sa.String(64), nullable=False),
        sa.Column('user_id', sa.String(100), nullable=False),
        sa.Column('session_ref', sa.String(64), nullable=False),
        sa.Column('issuer', sa.String(500), nullable=False),
        sa.Column('reason', sa.String(32), nullable=False),
        sa.Column('created_at', UtcDateTime(timezone=True), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False, server_default='0'),
        sa.Column('next_at', UtcDateTime(timezone=True), nullable=False),
        sa.Column('delivered_at', UtcDateTime(timezone=True), nullable=True),
        sa.Column('given_up_at', UtcDateTime(timezone=True), nullable=True),
        sa.Column('last_error', sa.String(200), nullable=True),
    )
    op.create_index('ix_oidc_logouts_next_at', 'oidc_logouts', ['next_at'])


def downgrade() -> None:
    op.drop_index('ix_oidc_logouts_next_at', table_name='oidc_logouts')
    op.drop_table('oidc_logouts')
    for col in ('code_hash', 'client_id', 'user_id', 'session_ref'):
        op.drop_index(f'ix_oidc_grants_{col}', table_name='oidc_grants')
    op.drop_table('oidc_grants')
    op.drop_index('ix_oidc_codes_expires_at', table_name='oidc_codes')
    op.drop_table('oidc_codes')
    with op.batch_alter_table('service_clients', schema=None) as batch_op:
        batch_op.drop_column('oidc')
        batch_op.drop_column('kind')
