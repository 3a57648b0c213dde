"""Many slixmpp clients in one process, for stanzagate's loss test.

Logs in user0..user{N-1} through the proxy; once all are bound, user i sends M chat
messages to user (i+1) mod N. Every user must receive exactly M. Prints
`RESULT sent=X received=Y` and exits 0 only when nothing was lost or duplicated.
"""
import argparse
import asyncio
import sys
from pathlib import Path

import slixmpp


class User(slixmpp.ClientXMPP):
    def __init__(self, jid, a, all_received, counts):
        super().__init__(jid, a.password)
        self.enable_direct_tls = False
        self.enable_starttls = a.tls == "starttls"
        self.enable_plaintext = a.tls == "none"
        if a.ca:
            self.ca_certs = Path(a.ca)
        self.counts = counts
        self.all_received = all_received
        self.counts_expected = a.users * a.messages
        self.ready_event = asyncio.Event()
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("message", self.on_message)

    async def on_start(self, _):
        # Messages to a bare JID are only delivered to resources that sent presence.
        self.send_presence()
        await self.get_roster()
        self.ready_event.set()

    def on_message(self, msg):
        if msg["type"] == "chat":
            self.counts[str(self.boundjid.bare)] = self.counts.get(str(self.boundjid.bare), 0) + 1
            if sum(self.counts.values()) >= self.counts_expected:
                self.all_received.set()


async def run(a):
    counts = {}
    users = []
    all_received = asyncio.Event()
    for i in range(a.users):
        u = User(f"user{i}@{a.domain}", a, all_received, counts)
        u.connect(a.host, a.port)
        users.append(u)
    await asyncio.wait_for(asyncio.gather(*(u.ready_event.wait() for u in users)), a.timeout)
    print("ALL-BOUND", len(users), flush=True)
    for i, u in enumerate(users):
        to = f"user{(i + 1) % a.users}@{a.domain}"
        for m in range(a.messages):
            u.send_message(mto=to, mbody=f"m{m} from {i}", mtype="chat")
    expected = a.users * a.messages
    try:
        await asyncio.wait_for(all_received.wait(), a.timeout)
    except asyncio.TimeoutError:
        pass
    # Anything beyond the expected count would be a duplicate: give it no extra time,
    # the per-user check below catches duplicates already delivered.
    received = sum(counts.values())
    per_user_ok = all(counts.get(f"user{i}@{a.domain}", 0) == a.messages for i in range(a.users))
    print(f"RESULT sent={expected} received={received} per_user_ok={per_user_ok}", flush=True)
    for u in users:
        u.disconnect()
    return received == expected and per_user_ok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=50)
    ap.add_argument("--messages", type=int, default=20)
    ap.add_argument("--domain", default="localhost")
    ap.add_argument("--password", default="password")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--tls", choices=["starttls", "none"], default="starttls")
    ap.add_argument("--ca")
    ap.add_argument("--timeout", type=float, default=60.0)
    a = ap.parse_args()
    ok = asyncio.run(run(a))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
