# The settings the suite runs with (runtests.py --settings=test_sqlite): the default cache is
# SQLite, in memory so every run starts empty; "memory" is the in-process backend.
CACHES = {
    "default": {
        "BACKEND": "hoard.backends.sqlite.SQLiteCache",
        "LOCATION": ":memory:",
    },
    "memory": {
        "BACKEND": "hoard.backends.memory.MemoryCache",
    },
}
