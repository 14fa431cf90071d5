"""registration

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 02:01:23.598726
"""
from alembic import op
import sqlalchemy as sa
import authsvc.store.models


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('registration_consents',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('given', sa.Boolean(), nullable=False),
    sa.Column('recorded_by', sa.String(length=100), nullable=False),
    sa.Column('recorded_at', authsvc.store.models.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('account_id')
    )
    op.create_table('registration_sessions',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('registrant', sa.String(length=64), nullable=False),
    sa.Column('admin', sa.String(length=64), nullable=True),
    sa.Column('admin_account_id', sa.Integer(), nullable=True),
    sa.Column('company', sa.String(length=200), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('terminal', sa.String(length=100), nullable=False),
    sa.Column('opened_at', authsvc.store.models.UtcDateTime(timezone=True), nullable=False),
    sa.Column('last_activity_at', authsvc.store.models.UtcDateTime(timezone=True), nullable=False),
    sa.Column('ended_at', authsvc.store.models.UtcDateTime(timezone=True), nullable=True),
    sa.Column('reason', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ),
    sa.ForeignKeyConstraint(['admin_account_id'], ['accounts.id'], ),
    sa.ForeignKeyConstraint(['person_id'], ['persons.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('registration_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_registration_sessions_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_registration_sessions_state'), ['state'], unique=False)

    op.create_table('registration_evidence',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('session_id', sa.String(length=64), nullable=False),
    sa.Column('sealed', sa.Text(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('content_type', sa.String(length=32), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('captured_by', sa.String(length=100), nullable=False),
    sa.Column('captured_at', authsvc.store.models.UtcDateTime(timezone=True), nullable=False),
    sa.Column('retain_until', authsvc.store.models.UtcDateTime(timezone=True), nullable=False),
    sa.Column('destroyed_at', authsvc.store.models.UtcDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['session_id'], ['registration_sessions.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('registration_evidence', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_registration_evidence_retain_until'), ['retain_until'], unique=False)
        batch_op.create_index(batch_op.f('ix_registration_evidence_session_id'), ['session_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('registration_evidence', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_registration_evidence_session_id'))
        batch_op.drop_index(batch_op.f('ix_registration_evidence_retain_until'))

    op.drop_table('registration_evidence')
    with op.batch_alter_table('registration_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_registration_sessions_state'))
        batch_op.drop_index(batch_op.f('ix_registration_sessions_account_id'))

    op.drop_table('registration_sessions')
    op.drop_table('registration_consents')
