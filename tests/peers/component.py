"""slixmpp XEP-0114 component driven by stanzagate's end-to-end tests.

Connects to the proxy's component listener, echoes every chat/normal message sent to
it ("echo: BODY") and prints one line per event (CONNECTED, ECHO, DISCONNECTED).
Stops on SIGTERM or after --run-seconds.
"""
import argparse
import asyncio
import signal
import sys

import slixmpp


def out(*parts):
    print(*parts, flush=True)


class Component(slixmpp.ComponentXMPP):
    def __init__(self, a):
        super().__init__(a.jid, a.secret, a.host, a.port)
        self.add_event_handler("session_start", lambda _: out("CONNECTED", self.boundjid.full))
        self.add_event_handler("message", self.on_message)
        self.add_event_handler("disconnected", lambda _: out("DISCONNECTED"))
        self.add_event_handler("stream_error", lambda e: out("STREAM-ERROR", e["condition"]))

    def on_message(self, msg):
        if msg["type"] in ("chat", "normal") and msg["body"]:
            out("ECHO", msg["from"], repr(msg["body"]))
            msg.reply("echo: " + msg["body"]).send()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jid", required=True)
    ap.add_argument("--secret", default="secret")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--run-seconds", type=float, default=60.0)
    a = ap.parse_args()
    c = Component(a)
    stop = asyncio.Event()
    for s in (signal.SIGTERM, signal.SIGINT):
        c.loop.add_signal_handler(s, stop.set)
    c.connect()

    async def run():
        try:
            await asyncio.wait_for(stop.wait(), timeout=a.run_seconds)
        except asyncio.TimeoutError:
            pass
        c.disconnect()
        try:
            await asyncio.wait_for(c.disconnected, timeout=5)
        except asyncio.TimeoutError:
            pass

    c.loop.run_until_complete(run())
    sys.exit(0)


if __name__ == "__main__":
    main()
