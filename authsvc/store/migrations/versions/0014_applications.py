"""usage applications ([11 of 12], R21): companies with their subscription state and folder,
contract conclusion and eligibility, applications and the rosters they are checked against

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 14:00:00
"""
from alembic import op
import sqlalchemy as sa

from authsvc.store.models import UtcDateTime


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('contracts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('concluded_on', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('eligibility', sa.String(16), nullable=True))
        batch_op.add_column(sa.Column('exemption_note', sa.String(200), nullable=True))
        batch_op.add_column(sa.Column('prime_contract_id', sa.Integer(), nullable=True))
    op.create_table(
        'companies',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('name', sa.String(200), nullable=False, unique=True),
        sa.Column('subscription', sa.String(16), nullable=False),
        sa.Column('subscribed_on', sa.Date(), nullable=True),
        sa.Column('folder', sa.String(100), nullable=True),
        sa.Column('updated_by', sa.String(100), nullable=False),
        sa.Column('updated_at', UtcDateTime(timezone=True), nullable=False),
    )
    op.create_table(
        'applications',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('kind', sa.String(16), nullable=False),
        sa.Column('contract_id', sa.Integer(), sa.ForeignKey('contracts.id'), nullable=False),
        sa.Column('company', sa.String(200), nullable=False),
        sa.Column('submitter_company', sa.String(200), nullable=False),
        sa.Column('batch', sa.String(32), nullable=False),
        sa.Column('state', sa.String(16), nullable=False),
        sa.Column('file_name', sa.String(200), nullable=False),
        sa.Column('sha256', sa.String(64), nullable=False),
        sa.Column('rows', sa.Text(), nullable=False),
        sa.Column('submitted_by', sa.String(100), nullable=False),
        sa.Column('submitted_at', UtcDateTime(timezone=True), nullable=False),
        sa.Column('checked_by', sa.String(100), nullable=True),
        sa.Column('checked_at', UtcDateTime(timezone=True), nullable=True),
        sa.Column('approved_by', sa.String(100), nullable=True),
        sa.Column('approved_at', UtcDateTime(timezone=True), nullable=True),
        sa.Column('issued_by', sa.String(100), nullable=True),
        sa.Column('issued_at', UtcDateTime(timezone=True), nullable=True),
        sa.Column('rejected_by', sa.String(100), nullable=True),
        sa.Column('rejected_at', UtcDateTime(timezone=True), nullable=True),
        sa.Column('reason', sa.String(200), nullable=False),
        sa.Column('sheets', sa.Text(), nullable=False),
    )
    op.create_index('ix_applications_contract_id', 'applications', ['contract_id'])
    op.create_index('ix_applications_company', 'applications', ['company'])
    op.create_index('ix_applications_batch', 'applications', ['batch'])
    op.create_index('ix_applications_state', 'applications', ['state'])
    op.create_table(
        'roster_entries',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('contract_id', sa.Integer(), sa.ForeignKey('contracts.id'), nullable=False),
        sa.Column('kind', sa.String(16), nullable=False),
        sa.Column('name_key', sa.String(200), nullable=False),
        sa.Column('birth_date', sa.Date(), nullable=True),
        sa.Column('staff_number', sa.String(64), nullable=True),
        sa.Column('uploaded_by', sa.String(100), nullable=False),
        sa.Column('uploaded_at', UtcDateTime(timezone=True), nullable=False),
    )
    op.create_index('ix_roster_entries_contract_kind', 'roster_entries', ['contract_id', 'kind'])


def downgrade() -> None:
    op.drop_index('ix_roster_entries_contract_kind', table_name='roster_entries')
    op.drop_table('roster_entries')
    for name in ('state', 'batch', 'company', 'contract_id'):
        op.drop_index(f'ix_applications_{name}', table_name='applications')
    op.drop_table('applications')
    op.drop_table('companies')
    with op.batch_alter_table('contracts', schema=None) as batch_op:
        batch_op.drop_column('prime_contract_id')
        batch_op.drop_column('exemption_note')
        batch_op.drop_column('eligibility')
        batch_op.drop_column('concluded_on')
