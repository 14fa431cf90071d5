"""device keys and samples: one device per key, for good; company-bound terminals; the keyed
digests of the palm samples seen per person

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 03:00:00

Existing devices get the SHA-256 fingerprint of their key. If the database already holds a key
under more than one device (possible before this revision: a revoked terminal's key registered
again under a new ID, or one key under two IDs), the oldest row (registered first) keeps the
fingerprint and its state; every newer one is revoked with reason "duplicate key", its
identifier released (tombstoned), and its fingerprint left NULL (the key stays blocked by the
oldest row). The migration cannot extend the audit chain, so it says so on stderr (a WARNING
naming the devices) and the reason shows in `authsvc device list`. See
docs/decisions/0003-vein.md §8.
"""
import hashlib
import logging
from datetime import UTC, datetime

from alembic import op
import sqlalchemy as sa
import authsvc.store.models


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

log = logging.getLogger("authsvc.migrations")

devices = sa.table(
    'devices',
    sa.column('id', sa.Integer()),
    sa.column('device_id', sa.String()),
    sa.column('public_key', sa.LargeBinary()),
    sa.column('key_fingerprint', sa.String()),
    sa.column('status', sa.String()),
    sa.column('reason', sa.String()),
    sa.column('registered_at', authsvc.store.models.UtcDateTime(timezone=True)),
    sa.column('status_changed_at', authsvc.store.models.UtcDateTime(timezone=True)),
)
identifiers = sa.table(
    'identifiers',
    sa.column('kind', sa.String()),
    sa.column('holder_id', sa.Integer()),
    sa.column('released_at', authsvc.store.models.UtcDateTime(timezone=True)),
)


def _fill_fingerprints() -> None:
    conn = op.get_bind()
    now = datetime.now(UTC)
    holders: dict[str, str] = {}
    retired: list[str] = []
    rows = conn.execute(sa.select(devices.c.id, devices.c.device_id, devices.c.public_key,
                                  devices.c.status)
                        .order_by(devices.c.registered_at, devices.c.id)).all()
    for row in rows:
        fingerprint = hashlib.sha256(bytes(row.public_key)).hexdigest()
        if fingerprint not in holders:
            holders[fingerprint] = row.device_id
            conn.execute(devices.update().where(devices.c.id == row.id)
                         .values(key_fingerprint=fingerprint))
            continue
        retired.append(f"{row.device_id} (key of {holders[fingerprint]})")
        if row.status != 'revoked':
            conn.execute(devices.update().where(devices.c.id == row.id)
                         .values(status='revoked', reason='duplicate key', status_changed_at=now))
            conn.execute(identifiers.update()
                         .where(identifiers.c.kind == 'device', identifiers.c.holder_id == row.id)
                         .values(holder_id=None, released_at=now))
    if retired:
        log.warning("migration 0005: a device key was registered more than once; the oldest device "
                    "keeps it, these are revoked (reason \"duplicate key\", not in the audit log): %s",
                    ", ".join(retired))


def upgrade() -> None:
    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('key_fingerprint', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('company', sa.String(length=200), nullable=True))

    with op.batch_alter_table('vein_enrolments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('seen_samples', sa.LargeBinary(), nullable=True))

    _fill_fingerprints()

    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_devices_key_fingerprint'), ['key_fingerprint'], unique=True)


def downgrade() -> None:
    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_devices_key_fingerprint'))

    with op.batch_alter_table('vein_enrolments', schema=None) as batch_op:
        batch_op.drop_column('seen_samples')

    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.drop_column('company')
        batch_op.drop_column('key_fingerprint')
