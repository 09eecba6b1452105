"""Room for what the columns hold: a scenario fingerprint is ``sha256:`` and 64 hex digits (71
characters, not 64) and a worker's claim token starts with its host name (up to 253). SQLite never
enforced the old lengths; PostgreSQL refused every scenario upload.

Revision ID: 0003
Revises: 0002
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("scenarios") as batch:
        batch.alter_column("fingerprint", type_=sa.String(80), existing_type=sa.String(64), existing_nullable=False)
    with op.batch_alter_table("jobs") as batch:
        batch.alter_column("fingerprint", type_=sa.String(80), existing_type=sa.String(64), existing_nullable=True)
        batch.alter_column("worker", type_=sa.String(300), existing_type=sa.String(64), existing_nullable=True)


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.alter_column("worker", type_=sa.String(64), existing_type=sa.String(300), existing_nullable=True)
        batch.alter_column("fingerprint", type_=sa.String(64), existing_type=sa.String(80), existing_nullable=True)
    with op.batch_alter_table("scenarios") as batch:
        batch.alter_column("fingerprint", type_=sa.String(64), existing_type=sa.String(80), existing_nullable=False)
