"""The first schema: keys, scenarios, jobs, recommendations and the audit trail.

Revision ID: 0001
Revises:
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.Column("revoked_at", sa.String(40)),
    )
    op.create_table(
        "scenarios",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("yaml", sa.Text, nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.Column("created_by", sa.String(32)),
        sa.UniqueConstraint("name", "version", name="uq_scenario_name_version"),
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("status", sa.String(20), nullable=False, index=True),
        sa.Column("progress", sa.Float, nullable=False),
        sa.Column("scenario", sa.String(200), nullable=False),
        sa.Column("fingerprint", sa.String(64)),
        sa.Column("params", sa.Text, nullable=False),
        sa.Column("argv", sa.Text, nullable=False),
        sa.Column("cache_key", sa.String(64), nullable=False, index=True),
        sa.Column("result", sa.Text),
        sa.Column("error", sa.Text),
        sa.Column("has_report", sa.Boolean, nullable=False),
        sa.Column("recommendation_id", sa.String(32)),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.Column("created_by", sa.String(32)),
        sa.Column("started_at", sa.String(40)),
        sa.Column("finished_at", sa.String(40)),
        sa.Column("heartbeat_at", sa.Float),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("worker", sa.String(64)),
        sa.Column("cancel_requested", sa.Boolean, nullable=False),
    )
    op.create_table(
        "recommendations",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("scenario", sa.String(200), nullable=False),
        sa.Column("job_id", sa.String(32)),
        sa.Column("document", sa.Text, nullable=False),
        sa.Column("status", sa.String(20), nullable=False, index=True),
        sa.Column("problems", sa.Text),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.Column("created_by", sa.String(32)),
        sa.Column("approved_by", sa.String(32)),
        sa.Column("approved_at", sa.String(40)),
        sa.Column("expires_at", sa.String(40)),
        sa.Column("updated_at", sa.String(40), nullable=False),
        sa.Column("last_push", sa.Text),
    )
    op.create_table(
        "audit",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("entry", sa.Text, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )


def downgrade() -> None:
    for name in ("audit_head", "audit", "recommendations", "jobs", "scenarios", "api_keys"):
        op.drop_table(name)
