//! Every XML namespace the proxy reads or writes, defined once. Other modules import
//! these names instead of spelling URIs, so a typo cannot make two routes disagree.

/// Stream-level elements (`<stream:stream>`, `<stream:features>`, `<stream:error>`).
pub const NS_STREAMS: &str = "http://etherx.jabber.org/streams";
/// The namespace the `xml` prefix is permanently bound to.
pub const NS_XML: &str = "http://www.w3.org/XML/1998/namespace";
/// The namespace the `xmlns` prefix is permanently bound to (never declared).
pub const NS_XMLNS: &str = "http://www.w3.org/2000/xmlns/";

pub const NS_CLIENT: &str = "jabber:client";
pub const NS_COMPONENT: &str = "jabber:component:accept";
pub const NS_SERVER: &str = "jabber:server";

pub const NS_STREAM_ERRORS: &str = "urn:ietf:params:xml:ns:xmpp-streams";
pub const NS_STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
pub const NS_TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
/// RFC 7395 framing elements (`<open/>`, `<close/>`) of XMPP over WebSocket.
pub const NS_FRAMING: &str = "urn:ietf:params:xml:ns:xmpp-framing";
pub const NS_SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
pub const NS_SASL2: &str = "urn:xmpp:sasl:2";
pub const NS_BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";

/// XEP-0198 Stream Management, current and previous versions.
pub const NS_SM3: &str = "urn:xmpp:sm:3";
pub const NS_SM2: &str = "urn:xmpp:sm:2";

pub const NS_ROSTER: &str = "jabber:iq:roster";
pub const NS_CARBONS: &str = "urn:xmpp:carbons:2";
pub const NS_FORWARD: &str = "urn:xmpp:forward:0";
pub const NS_DELAY: &str = "urn:xmpp:delay";
pub const NS_DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
pub const NS_DISCO_ITEMS: &str = "http://jabber.org/protocol/disco#items";
pub const NS_CAPS: &str = "http://jabber.org/protocol/caps";
pub const NS_PUBSUB_EVENT: &str = "http://jabber.org/protocol/pubsub#event";

/// XEP-0355 Namespace Delegation: the current namespace and the one ejabberd-era
/// components speak; the prefix both share.
pub const NS_DELEGATION_2: &str = "urn:xmpp:delegation:2";
pub const NS_DELEGATION_1: &str = "urn:xmpp:delegation:1";
pub const DELEGATION_PREFIX: &str = "urn:xmpp:delegation:";
/// XEP-0355 v0.5 pseudo-namespaces: disco on bare JIDs handed to the delegate.
pub const BARE_DISCO_INFO_ANY: &str = "urn:xmpp:delegation:2:bare:disco#info:*";
pub const BARE_DISCO_ITEMS_ANY: &str = "urn:xmpp:delegation:2:bare:disco#items:*";
/// The older spelling of [`BARE_DISCO_ITEMS_ANY`] found in Prosody configs.
pub const BARE_DISCO_ITEMS_ALIAS: &str = "http://jabber.org/protocol/disco#items:*";

/// XEP-0356 Privileged Entity.
pub const NS_PRIVILEGE: &str = "urn:xmpp:privilege:2";
