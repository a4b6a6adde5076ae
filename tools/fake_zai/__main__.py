"""`python -m tools.fake_zai --host 127.0.0.1 --port N [--scenario SPEC] [--processes K]`

Serves the fake until SIGTERM/SIGINT. With K > 1 the processes share the port through
SO_REUSEPORT (the kernel spreads connections), so a benchmark can give the fake more than one
core; each process then has its own recorder, counters and default scenario, so use
`--processes 1` wherever a test reads `/_fake/*` back.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import queue
import signal
import sys
import time

from . import server
from .scenarios import ScenarioError, parse


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tools.fake_zai",
                                     description="Fake Z.AI upstream for tests and benchmarks.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (1 process)")
    parser.add_argument("--scenario", default=None, help="default scenario, e.g. 'ok;chunks=20'")
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--record-limit", type=int, default=10_000,
                        help="requests kept in memory per process (0 keeps none)")
    parser.add_argument("--port-file", default=None, help="write the bound port here when ready")
    args = parser.parse_args(argv)
    try:
        parse(args.scenario)
    except ScenarioError as exc:
        parser.error(str(exc))
    if args.processes < 1:
        parser.error("--processes must be at least 1")
    if args.processes > 1 and args.port == 0:
        parser.error("--processes > 1 needs an explicit --port (they share it)")
    return args


async def _serve(args: argparse.Namespace, reuse_port: bool, ready) -> None:
    state = server.State(args.scenario, args.record_limit)
    runner, port = await server.start(state, args.host, args.port, reuse_port=reuse_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    ready(port)
    await stop.wait()
    await runner.cleanup()


def _announce(args: argparse.Namespace, port: int) -> None:
    if args.port_file:
        with open(args.port_file, "w") as handle:
            handle.write(f"{port}\n")
    print(f"fake-zai listening on http://{args.host}:{port} "
          f"({args.processes} process{'es' if args.processes > 1 else ''})", flush=True)


def _child(args: argparse.Namespace, ready_queue) -> None:
    asyncio.run(_serve(args, True, ready_queue.put))


def _wait_ready(children, ready_queue, timeout: float = 30.0) -> int | None:
    started, port = 0, None
    deadline = time.monotonic() + timeout
    while started < len(children) and time.monotonic() < deadline:
        if any(child.exitcode is not None for child in children):
            return None
        try:
            port = ready_queue.get(timeout=0.1)
            started += 1
        except queue.Empty:
            pass
    return port if started == len(children) else None


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    if args.processes == 1:
        asyncio.run(_serve(args, False, lambda port: _announce(args, port)))
        return 0
    context = multiprocessing.get_context("fork")
    ready_queue = context.Queue()
    children = [context.Process(target=_child, args=(args, ready_queue), daemon=True)
                for _ in range(args.processes)]
    for child in children:
        child.start()
    port = _wait_ready(children, ready_queue)
    if port is None:
        # A child failed to bind or crashed (its traceback is on stderr): fail as a whole.
        for child in children:
            child.terminate()
        print("fake-zai: not every process started", file=sys.stderr)
        return 1
    _announce(args, port)

    def forward(signum, _frame):
        for child in children:
            if child.is_alive():
                child.terminate()

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for child in children:
        child.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
