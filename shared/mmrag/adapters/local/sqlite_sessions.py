"""Chat sessions in SQLite, keyed by (tenant, session id)."""

from __future__ import annotations

import json
from pathlib import Path

from mmrag.adapters.local.sqlite_db import SqliteDb
from mmrag.core.models import SESSION_QUESTION_CHARS, Session, SessionMessage, SessionSummary, utcnow

SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    tenant TEXT NOT NULL,
    session_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (tenant, session_id)
);
CREATE TABLE IF NOT EXISTS session_messages (
    tenant TEXT NOT NULL,
    session_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    message_id TEXT NOT NULL,
    role TEXT NOT NULL,
    content TEXT NOT NULL,
    images TEXT NOT NULL,
    sources TEXT NOT NULL,
    timestamp TEXT NOT NULL,
    PRIMARY KEY (tenant, session_id, seq)
);
CREATE INDEX IF NOT EXISTS sessions_recent ON sessions(tenant, updated_at);
"""


class SqliteSessionStore:
    def __init__(self, path: Path):
        self.db = SqliteDb(path, SCHEMA)

    def get_session(self, tenant: str, session_id: str) -> Session | None:
        rows = self.db.query("SELECT * FROM sessions WHERE tenant = ? AND session_id = ?", (tenant, session_id))
        if not rows:
            return None
        msgs = self.db.query(
            "SELECT * FROM session_messages WHERE tenant = ? AND session_id = ? ORDER BY seq", (tenant, session_id)
        )
        return Session(
            session_id=session_id,
            tenant=tenant,
            created_at=rows[0]["created_at"],
            updated_at=rows[0]["updated_at"],
            messages=[
                SessionMessage(
                    message_id=m["message_id"],
                    role=m["role"],
                    content=m["content"],
                    images=json.loads(m["images"]),
                    sources=json.loads(m["sources"]),
                    timestamp=m["timestamp"],
                )
                for m in msgs
            ],
        )

    def append_messages(self, tenant: str, session_id: str, messages: list[SessionMessage]) -> Session:
        now = utcnow()
        with self.db.tx() as conn:
            conn.execute(
                "INSERT INTO sessions (tenant, session_id, created_at, updated_at) VALUES (?,?,?,?) "
                "ON CONFLICT (tenant, session_id) DO UPDATE SET updated_at = excluded.updated_at",
                (tenant, session_id, now, now),
            )
            seq = conn.execute(
                "SELECT coalesce(max(seq), -1) FROM session_messages WHERE tenant = ? AND session_id = ?",
                (tenant, session_id),
            ).fetchone()[0]
            for i, m in enumerate(messages, start=seq + 1):
                conn.execute(
                    "INSERT INTO session_messages (tenant, session_id, seq, message_id, role, content, images, "
                    "sources, timestamp) VALUES (?,?,?,?,?,?,?,?,?)",
                    (
                        tenant,
                        session_id,
                        i,
                        m.message_id,
                        m.role,
                        m.content,
                        json.dumps(m.images, ensure_ascii=False),
                        json.dumps(m.sources, ensure_ascii=False),
                        m.timestamp,
                    ),
                )
        session = self.get_session(tenant, session_id)
        assert session is not None
        return session

    def delete_session(self, tenant: str, session_id: str) -> int | None:
        with self.db.tx() as conn:
            if not conn.execute(
                "SELECT 1 FROM sessions WHERE tenant = ? AND session_id = ?", (tenant, session_id)
            ).fetchone():
                return None
            n = conn.execute(
                "DELETE FROM session_messages WHERE tenant = ? AND session_id = ?", (tenant, session_id)
            ).rowcount
            conn.execute("DELETE FROM sessions WHERE tenant = ? AND session_id = ?", (tenant, session_id))
        return n

    def list_sessions(self, tenant: str, *, page: int = 1, page_size: int = 20) -> tuple[int, list[SessionSummary]]:
        total = self.db.query("SELECT count(*) FROM sessions WHERE tenant = ?", (tenant,))[0][0]
        rows = self.db.query(
            "SELECT s.session_id, s.created_at, s.updated_at, "
            "(SELECT count(*) FROM session_messages m WHERE m.tenant = s.tenant AND m.session_id = s.session_id) "
            "AS message_count, "
            "(SELECT substr(m.content, 1, ?) FROM session_messages m WHERE m.tenant = s.tenant "
            "AND m.session_id = s.session_id AND m.role = 'user' ORDER BY m.seq LIMIT 1) AS first_question "
            "FROM sessions s WHERE s.tenant = ? ORDER BY s.updated_at DESC, s.session_id DESC LIMIT ? OFFSET ?",
            (SESSION_QUESTION_CHARS, tenant, page_size, (page - 1) * page_size),
        )
        return total, [
            SessionSummary(
                session_id=r["session_id"],
                created_at=r["created_at"],
                updated_at=r["updated_at"],
                message_count=r["message_count"],
                first_question=r["first_question"] or "",
            )
            for r in rows
        ]
