"""Design probe: CPU per upstream call of the HTTP clients a proxy could use, against the fake,
sequentially on one connection (so only the client's own work differs).

    python -m bench.prototypes.client_cost [--calls 3000]

Prints one line per client: CPU µs per call (user + system of this process) and wall µs per call.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from pathlib import Path

from .. import contestants as C

BODY = json.dumps({"model": "glm-4.7@ok;chunks=20",
                   "messages": [{"role": "user", "content": "Say hello."}]}).encode()
HEADERS = {"Content-Type": "application/json", "Authorization": "Bearer k"}


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def measure(name, call, calls: int) -> dict:
    for _ in range(200):
        call()
    c0, t0 = _cpu(), time.perf_counter()
    for _ in range(calls):
        call()
    c1, t1 = _cpu(), time.perf_counter()
    return {"client": name, "cpu_us_per_call": round((c1 - c0) / calls * 1e6, 1),
            "wall_us_per_call": round((t1 - t0) / calls * 1e6, 1)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=3000)
    args = parser.parse_args(argv)
    import tempfile
    work = Path(tempfile.mkdtemp(prefix="client-cost-"))
    layout = C.Layout.detect()
    fake, origin = C.start_fake(work, layout)
    url = origin + "/api/paas/v4/chat/completions"
    results = []
    try:
        import requests
        session = requests.Session()
        session.trust_env = False

        def with_requests():
            r = session.request("POST", url, data=BODY, headers=HEADERS, stream=True,
                                allow_redirects=False, timeout=(10, 300))
            r.raw.read()
            r.close()
        results.append(measure("requests.Session (as zai-proxy uses it)", with_requests,
                               args.calls))

        import urllib3
        pool = urllib3.HTTPConnectionPool("127.0.0.1", int(origin.rsplit(":", 1)[1]),
                                          maxsize=4, retries=False)

        def with_urllib3():
            r = pool.urlopen("POST", "/api/paas/v4/chat/completions", body=BODY,
                             headers=HEADERS, preload_content=False, retries=False,
                             redirect=False, timeout=urllib3.Timeout(connect=10, read=300))
            r.read()
            r.release_conn()
        results.append(measure("urllib3 pool directly", with_urllib3, args.calls))

        import aiohttp

        async def run_aiohttp():
            async with aiohttp.ClientSession(auto_decompress=False) as s:
                async def call():
                    async with s.post(url, data=BODY, headers=HEADERS) as r:
                        await r.read()
                for _ in range(200):
                    await call()
                c0, t0 = _cpu(), time.perf_counter()
                for _ in range(args.calls):
                    await call()
                c1, t1 = _cpu(), time.perf_counter()
                return {"client": "aiohttp ClientSession (asyncio)",
                        "cpu_us_per_call": round((c1 - c0) / args.calls * 1e6, 1),
                        "wall_us_per_call": round((t1 - t0) / args.calls * 1e6, 1)}
        results.append(asyncio.run(run_aiohttp()))
    finally:
        fake.stop()
    for r in results:
        print(json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
