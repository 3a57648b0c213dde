"""slixmpp XEP-0114 component acting as a XEP-0355 managing entity, for stanzagate's
end-to-end tests. slixmpp has no XEP-0355 plugin, so delegation is handled with raw
XML handlers, the way real components do it.

Prints one line per event:
    CONNECTED component.localhost
    ADVERTISED localhost urn:example:ns filter=node
    DELEGATED outer-from=localhost inner-from=alice@localhost/r inner-to=None ns=urn:example:ns id=...
    NESTING localhost urn:xmpp:delegation:2::urn:example:ns

--answer selects how delegated IQs are answered:
    result       outer result wrapping an inner result with <handled-by/> (default)
    inner-error  outer result wrapping an inner <forbidden/> error (checklist 30)
    outer-error  outer type='error' (checklist 29)
    silent       never answer (timeouts, disconnection)
    pretty       like result, pretty-printed with whitespace and a <delay/> (checklist 9)
"""
import xml.etree.ElementTree as ET

import slixmpp
from peerlib import component_arguments, out, run_component
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

FWD = "urn:xmpp:forward:0"
JC = "jabber:client"
DISCO_INFO = "http://jabber.org/protocol/disco#info"
STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"


class Delegate(slixmpp.ComponentXMPP):
    def __init__(self, a):
        super().__init__(a.jid, a.secret, a.host, a.port)
        self.a = a
        self.deleg = a.deleg_ns
        ns = self.default_ns
        self.register_handler(Callback(
            "delegated", MatchXPath(f"{{{ns}}}iq/{{{self.deleg}}}delegation"), self.on_delegated))
        self.register_handler(Callback(
            "advert", MatchXPath(f"{{{ns}}}message/{{{self.deleg}}}delegation"), self.on_advert))
        self.register_handler(Callback(
            "nesting", MatchXPath(f"{{{ns}}}iq/{{{DISCO_INFO}}}query"), self.on_disco))
        self.add_event_handler("session_start", lambda _: out("CONNECTED", self.boundjid.full))

    def on_advert(self, msg):
        d = msg.xml.find(f"{{{self.deleg}}}delegation")
        listed = list(d.iter(f"{{{self.deleg}}}delegated"))
        if not listed:
            out("ADVERTISED", msg["from"], "(none)")
        for e in listed:
            attrs = [x.get("name") for x in e.iter(f"{{{self.deleg}}}attribute")]
            out("ADVERTISED", msg["from"], e.get("namespace"), "filter=" + ",".join(attrs))

    def on_disco(self, iq):
        if iq["type"] != "get":
            return
        query = iq.xml.find(f"{{{DISCO_INFO}}}query")
        node = query.get("node") or ""
        out("NESTING", iq["from"], node)
        reply = iq.reply(clear=True)
        q = ET.SubElement(reply.xml, f"{{{DISCO_INFO}}}query", {"node": node} if node else {})
        prefix_server = f"{self.deleg}::"
        prefix_bare = f"{self.deleg}:bare:"
        for prefix, level in ((prefix_server, "server"), (prefix_bare, "bare")):
            if node.startswith(prefix):
                ns = node[len(prefix):]
                ET.SubElement(q, f"{{{DISCO_INFO}}}identity",
                              {"category": "pubsub", "type": "pep", "name": f"delegate {level}"})
                if not self.a.omit_ns_feature:
                    ET.SubElement(q, f"{{{DISCO_INFO}}}feature", {"var": ns})
                ET.SubElement(q, f"{{{DISCO_INFO}}}feature", {"var": f"{ns}#{level}-extra"})
        reply.send()

    def on_delegated(self, iq):
        inner = iq.xml.find(f"{{{self.deleg}}}delegation/{{{FWD}}}forwarded/{{{JC}}}iq")
        if inner is None:
            out("DELEGATED-MALFORMED", ET.tostring(iq.xml, encoding="unicode"))
            return
        payload = inner[0] if len(inner) else None
        pns = payload.tag.split("}")[0][1:] if payload is not None and payload.tag.startswith("{") else ""
        out("DELEGATED", "outer-from=" + str(iq["from"]), "outer-type=" + iq["type"],
            "inner-from=" + str(inner.get("from")), "inner-to=" + str(inner.get("to")),
            "inner-type=" + str(inner.get("type")), "ns=" + pns, "id=" + str(inner.get("id")),
            "payload=" + (ET.tostring(payload, encoding="unicode") if payload is not None else ""))
        mode = self.a.answer
        if mode == "silent":
            return
        reply = iq.reply(clear=True)
        if mode == "outer-error":
            reply["type"] = "error"
            err = ET.SubElement(reply.xml, f"{{{self.default_ns}}}error", {"type": "cancel"})
            ET.SubElement(err, f"{{{STANZAS}}}internal-server-error")
            reply.send()
            return
        d = ET.SubElement(reply.xml, f"{{{self.deleg}}}delegation")
        f = ET.SubElement(d, f"{{{FWD}}}forwarded")
        if mode == "pretty":
            ET.SubElement(f, "{urn:xmpp:delay}delay", {"stamp": "2026-01-01T00:00:00Z"})
        attrs = {"id": inner.get("id", "")}
        if inner.get("from"):
            attrs["to"] = inner.get("from")
        if inner.get("to"):
            attrs["from"] = inner.get("to")
        if mode == "inner-error":
            attrs["type"] = "error"
            r = ET.SubElement(f, f"{{{JC}}}iq", attrs)
            err = ET.SubElement(r, f"{{{JC}}}error", {"type": "auth"})
            ET.SubElement(err, f"{{{STANZAS}}}forbidden")
        else:
            attrs["type"] = "result"
            r = ET.SubElement(f, f"{{{JC}}}iq", attrs)
            if payload is not None:
                q = ET.SubElement(r, payload.tag, dict(payload.attrib))
                ET.SubElement(q, f"{{{pns}}}handled-by").text = self.boundjid.bare
        if mode == "pretty":
            ET.indent(reply.xml, space="  ")
        reply.send()


def main():
    ap = component_arguments(__doc__)
    ap.add_argument("--deleg-ns", default="urn:xmpp:delegation:2")
    ap.add_argument("--answer", default="result",
                    choices=["result", "inner-error", "outer-error", "silent", "pretty"])
    ap.add_argument("--omit-ns-feature", action="store_true",
                    help="nesting answers list only NS#level-extra, not NS itself")
    a = ap.parse_args()
    run_component(Delegate(a), a.run_seconds)


if __name__ == "__main__":
    main()
