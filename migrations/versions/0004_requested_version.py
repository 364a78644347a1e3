"""approval requests remember whether the requester named the target version

Existing requests are treated as named (the approval re-renders the plan for their target,
as before).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 03:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("approval_request", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "requested_version",
                sqlmodel.sql.sqltypes.AutoString(length=100),
                nullable=True,
            )
        )
    op.execute("UPDATE approval_request SET requested_version = to_version")


def downgrade() -> None:
    with op.batch_alter_table("approval_request", schema=None) as batch_op:
        batch_op.drop_column("requested_version")
