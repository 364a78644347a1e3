"""Storage: SQLModel tables, engines and sessions, migrations."""

from bot.store.db import is_postgres, make_engine, normalize_url, session_scope

__all__ = ["is_postgres", "make_engine", "normalize_url", "session_scope"]
