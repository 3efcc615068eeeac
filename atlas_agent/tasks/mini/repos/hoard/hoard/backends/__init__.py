"""Cache backends: `memory.MemoryCache` (one process) and `sqlite.SQLiteCache` (a database file)."""
