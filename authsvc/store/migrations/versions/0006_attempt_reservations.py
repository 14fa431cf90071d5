"""attempt reservations: the lockout's attempts in flight, which lapse when never decided

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 03:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('logon_throttle', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pending', sa.Text(), nullable=False, server_default='{}'))


def downgrade() -> None:
    with op.batch_alter_table('logon_throttle', schema=None) as batch_op:
        batch_op.drop_column('pending')
