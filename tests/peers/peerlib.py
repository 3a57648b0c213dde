"""What every component peer of the end-to-end tests shares: the connection
arguments, the single-line output, and running until SIGTERM or a deadline."""
import argparse
import asyncio
import signal
import sys


def out(*parts):
    print(*parts, flush=True)


def component_arguments(description):
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--jid", required=True)
    ap.add_argument("--secret", default="secret")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--run-seconds", type=float, default=120.0)
    return ap


def run_component(component, run_seconds):
    """Connects, runs until SIGTERM/SIGINT or `run_seconds`, disconnects, exits 0."""
    stop = asyncio.Event()
    for s in (signal.SIGTERM, signal.SIGINT):
        component.loop.add_signal_handler(s, stop.set)
    component.connect()

    async def run():
        try:
            await asyncio.wait_for(stop.wait(), timeout=run_seconds)
        except asyncio.TimeoutError:
            pass
        component.disconnect()
        try:
            await asyncio.wait_for(component.disconnected, timeout=5)
        except asyncio.TimeoutError:
            pass

    component.loop.run_until_complete(run())
    sys.exit(0)
