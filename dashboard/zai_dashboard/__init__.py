"""The zai-proxy dashboard service: a live production-vs-canary page with its own storage.

One gunicorn process (dashboard/gunicorn.conf.py) runs one collector thread that scrapes both
variants every interval, stores per-tick deltas in SQLite, and pushes each tick to the browsers
over SSE. The contract with the UI is dashboard/API.md.
"""
