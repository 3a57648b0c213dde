"""The demo's component (XEP-0114, slixmpp): what an operator plugs in behind stanzagate.

It connects to stanzagate's component listener as component.localhost and
- answers the IQs stanzagate delegates to it (XEP-0355): jabber:iq:version, which
  Prosody would otherwise answer, and urn:xmpp:time once you delegate it too;
- holds privileges (XEP-0356): it reads the asking user's roster with its `roster`
  privilege and puts the count in its answer, and logs the presence it is sent;
- logs every advertisement it receives, so a proxy.toml edit shows up here without a
  restart.

One line per event on stdout (deploy/local/demo.sh writes them to
target/demo/component.log):
    CONNECTED component.localhost
    ADVERTISED <message …><delegation …/></message>     (delegations and privileges)
    ANSWERED jabber:iq:version for alice@localhost/demo
    PRESENCE alice@localhost/demo available
"""
import argparse
import asyncio
import datetime
import logging
import signal
import xml.etree.ElementTree as ET

import slixmpp
from slixmpp.xmlstream import tostring
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

DELEGATION = "urn:xmpp:delegation:2"
PRIVILEGE = "urn:xmpp:privilege:2"
FORWARD = "urn:xmpp:forward:0"
CLIENT = "jabber:client"
STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
VERSION = "jabber:iq:version"
TIME = "urn:xmpp:time"
ROSTER = "jabber:iq:roster"


def out(*parts):
    print(*parts, flush=True)


class DemoComponent(slixmpp.ComponentXMPP):
    def __init__(self, a):
        super().__init__(a.jid, a.secret, a.host, a.port)
        self.register_plugin("xep_0030")
        self.register_plugin("xep_0297")
        self.register_plugin("xep_0356")
        ns = self.default_ns
        for name, path, handler in (
            ("delegated", f"{{{ns}}}iq/{{{DELEGATION}}}delegation", self.on_delegated),
            ("advertised", f"{{{ns}}}message/{{{DELEGATION}}}delegation", self.on_advertised),
            ("privileges", f"{{{ns}}}message/{{{PRIVILEGE}}}privilege", self.on_advertised),
        ):
            self.register_handler(Callback(name, MatchXPath(path), handler))
        self.add_event_handler("session_start", lambda _: out("CONNECTED", self.boundjid.full))
        self.add_event_handler("presence", self.on_presence)

    def on_advertised(self, msg):
        out("ADVERTISED", tostring(msg.xml, top_level=True))

    def on_presence(self, pres):
        out("PRESENCE", pres["from"], pres["type"] or "available")

    def on_delegated(self, iq):
        inner = iq.xml.find(f"{{{DELEGATION}}}delegation/{{{FORWARD}}}forwarded/{{{CLIENT}}}iq")
        if inner is None or iq["type"] != "set":
            return
        asyncio.ensure_future(self.answer(iq, inner))

    async def answer(self, iq, inner):
        """Answers the user's IQ wrapped as XEP-0355 §5 asks: a result to the server
        carrying the inner answer, addressed back to the user."""
        asker = slixmpp.JID(inner.get("from") or "")
        payload = inner[0] if len(inner) else None
        ns = payload.tag[1:].split("}")[0] if payload is not None and payload.tag.startswith("{") else ""
        reply = iq.reply(clear=True)
        wrapper = ET.SubElement(reply.xml, f"{{{DELEGATION}}}delegation")
        forwarded = ET.SubElement(wrapper, f"{{{FORWARD}}}forwarded")
        attrs = {"id": inner.get("id", ""), "to": str(asker)}
        if inner.get("to"):
            attrs["from"] = inner.get("to")
        if inner.get("type") == "get" and ns == VERSION:
            attrs["type"] = "result"
            answer = ET.SubElement(ET.SubElement(forwarded, f"{{{CLIENT}}}iq", attrs), f"{{{VERSION}}}query")
            ET.SubElement(answer, f"{{{VERSION}}}name").text = "stanzagate demo component"
            ET.SubElement(answer, f"{{{VERSION}}}version").text = "1.0"
            ET.SubElement(answer, f"{{{VERSION}}}os").text = await self.roster_summary(asker.bare)
        elif inner.get("type") == "get" and ns == TIME:
            attrs["type"] = "result"
            now = datetime.datetime.now(datetime.timezone.utc)
            answer = ET.SubElement(ET.SubElement(forwarded, f"{{{CLIENT}}}iq", attrs), f"{{{TIME}}}time")
            ET.SubElement(answer, f"{{{TIME}}}tzo").text = "+00:00"
            ET.SubElement(answer, f"{{{TIME}}}utc").text = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        else:
            attrs["type"] = "error"
            error = ET.SubElement(ET.SubElement(forwarded, f"{{{CLIENT}}}iq", attrs),
                                  f"{{{CLIENT}}}error", {"type": "cancel"})
            ET.SubElement(error, f"{{{STANZAS}}}feature-not-implemented")
        reply.send()
        out("ANSWERED", ns or "(empty)", "for", asker)

    async def roster_summary(self, user):
        """The user's roster, read with the `roster` privilege (XEP-0356 §4.2)."""
        try:
            roster = await self.plugin["xep_0356"].get_roster(user, timeout=10)
        except (IqError, IqTimeout, PermissionError) as e:
            return f"could not read the roster of {user}: {e}"
        contacts = [item.get("jid") for item in roster.xml.iter(f"{{{ROSTER}}}item")]
        listed = ", ".join(contacts) if contacts else "no contacts"
        return f"answered by component.localhost, which read the roster of {user} with its privilege: {listed}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jid", default="component.localhost")
    ap.add_argument("--secret-file", required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=5347)
    a = ap.parse_args()
    # slixmpp leaves its filter task pending at exit; asyncio would log that as noise.
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    with open(a.secret_file) as f:
        a.secret = f.read().strip()
    component = DemoComponent(a)
    stop = asyncio.Event()
    for s in (signal.SIGTERM, signal.SIGINT):
        component.loop.add_signal_handler(s, stop.set)

    async def reconnect(_):
        # A stanzagate restart drops the link; come back as a deployed component would.
        if not stop.is_set():
            await asyncio.sleep(1)
            component.connect()

    component.add_event_handler("disconnected", reconnect)
    component.connect()

    async def run():
        await stop.wait()
        component.disconnect()
        try:
            await asyncio.wait_for(component.disconnected, timeout=5)
        except asyncio.TimeoutError:
            pass

    component.loop.run_until_complete(run())


if __name__ == "__main__":
    main()
