"""slixmpp client driven by stanzagate's end-to-end tests.

Connects through the proxy (STARTTLS, direct TLS or plaintext loopback), performs the
requested actions in order and prints one line per observable event, e.g.

    BOUND alice@localhost/abc
    ROSTER bob@localhost
    RECV alice@localhost/abc chat 'hello'
    PRESENCE bob@localhost/xyz available
    SM-ACKED 3
    DONE ok

Exit status 0 when every requested action succeeded, 1 otherwise. Every wait is
bounded by --timeout so a test never hangs on a broken peer.
"""
import argparse
import asyncio
import xml.etree.ElementTree as ET
import sys
from pathlib import Path

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout


def out(*parts):
    print(*parts, flush=True)


class Client(slixmpp.ClientXMPP):
    def __init__(self, a):
        super().__init__(a.jid, a.password)
        self.a = a
        self.ok = True
        self.finished = False
        self.received = 0
        self.enough_messages = asyncio.Event()
        self.seen_available = set()
        self.seen_unavailable = set()
        self.presence_seen = asyncio.Event()
        self.configure_transport(a)
        self.register_plugin("xep_0030")
        self.register_plugin("xep_0199")
        if a.sm:
            self.register_plugin("xep_0198")
            self.plugin["xep_0198"].allow_resume = False
            self.sm_enabled = asyncio.Event()
            self.add_event_handler("sm_enabled", lambda _: self.sm_enabled.set())
        self.add_event_handler("session_start", self.start)
        self.add_event_handler("message", self.on_message)
        self.add_event_handler("presence_available", self.on_presence)
        self.add_event_handler("presence_unavailable", self.on_presence)
        self.add_event_handler("failed_all_auth", self.on_failed_auth)
        self.add_event_handler("stream_error", self.on_stream_error)

    def configure_transport(self, a):
        self.enable_direct_tls = a.tls == "direct"
        self.enable_starttls = a.tls == "starttls"
        self.enable_plaintext = a.tls == "none"
        if a.tls == "none":
            self.plugin["feature_mechanisms"].unencrypted_plain = True
            self.plugin["feature_mechanisms"].unencrypted_scram = True
        if a.ca:
            self.ca_certs = Path(a.ca)
        if a.mechanism:
            self.plugin["feature_mechanisms"].use_mech = a.mechanism

    def on_stream_error(self, error):
        out("STREAM-ERROR", error["condition"])
        self.ok = False

    def on_failed_auth(self, _):
        out("AUTH-FAILED")
        self.ok = False
        self.disconnect()

    def on_message(self, msg):
        if msg["type"] in ("chat", "normal", "headline"):
            out("RECV", msg["from"], msg["type"], repr(msg["body"]))
            self.received += 1
            if self.received >= self.a.expect_messages:
                self.enough_messages.set()

    def on_presence(self, pres):
        state = "unavailable" if pres["type"] == "unavailable" else "available"
        out("PRESENCE", pres["from"], state)
        # Only presence from a resource counts: a bare 'unavailable' answers a probe.
        if pres["from"].resource:
            seen = self.seen_unavailable if state == "unavailable" else self.seen_available
            seen.add(str(pres["from"].bare))
        self.presence_seen.set()

    async def wait_for(self, condition, event, what):
        loop = asyncio.get_running_loop()
        end = loop.time() + self.a.timeout
        while not condition():
            event.clear()
            remaining = end - loop.time()
            if remaining <= 0:
                out("TIMEOUT", what)
                self.ok = False
                return False
            try:
                await asyncio.wait_for(event.wait(), remaining)
            except asyncio.TimeoutError:
                pass
        return True

    async def start(self, _):
        a = self.a
        out("BOUND", self.boundjid.full, "mechanism=" + self.plugin["feature_mechanisms"].mech.name)
        if a.roster:
            try:
                await self.get_roster()
                out("ROSTER", " ".join(sorted(str(j) for j in self.client_roster)) or "(empty)")
            except (IqError, IqTimeout) as e:
                out("ROSTER-ERROR", e)
                self.ok = False
        if not a.no_presence:
            self.send_presence()
        if a.ready_line:
            out("READY")
        for jid in a.wait_presence or []:
            await self.wait_for(lambda: jid in self.seen_available, self.presence_seen,
                                "presence from " + jid)
        for spec in a.send or []:
            to, _, body = spec.partition(":")
            for i in range(a.count):
                self.send_message(mto=to, mbody=body if a.count == 1 else f"{body} {i}", mtype="chat")
            out("SENT", to, a.count)
        for spec in a.iq or []:
            ns, _, rest = spec.partition(",")
            to, _, kind = rest.partition(",")
            iq = self.make_iq(ito=to or None, itype=kind or "get")
            iq.append(ET.Element(f"{{{ns}}}query"))
            try:
                res = await iq.send(timeout=a.timeout)
                out("IQ-RESULT", ns, "from=" + str(res["from"]), ET.tostring(res.xml, encoding="unicode"))
            except IqError as e:
                out("IQ-ERROR", ns, "from=" + str(e.iq["from"]), e.iq["error"]["condition"])
            except IqTimeout:
                out("IQ-TIMEOUT", ns)
                self.ok = False
        if a.sm and a.send:
            sm = self.plugin["xep_0198"]
            await self.wait_for(lambda: self.sm_enabled.is_set(), self.sm_enabled, "sm enabled")
            sm.request_ack()
            await self.wait_for(lambda: sm.last_ack >= a.count * len(a.send), asyncio.Event(), "sm ack")
            out("SM-ACKED", sm.last_ack, "handled", sm.handled)
        if a.expect_messages:
            await self.wait_for(lambda: self.received >= a.expect_messages, self.enough_messages,
                                f"{a.expect_messages} messages (got {self.received})")
        for jid in a.wait_unavailable or []:
            await self.wait_for(lambda: jid in self.seen_unavailable, self.presence_seen,
                                "unavailable from " + jid)
        if a.stay:
            await asyncio.sleep(a.stay)
        self.finished = True
        out("DONE", "ok" if self.ok else "failed")
        self.disconnect()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jid", required=True)
    ap.add_argument("--password", default="password")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--tls", choices=["starttls", "direct", "none"], default="starttls")
    ap.add_argument("--ca", help="PEM file of the CA that signed the proxy's certificate")
    ap.add_argument("--mechanism", help="force a SASL mechanism, e.g. SCRAM-SHA-1")
    ap.add_argument("--roster", action="store_true")
    ap.add_argument("--no-presence", action="store_true")
    ap.add_argument("--ready-line", action="store_true", help="print READY after initial presence")
    ap.add_argument("--wait-presence", action="append", metavar="BAREJID")
    ap.add_argument("--wait-unavailable", action="append", metavar="BAREJID")
    ap.add_argument("--send", action="append", metavar="TO:BODY")
    ap.add_argument("--count", type=int, default=1)
    ap.add_argument("--expect-messages", type=int, default=0)
    ap.add_argument("--iq", action="append", metavar="NS,TO,TYPE",
                    help="send <query xmlns=NS/> to TO (empty: no 'to') and print the answer")
    ap.add_argument("--sm", action="store_true", help="enable XEP-0198 and check the ack")
    ap.add_argument("--stay", type=float, default=0.0, help="seconds to stay online at the end")
    ap.add_argument("--timeout", type=float, default=20.0)
    a = ap.parse_args()
    c = Client(a)
    c.connect(a.host, a.port)
    try:
        c.loop.run_until_complete(asyncio.wait_for(c.disconnected, timeout=a.timeout * 3 + a.stay))
    except asyncio.TimeoutError:
        out("TIMEOUT overall")
        c.ok = False
    sys.exit(0 if c.ok and c.finished else 1)


if __name__ == "__main__":
    main()
