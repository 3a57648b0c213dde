"""The demo's two commands (run through deploy/local/demo-client, which picks the venv).

    demo-client ask NAMESPACE    log in as alice through stanzagate (STARTTLS on
                                 127.0.0.1:5222, trusting the demo's certificate), send
                                 an IQ get in NAMESPACE to the server and print both
                                 stanzas. A delegated namespace is answered by the
                                 component, any other by Prosody.
    demo-client watch NAMESPACE  wait until the component has been told that NAMESPACE
                                 is delegated to it, and print that advertisement.

Exit status 0 on an answer (or an advertisement), 1 otherwise; every wait is bounded.
"""
import argparse
import asyncio
import copy
import logging
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import slixmpp
from slixmpp.xmlstream import tostring
from slixmpp.exceptions import IqError, IqTimeout

DEMO = Path(__file__).resolve().parent.parent.parent / "target" / "demo"
# The element each well-known namespace's query uses; anything else gets <query/>.
PAYLOADS = {"urn:xmpp:time": "time", "urn:xmpp:ping": "ping"}


def show(label, element):
    element = copy.deepcopy(element)
    ET.indent(element, space="  ")
    print(label)
    print("  " + tostring(element, top_level=True).replace("\n", "\n  "), flush=True)


class Alice(slixmpp.ClientXMPP):
    def __init__(self, a):
        super().__init__("alice@localhost/demo", "password")
        self.a = a
        self.outcome = 1
        self.ca_certs = DEMO / "tls" / "cert.pem"
        self.add_event_handler("session_start", self.start)
        self.add_event_handler("failed_all_auth", self.fail)
        self.add_event_handler("connection_failed", self.fail)

    def fail(self, why):
        print(f"could not log in as alice through 127.0.0.1:{self.a.port}: {why}", file=sys.stderr)
        self.disconnect()

    async def start(self, _):
        iq = self.make_iq_get(ito="localhost")
        iq.append(ET.Element(f"{{{self.a.namespace}}}{PAYLOADS.get(self.a.namespace, 'query')}"))
        show(f"alice sends (logged in as {self.boundjid.full}):", iq.xml)
        try:
            answer = await iq.send(timeout=self.a.timeout)
            self.outcome = 0
        except IqError as e:
            answer = e.iq
            self.outcome = 0
        except IqTimeout:
            print(f"no answer within {self.a.timeout} s", file=sys.stderr)
            answer = None
        if answer is not None:
            show("alice receives:", answer.xml)
        self.disconnect()


def ask(a):
    alice = Alice(a)
    alice.connect(host="127.0.0.1", port=a.port)
    try:
        alice.loop.run_until_complete(asyncio.wait_for(alice.disconnected, a.timeout + 10))
    except asyncio.TimeoutError:
        print("timed out", file=sys.stderr)
        return 1
    return alice.outcome


def watch(a):
    """Polls the component's log for an advertisement naming the namespace: the demo
    starts a fresh log, so one that names it arrived after the proxy.toml edit."""
    log = DEMO / "component.log"
    deadline = time.monotonic() + a.timeout
    needle = f'namespace="{a.namespace}"'
    while time.monotonic() < deadline:
        lines = log.read_text(errors="replace").splitlines() if log.exists() else []
        for line in lines:
            if line.startswith("ADVERTISED ") and needle in line:
                show("component.localhost was told, without a restart:",
                     ET.fromstring(line[len("ADVERTISED "):]))
                return 0
        time.sleep(0.2)
    print(f"no advertisement of {a.namespace} in {log} within {a.timeout} s "
          "(is deploy/local/demo.sh running? did the edit parse? see its output)", file=sys.stderr)
    return 1


def main():
    # slixmpp leaves its filter task pending at exit; asyncio would log that as noise.
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["ask", "watch"])
    ap.add_argument("namespace")
    ap.add_argument("--port", type=int, default=5222)
    ap.add_argument("--timeout", type=float, default=15.0)
    a = ap.parse_args()
    sys.exit(ask(a) if a.command == "ask" else watch(a))


if __name__ == "__main__":
    main()
