"""A cache in an SQLite database: a file that several processes share, or ":memory:"."""

from __future__ import annotations

import pickle
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from hoard.backends.base import DEFAULT_TIMEOUT, BaseCache

# an entry is alive until its expiry time; NULL means it never expires
ALIVE = "(expires IS NULL OR expires > ?)"


class SQLiteCache(BaseCache):
    """LOCATION is the database file (":memory:", the default, for a private in-memory database).

    The table (OPTIONS["TABLE"], default "hoard_cache") is created when missing. At
    MAX_ENTRIES expired entries are dropped first, then the ones written longest ago.
    """

    def __init__(self, location: str, params: dict) -> None:
        super().__init__(params)
        self._table = params.get("OPTIONS", {}).get("TABLE", "hoard_cache")
        if not self._table.isidentifier():
            raise ValueError(f"not a table name: {self._table!r}")
        # autocommit: statements that belong together run in an explicit transaction
        self._conn = sqlite3.connect(location or ":memory:", isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()
        self._conn.execute(
            f"CREATE TABLE IF NOT EXISTS {self._table} (key TEXT PRIMARY KEY, value BLOB NOT NULL, expires REAL)"
        )

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _query(self, sql: str, params: tuple | list = ()) -> list[tuple]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        return self._write(key, value, timeout, version, replace=False)

    def get(self, key, default=None, version=None):
        key = self.make_and_validate_key(key, version)
        rows = self._query(f"SELECT value FROM {self._table} WHERE key = ? AND {ALIVE}", (key, self._now()))
        return pickle.loads(rows[0][0]) if rows else default

    def get_many(self, keys, version=None):
        # one query instead of one per key
        stored = {self.make_and_validate_key(key, version): key for key in keys}
        if not stored:
            return {}
        marks = ", ".join("?" * len(stored))
        rows = self._query(
            f"SELECT key, value FROM {self._table} WHERE key IN ({marks}) AND {ALIVE}", [*stored, self._now()]
        )
        return {stored[key]: pickle.loads(value) for key, value in rows}

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        self._write(key, value, timeout, version, replace=True)

    def touch(self, key, timeout=DEFAULT_TIMEOUT, version=None):
        key = self.make_and_validate_key(key, version)
        with self._transaction() as conn:
            cursor = conn.execute(
                f"UPDATE {self._table} SET expires = ? WHERE key = ? AND {ALIVE}",
                (self.get_backend_timeout(timeout), key, self._now()),
            )
        return cursor.rowcount > 0

    def delete(self, key, version=None):
        key = self.make_and_validate_key(key, version)
        with self._transaction() as conn:
            alive = conn.execute(f"SELECT 1 FROM {self._table} WHERE key = ? AND {ALIVE}", (key, self._now()))
            was_alive = alive.fetchone() is not None
            conn.execute(f"DELETE FROM {self._table} WHERE key = ?", (key,))
        return was_alive

    def delete_prefix(self, prefix, version=None):
        pattern = self.make_key(prefix, version) + "%"
        with self._transaction() as conn:
            self._purge_expired(conn)
            cursor = conn.execute(f"DELETE FROM {self._table} WHERE key LIKE ?", (pattern,))
        return cursor.rowcount

    def clear(self):
        with self._lock:
            self._conn.execute(f"DELETE FROM {self._table}")

    def close(self):
        with self._lock:
            self._conn.close()

    def _write(self, key, value, timeout, version, *, replace: bool) -> bool:
        key = self.make_and_validate_key(key, version)
        pickled = pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
        with self._transaction() as conn:
            if not replace:
                taken = conn.execute(f"SELECT 1 FROM {self._table} WHERE key = ? AND {ALIVE}", (key, self._now()))
                if taken.fetchone() is not None:
                    return False
            self._make_room(conn, key)
            conn.execute(
                f"INSERT OR REPLACE INTO {self._table} (key, value, expires) VALUES (?, ?, ?)",
                (key, pickled, self.get_backend_timeout(timeout)),
            )
        return True

    def _purge_expired(self, conn: sqlite3.Connection) -> None:
        conn.execute(f"DELETE FROM {self._table} WHERE expires <= ?", (self._now(),))

    def _make_room(self, conn: sqlite3.Connection, key: str) -> None:
        """Keep the table within MAX_ENTRIES once `key` is written."""
        count = f"SELECT count(*) FROM {self._table} WHERE key != ?"
        if conn.execute(count, (key,)).fetchone()[0] < self._max_entries:
            return
        self._purge_expired(conn)
        excess = conn.execute(count, (key,)).fetchone()[0] - self._max_entries + 1
        if excess > 0:
            # rowid grows with every write (INSERT OR REPLACE makes a new row), so these are the oldest
            conn.execute(
                f"DELETE FROM {self._table} WHERE rowid IN "
                f"(SELECT rowid FROM {self._table} WHERE key != ? ORDER BY rowid LIMIT ?)",
                (key, excess),
            )
