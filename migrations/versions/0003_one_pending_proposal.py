"""one pending proposal per model, enforced by the database

Requests that an earlier race left pending beside a newer one for the same model are
cancelled first (the newest stays pending), as superseding would have done.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 03:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "UPDATE approval_request SET status = 'cancelled', decided_at = CURRENT_TIMESTAMP "
        "WHERE status = 'pending' AND id NOT IN "
        "(SELECT MAX(id) FROM approval_request WHERE status = 'pending' GROUP BY model)"
    )
    with op.batch_alter_table("approval_request", schema=None) as batch_op:
        batch_op.create_index(
            "uq_approval_request_pending_model",
            ["model"],
            unique=True,
            sqlite_where=sa.text("status = 'pending'"),
            postgresql_where=sa.text("status = 'pending'"),
        )


def downgrade() -> None:
    with op.batch_alter_table("approval_request", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_approval_request_pending_model",
            sqlite_where=sa.text("status = 'pending'"),
            postgresql_where=sa.text("status = 'pending'"),
        )
