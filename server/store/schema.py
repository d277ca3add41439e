"""Schema, versioned with ``PRAGMA user_version``: each migration runs once,
in order, inside a transaction."""

from __future__ import annotations

import aiosqlite

MIGRATIONS: list[str] = [
    # 1: the hub
    """
    CREATE TABLE meta(k TEXT PRIMARY KEY, v TEXT);
    INSERT INTO meta(k, v) VALUES ('schema', 'desk1v5');
    CREATE TABLE users(
        id TEXT PRIMARY KEY,
        role TEXT NOT NULL CHECK (role IN ('agent', 'supervisor')),
        name TEXT NOT NULL,
        pw_hash TEXT NOT NULL,
        disabled INTEGER NOT NULL DEFAULT 0,
        max_chats INTEGER NOT NULL DEFAULT 5 CHECK (max_chats BETWEEN 0 AND 5),
        groups TEXT NOT NULL DEFAULT '[]',
        status TEXT NOT NULL DEFAULT 'offline',
        created_at REAL NOT NULL
    );
    CREATE TABLE tokens(
        hash TEXT PRIMARY KEY,
        user_id TEXT NOT NULL REFERENCES users(id),
        session TEXT NOT NULL,
        created_at REAL NOT NULL,
        revoked_at REAL
    );
    CREATE TABLE conversations(
        id TEXT PRIMARY KEY,
        customer_name TEXT NOT NULL,
        channel TEXT NOT NULL,
        flags TEXT NOT NULL,
        lang TEXT NOT NULL,
        token_hash TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('bot', 'queued', 'assigned', 'closed')),
        grp TEXT NOT NULL,
        klass INTEGER NOT NULL,
        asked_at REAL NOT NULL,
        agent_id TEXT,
        assigned_at REAL NOT NULL,
        front INTEGER NOT NULL,
        exclude_agent TEXT,
        created_at REAL NOT NULL,
        closed_at REAL,
        close_reason TEXT NOT NULL,
        closed_by TEXT NOT NULL,
        bot_memory TEXT NOT NULL,
        handoff TEXT NOT NULL,
        transfers INTEGER NOT NULL,
        wrapup_code TEXT NOT NULL,
        wrapup_note TEXT NOT NULL,
        rating TEXT NOT NULL,
        rating_comment TEXT NOT NULL,
        first_response_at REAL,
        -- an assigned chat has exactly one agent, nothing else has one
        CHECK ((state = 'assigned') = (agent_id IS NOT NULL))
    );
    CREATE INDEX conversations_state ON conversations(state);
    CREATE INDEX conversations_token ON conversations(token_hash);
    CREATE INDEX conversations_created ON conversations(created_at);
    CREATE TABLE messages(
        conv_id TEXT NOT NULL REFERENCES conversations(id),
        seq INTEGER NOT NULL,
        msg_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        sender TEXT NOT NULL,
        sender_id TEXT NOT NULL,
        sender_name TEXT NOT NULL,
        text TEXT NOT NULL,
        ts REAL NOT NULL,
        PRIMARY KEY (conv_id, seq)
    ) WITHOUT ROWID;
    CREATE UNIQUE INDEX messages_dedupe ON messages(conv_id, sender_id, msg_id) WHERE msg_id != '';
    CREATE TABLE transfers(
        id INTEGER PRIMARY KEY,
        conv_id TEXT NOT NULL REFERENCES conversations(id),
        from_agent TEXT NOT NULL,
        to_group TEXT NOT NULL,
        to_agent TEXT NOT NULL,
        note TEXT NOT NULL,
        ts REAL NOT NULL
    );
    CREATE TABLE audit(
        id INTEGER PRIMARY KEY,
        ts REAL NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        detail TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    CREATE INDEX audit_action ON audit(action, ts);
    """,
    # 2: the phrasebook (team and personal phrases, usage)
    """
    CREATE TABLE phrases(
        id TEXT PRIMARY KEY,
        scope TEXT NOT NULL CHECK (scope IN ('team', 'personal')),
        owner TEXT,
        code TEXT NOT NULL,
        lang TEXT NOT NULL,
        data TEXT NOT NULL,
        updated_at REAL NOT NULL,
        updated_by TEXT NOT NULL
    );
    CREATE INDEX phrases_owner ON phrases(scope, owner);
    CREATE TABLE phrase_usage(
        agent_id TEXT NOT NULL,
        phrase_id TEXT NOT NULL,
        count INTEGER NOT NULL,
        score REAL NOT NULL,
        score_at REAL NOT NULL,
        last_used REAL NOT NULL,
        PRIMARY KEY (agent_id, phrase_id)
    );
    CREATE TABLE phrase_uses(
        id INTEGER PRIMARY KEY,
        agent_id TEXT NOT NULL,
        phrase_id TEXT NOT NULL,
        conv_id TEXT NOT NULL,
        ts REAL NOT NULL
    );
    CREATE INDEX phrase_uses_ts ON phrase_uses(ts);
    INSERT INTO meta(k, v) VALUES ('phrases_rev', '0');
    """,
    # 3: questions the bot could not answer, for the knowledge team
    """
    CREATE TABLE bot_misses(
        question TEXT PRIMARY KEY,
        sample TEXT NOT NULL,
        count INTEGER NOT NULL,
        first_at REAL NOT NULL,
        last_at REAL NOT NULL
    );
    CREATE INDEX bot_misses_count ON bot_misses(count);
    """,
    # 4: who served a chat last, and when it was rated (supervisor figures, weekly report)
    """
    ALTER TABLE conversations ADD COLUMN last_agent TEXT NOT NULL DEFAULT '';
    ALTER TABLE conversations ADD COLUMN rated_at REAL;
    CREATE INDEX conversations_closed ON conversations(closed_at);
    CREATE INDEX conversations_agent ON conversations(last_agent);
    """,
    # 5: messages in arrival order. Clustered by (conv_id, seq), each group
    # commit rewrote one leaf page per conversation it touched, twice with the
    # dedupe index: kilobytes of WAL per message. Appended by rowid, the rows
    # share pages and only the small (conv_id, seq) index is scattered. The
    # dedupe of resends is the hub's (restored from the rows at start).
    """
    CREATE TABLE messages_v5(
        id INTEGER PRIMARY KEY,
        conv_id TEXT NOT NULL REFERENCES conversations(id),
        seq INTEGER NOT NULL,
        msg_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        sender TEXT NOT NULL,
        sender_id TEXT NOT NULL,
        sender_name TEXT NOT NULL,
        text TEXT NOT NULL,
        ts REAL NOT NULL
    );
    INSERT INTO messages_v5(conv_id, seq, msg_id, kind, sender, sender_id, sender_name, text, ts)
        SELECT conv_id, seq, msg_id, kind, sender, sender_id, sender_name, text, ts
        FROM messages ORDER BY ts, conv_id, seq;
    DROP TABLE messages;
    ALTER TABLE messages_v5 RENAME TO messages;
    CREATE UNIQUE INDEX messages_conv_seq ON messages(conv_id, seq);
    """,
    # 6: which run of the hub numbered a message. A message is shown once it
    # is written and acked once it is synced, so a power cut can take back a
    # shown one and the next run reuse its seq; a client's cursor names the
    # run too, and a cursor whose (seq, epoch) is not stored gets a resync.
    """
    ALTER TABLE messages ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;
    INSERT OR IGNORE INTO meta(k, v) VALUES ('epoch', '0');
    """,
]


async def migrate(conn: aiosqlite.Connection) -> int:
    """Bring the database to the newest schema; returns the version.

    The version is read inside the write transaction that applies the next
    migration, so two processes opening an old file at once (a hub and a
    CLI) cannot both apply it."""
    while True:
        await conn.execute("BEGIN IMMEDIATE")
        try:
            async with conn.execute("PRAGMA user_version") as cur:
                row = await cur.fetchone()
            version = row[0] if row else 0
            if version > len(MIGRATIONS):
                raise RuntimeError(
                    f"database schema {version} is newer than this hub ({len(MIGRATIONS)}); upgrade the hub"
                )
            if version == len(MIGRATIONS):
                await conn.execute("COMMIT")
                return version
            for stmt in (s.strip() for s in MIGRATIONS[version].split(";")):
                if stmt:
                    await conn.execute(stmt)
            await conn.execute(f"PRAGMA user_version={version + 1}")
            await conn.execute("COMMIT")
        except BaseException:
            await conn.execute("ROLLBACK")
            raise
