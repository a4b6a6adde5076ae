"""The fault and load suite: what the proxy does when the upstream, the clients, the load, a
restart or Redis misbehave, checked against real gunicorn proxies and the fake Z.AI.

    faults.py         the upstream fault matrix as data (fault → expectation per streaming mode)
    raw_faults.py     its byte-level faults, played by the raw-socket upstream
    upstream.py       runs that matrix: answers, metric deltas, slots, threads, RSS
    client_faults.py  hang-ups at every phase, oversized / malformed requests, path traversal
    slow_clients.py   slowloris heads and bodies, clients that never read: total deadlines
    starvation.py     probe latency while crowds trickle heads, upload slowly, reconnect or
                      never read (issue 10's sizes, default settings)
    load.py           a byte-checked mix of streams and calls (used by the three below)
    soak.py           sustained load: errors, RSS growth, threads
    rolling.py        SIGTERM to each worker, then the master, under load
    shared_state.py   Redis stopped and restarted under load, two pods sharing a budget
    harness.py        the processes under test and what is measured on them
    calls.py, rawhttp.py, table.py   requests and checks; hand-made HTTP; the result table

Every case yields one row: fault → expected → observed. `python -m tools.reliability` (make
reliability) runs everything at full size; tests/test_reliability_fast.py runs it small inside
`make test`. Known proxy findings are marked on their rows (F1…) and described, with the proposed
fixes, in docs/reliability.md.
"""
