"""A trivial legacy network for running the real slidge gateway through stanzagate.

slidge ships no legacy network of its own; this one keeps its "accounts" in a JSON
file named by $LEGACY_NETWORK: {"alice@localhost": ["juliet", "romeo"], ...}, each
user's list being their friends on the legacy network. Logging a user in adds every
friend to the user's XMPP roster with slidge's own code (a XEP-0356 roster set with
subscription 'both'), and prints one line the tests await:

    LEGACY-LOGIN alice@localhost juliet=added romeo=added

A message to a legacy contact is answered by that contact with "echo: <text>".
"""

import json
import os

from slidge import BaseGateway, BaseSession
from slidge.contact import LegacyContact


def friends_of(user: str) -> list[str]:
    with open(os.environ["LEGACY_NETWORK"], encoding="utf-8") as network:
        return json.load(network).get(user, [])


class Gateway(BaseGateway):
    COMPONENT_NAME = "Legacy network (stanzagate tests)"
    COMPONENT_TYPE = "test"
    # Registration is a confirmation: the legacy network has no credentials.
    REGISTRATION_FIELDS = []
    REGISTRATION_INSTRUCTIONS = "Register to the test legacy network"

    async def validate(self, user_jid, registration_form):
        return None


class Session(BaseSession):
    async def login(self):
        user = self.user_jid.bare
        outcomes = []
        for name in friends_of(user):
            contact = await self.contacts.by_legacy_id(name)
            contact.is_friend = True
            # slidge logs and swallows a failed roster set; the line says which.
            await contact.add_to_roster()
            outcomes.append(f"{name}={'added' if contact.added_to_roster else 'failed'}")
        print("LEGACY-LOGIN", user, *outcomes, flush=True)
        return "Connected to the test legacy network"

    async def logout(self):
        print("LEGACY-LOGOUT", self.user_jid.bare, flush=True)


class Contact(LegacyContact):
    async def on_message(self, message):
        # The contact answers at once, as a legacy network's user would later.
        self.send_text(f"echo: {message.body}")
        return None
