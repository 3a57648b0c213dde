"""slixmpp XEP-0114 component using slixmpp's own xep_0356 plugin (what slidge and
other gateways use), unmodified, for stanzagate's end-to-end tests.

Once privileges are advertised it runs the requested operations in order and prints
one line per event:
    PRIVILEGES localhost roster=both message=outgoing presence=roster iq={...}
    ROSTER alice@localhost bob@localhost:both ...
    ROSTER-SET-OK / ROSTER-ERROR condition
    MESSAGE-SENT alice@localhost bob@localhost
    PRIV-IQ-RESULT type=result ... / PRIV-IQ-ERROR condition nested=condition
    PRESENCE from type
    ROSTER-PUSH from jid subscription
    SUBSCRIPTION type from            (presence subscriptions addressed to the component)
    ACTIONS-DONE
"""
import asyncio
import xml.etree.ElementTree as ET

import slixmpp
from peerlib import component_arguments, out, run_component
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

PUBSUB = "http://jabber.org/protocol/pubsub"
ROSTER = "jabber:iq:roster"




class Privileged(slixmpp.ComponentXMPP):
    def __init__(self, a):
        super().__init__(a.jid, a.secret, a.host, a.port)
        self.a = a
        self.register_plugin("xep_0030")
        self.register_plugin("xep_0297")
        self.register_plugin("xep_0356")
        self.started = False
        self.add_event_handler("session_start", lambda _: out("CONNECTED", self.boundjid.full))
        self.add_event_handler("privileges_advertised", self.on_privileges)
        self.add_event_handler("presence", self.on_presence)
        self.add_event_handler("message", self.on_message)
        self.register_handler(Callback(
            "roster-push", MatchXPath(f"{{{self.default_ns}}}iq/{{{ROSTER}}}query"), self.on_roster_iq))

    def on_presence(self, pres):
        kind = pres["type"]
        if kind in ("subscribe", "subscribed", "unsubscribe", "unsubscribed"):
            out("SUBSCRIPTION", kind, pres["from"])
            return
        out("PRESENCE", pres["from"], kind or "available")

    def on_message(self, msg):
        if msg["type"] == "error":
            out("MESSAGE-ERROR", msg["from"], msg["error"]["condition"])
        elif msg["body"]:
            out("MESSAGE", msg["from"], repr(msg["body"]))

    def on_roster_iq(self, iq):
        if iq["type"] != "set":
            return
        for item in iq.xml.iter(f"{{{ROSTER}}}item"):
            out("ROSTER-PUSH", iq["from"], item.get("jid"), item.get("subscription"))
        iq.reply(clear=True).send()

    def on_privileges(self, *_):
        p = self.plugin["xep_0356"]
        for server, perms in p.granted_privileges.items():
            val = lambda v: getattr(v, "value", v)
            out("PRIVILEGES", server, "roster=" + str(val(perms.roster)),
                "message=" + str(val(perms.message)), "presence=" + str(val(perms.presence)),
                "iq=" + repr({k: val(v) for k, v in perms.iq.items()}))
        if not self.started:
            self.started = True
            asyncio.ensure_future(self.run_actions())

    async def run_actions(self):
        a = self.a
        p = self.plugin["xep_0356"]
        for user in a.roster_get or []:
            try:
                res = await p.get_roster(user, timeout=a.timeout)
                items = res["roster"]["items"]
                out("ROSTER", user, " ".join(sorted(f"{j}:{v['subscription']}" for j, v in items.items())) or "(empty)")
            except IqError as e:
                out("ROSTER-ERROR", e.iq["error"]["condition"])
            except (IqTimeout, PermissionError) as e:
                out("ROSTER-ERROR", type(e).__name__)
        for spec in a.roster_set or []:
            user, _, rest = spec.partition("=")
            items = {}
            for item in rest.split(","):
                jid, _, sub = item.partition(":")
                items[jid] = {"name": jid.split("@")[0], "subscription": sub or "none", "groups": ["G"]}
            try:
                await p.set_roster(user, items, timeout=a.timeout)
                out("ROSTER-SET-OK", user)
            except IqError as e:
                out("ROSTER-ERROR", e.iq["error"]["condition"])
            except (IqTimeout, PermissionError) as e:
                out("ROSTER-ERROR", type(e).__name__)
        for user in a.roster_get_after or []:
            try:
                res = await p.get_roster(user, timeout=a.timeout)
                items = res["roster"]["items"]
                out("ROSTER", user, " ".join(sorted(f"{j}:{v['subscription']}" for j, v in items.items())) or "(empty)")
            except (IqError, IqTimeout, PermissionError) as e:
                out("ROSTER-ERROR", type(e).__name__)
        for spec in a.message or []:
            frm, to, body = spec.split(",", 2)
            msg = self.make_message(mto=to, mfrom=frm, mbody=body, mtype="chat")
            try:
                p.send_privileged_message(msg)
                out("MESSAGE-SENT", frm, to)
            except PermissionError as e:
                out("MESSAGE-REFUSED-LOCALLY", e)
        for spec in a.publish or []:
            user, _, node = spec.partition(",")
            inner = self.make_iq_set(ito=user, ifrom=user)
            ps = ET.SubElement(inner.xml, f"{{{PUBSUB}}}pubsub")
            pub = ET.SubElement(ps, f"{{{PUBSUB}}}publish", {"node": node})
            item = ET.SubElement(pub, f"{{{PUBSUB}}}item", {"id": "i1"})
            ET.SubElement(item, "{urn:example:entry}entry").text = "via privileged IQ"
            await self.privileged_iq(p, inner)
        for spec in a.retract or []:
            user, _, node = spec.partition(",")
            inner = self.make_iq_set(ito=user, ifrom=user)
            ps = ET.SubElement(inner.xml, f"{{{PUBSUB}}}pubsub")
            ret = ET.SubElement(ps, f"{{{PUBSUB}}}retract", {"node": node})
            ET.SubElement(ret, f"{{{PUBSUB}}}item", {"id": "missing"})
            await self.privileged_iq(p, inner)
        out("ACTIONS-DONE")

    async def privileged_iq(self, p, inner):
        try:
            res = await p.send_privileged_iq(inner)
            out("PRIV-IQ-RESULT", "type=" + res["type"], "id=" + res["id"], ET.tostring(res.xml, encoding="unicode"))
        except Exception as e:  # PrivilegedIqError carries the nested error
            nested = None
            try:
                nested = e.nested_error()
            except Exception:
                pass
            cond = e.iq["error"]["condition"] if hasattr(e, "iq") else type(e).__name__
            out("PRIV-IQ-ERROR", cond, "nested=" + (nested.iq["error"]["condition"] if nested else "none"))


def main():
    ap = component_arguments(__doc__)
    ap.add_argument("--roster-get", action="append", metavar="USER")
    ap.add_argument("--roster-set", action="append", metavar="USER=JID:SUB,JID:SUB")
    ap.add_argument("--roster-get-after", action="append", metavar="USER",
                    help="roster get after the sets")
    ap.add_argument("--message", action="append", metavar="FROM,TO,BODY")
    ap.add_argument("--publish", action="append", metavar="USER,NODE")
    ap.add_argument("--retract", action="append", metavar="USER,NODE")
    ap.add_argument("--timeout", type=float, default=20.0)
    a = ap.parse_args()
    run_component(Privileged(a), a.run_seconds)


if __name__ == "__main__":
    main()
