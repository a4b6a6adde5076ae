"""Instructions per proxied request, counted by valgrind's callgrind: a figure that does not move
with the load of a shared machine, where CPU time per request can vary by ±30 % between runs.

    python -m bench.instructions [--baseline REV] [--requests 320] [--clients 16]

Runs zai-proxy with production's settings (one gunicorn worker, counting off, rate limiting off)
under `valgrind --tool=callgrind`, sends warm-up requests, zeroes the counters, sends N
non-streaming requests from C concurrent clients (the benchmark's `ok;chunks=20` answer), dumps
the counters and reports instructions per request (worker and master, user space; the kernel's
share is not counted). With --baseline, the same for git revision REV (extracted with git
archive), and the ratio. Needs valgrind (Debian: `apt-get install valgrind`); about 3 minutes per
tree on 2 cores.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import requests

from . import contestants as C
from .procs import ROOT, free_port

BODY = {"model": "glm-4.7@ok;chunks=20", "messages": [{"role": "user", "content": "Say hello."}]}


def measure(root: Path, label: str, origin: str, work: Path, requests_n: int,
            clients: int) -> dict:
    port = free_port()
    env = C.base_env() | {
        "PORT": str(port), "ZAI_BASE_URL": origin, "ZAI_API_KEY": C.UPSTREAM_KEY,
        "WEB_CONCURRENCY": "1", "MAX_WORKERS": str(max(64, clients * 2)),
        "RATE_LIMIT_ENABLED": "false", "RATE_LIMIT_STATE_FILE": "", "GRACEFUL_TIMEOUT": "5s",
        "DEPLOYMENT_VARIANT": "production", "TOKEN_COUNTING_ENABLED": "false",
        "LOG_LEVEL": "info", "PROMETHEUS_MULTIPROC_DIR": str(work / f"{label}-metrics"),
    }
    out = work / f"{label}.%p.out"
    log = open(work / f"{label}.log", "wb")
    proc = subprocess.Popen(["valgrind", "--tool=callgrind", "--trace-children=yes",
                             f"--callgrind-out-file={out}", C.PYTHON, "-m", "gunicorn", "-c",
                             "gunicorn.conf.py", "app:create_app()"],
                            cwd=root / "image", env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                if requests.get(base + "/readyz", timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{label}: the proxy did not start (see {work}/{label}.log)")
            time.sleep(1)
        _drive(base, 30, 1)
        pids = [str(proc.pid)] + [str(p.pid) for p in psutil.Process(proc.pid).children()]
        for pid in pids:
            subprocess.run(["callgrind_control", "-z", pid], check=True, capture_output=True)
        _drive(base, requests_n, clients)
        for pid in pids:
            subprocess.run(["callgrind_control", "-d", pid], check=True, capture_output=True)
        time.sleep(2)
        total = 0
        for pid in pids:
            for line in (work / f"{label}.{pid}.out.1").read_text().splitlines():
                if line.startswith("summary:"):
                    total += int(line.split()[1])
        return {"label": label, "requests": requests_n, "clients": clients,
                "instructions": total, "per_request": total / requests_n}
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _drive(base: str, total: int, clients: int) -> None:
    url = base + "/v1/chat/completions"

    def client(count: int) -> None:
        with requests.Session() as session:
            for _ in range(count):
                response = session.post(url, json=BODY, timeout=120)
                if response.status_code != 200:
                    raise RuntimeError(f"answer {response.status_code}: {response.text[:200]}")

    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, [total // clients] * clients))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.instructions")
    parser.add_argument("--baseline", default=None, metavar="REV")
    parser.add_argument("--requests", type=int, default=320)
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args(argv)
    if not shutil.which("valgrind") or not shutil.which("callgrind_control"):
        sys.exit("valgrind is missing (Debian: apt-get install valgrind)")
    work = Path(tempfile.mkdtemp(prefix="zai-instructions-"))
    fake, origin = C.start_fake(work, C.Layout(None, None))
    total = args.requests - args.requests % args.clients
    try:
        results = [measure(ROOT, "current", origin, work, total, args.clients)]
        if args.baseline:
            results.append(measure(C.checkout(args.baseline, work), "baseline", origin, work,
                                   total, args.clients))
    finally:
        fake.stop()
    for result in results:
        print(f"{result['label']:<9} {result['per_request'] / 1e6:.3f} M instructions per request "
              f"({result['requests']} requests, {result['clients']} clients)")
    if len(results) == 2:
        print(f"current ÷ baseline ({args.baseline}): "
              f"{results[0]['per_request'] / results[1]['per_request']:.3f}")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
