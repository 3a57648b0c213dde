"""slixmpp XEP-0114 component driven by stanzagate's end-to-end tests.

Connects to the proxy's component listener, echoes every chat/normal message sent to
it ("echo: BODY") and prints one line per event (CONNECTED, ECHO, DISCONNECTED).
Stops on SIGTERM or after --run-seconds.
"""
import slixmpp
from peerlib import component_arguments, out, run_component


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
    a = component_arguments(__doc__).parse_args()
    run_component(Component(a), a.run_seconds)


if __name__ == "__main__":
    main()
