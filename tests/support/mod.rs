//! Shared test support for the XML framer: a corpus of realistic XMPP streams, error
//! corpora, and a driver that feeds a framer chunk by chunk and records what it yields.
#![allow(dead_code)]

use stanzagate::xml::{Frame, FrameError, Framer, Limits, Stanza};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    Header,
    Stanza,
    Whitespace,
    End,
}

/// What a framer produced for one input: frames (adjacent whitespace merged, since a
/// whitespace run may be split across reads) and the error, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub frames: Vec<(Kind, Vec<u8>)>,
    pub error: Option<FrameError>,
    /// Bytes still buffered in an incomplete frame at the end.
    pub partial: bool,
    /// `describe` of every stanza's head, so head parsing is split-invariant too.
    pub heads: Vec<String>,
}

impl Outcome {
    pub fn concat(&self) -> Vec<u8> {
        self.frames.iter().flat_map(|(_, b)| b.clone()).collect()
    }

    pub fn kinds(&self) -> Vec<Kind> {
        self.frames.iter().map(|(k, _)| k.clone()).collect()
    }
}

fn kind(frame: &Frame) -> Kind {
    match frame {
        Frame::Header(_) => Kind::Header,
        Frame::Stanza(_) => Kind::Stanza,
        Frame::Whitespace(_) => Kind::Whitespace,
        Frame::End(_) => Kind::End,
    }
}

/// Stream restarts happen after these top-level elements (SASL success, STARTTLS
/// proceed, and a client's pipelined auth).
fn restarts_after(frame: &Frame) -> bool {
    match frame {
        Frame::Stanza(s) => s
            .head()
            .map(|h| matches!(h.name(), "success" | "proceed" | "auth"))
            .unwrap_or(false),
        _ => false,
    }
}

/// Feeds `input` split at `cuts` (sorted offsets), draining frames after each chunk.
pub fn run_split(input: &[u8], cuts: &[usize], limits: Limits) -> Outcome {
    let mut framer = Framer::new(limits);
    let mut out = Outcome {
        frames: Vec::new(),
        error: None,
        partial: false,
        heads: Vec::new(),
    };
    let mut start = 0;
    for end in cuts.iter().copied().chain(std::iter::once(input.len())) {
        let end = end.clamp(start, input.len());
        framer.buffer_mut().extend_from_slice(&input[start..end]);
        start = end;
        if drain(&mut framer, &mut out) {
            return out;
        }
    }
    out.partial = framer.has_partial();
    out
}

/// Returns true once an error was recorded.
fn drain(framer: &mut Framer, out: &mut Outcome) -> bool {
    loop {
        match framer.next_frame() {
            Ok(None) => return false,
            Ok(Some(frame)) => {
                let restart = restarts_after(&frame);
                if let Frame::Stanza(stanza) = &frame {
                    out.heads.push(describe(stanza));
                }
                push(out, kind(&frame), frame.bytes().to_vec());
                if restart {
                    framer.restart();
                }
            }
            Err(e) => {
                assert_eq!(
                    framer.next_frame(),
                    Err(e.clone()),
                    "framer must stay poisoned"
                );
                out.error = Some(e);
                return true;
            }
        }
    }
}

/// Everything a head exposes, as one comparable string.
pub fn describe(stanza: &Stanza) -> String {
    let h = match stanza.head() {
        Ok(h) => h,
        Err(e) => return format!("error {e:?}"),
    };
    let child = h.child().map(|c| {
        let attrs: Vec<_> = c.attrs().collect();
        format!(
            "{:?} {:?} {:?} {:?} {attrs:?}",
            c.name(),
            c.prefix(),
            c.ns(),
            c.range()
        )
    });
    let attrs: Vec<_> = h.attrs().collect();
    format!(
        "{:?} {:?} {:?} to={:?} from={:?} type={:?} id={:?} {} {} {} {:?} {:?} {attrs:?} child={child:?}",
        h.name(),
        h.prefix(),
        h.ns(),
        h.to(),
        h.from(),
        h.type_(),
        h.id(),
        h.child_count(),
        h.is_empty_element(),
        h.own_ns_declared(),
        h.open_tag_range(),
        h.content_range(),
    )
}

fn push(out: &mut Outcome, kind: Kind, bytes: Vec<u8>) {
    if let (Kind::Whitespace, Some((Kind::Whitespace, prev))) = (&kind, out.frames.last_mut()) {
        prev.extend_from_slice(&bytes);
        return;
    }
    out.frames.push((kind, bytes));
}

pub fn run_whole(input: &[u8], limits: Limits) -> Outcome {
    run_split(input, &[], limits)
}

pub const CLIENT_HEADER: &str = "<?xml version='1.0'?><stream:stream to='example.com' \
xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0' \
xml:lang='en'>";

/// A header within the small test limits (300 bytes, 3 attributes).
pub const SMALL_HEADER: &str =
    "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";

/// Realistic XMPP streams, both directions, with restarts, keepalives, CDATA,
/// entities, both quote styles and non-ASCII text.
pub fn corpus() -> Vec<Vec<u8>> {
    [
        CLIENT_C2S,
        SERVER_S2C,
        COMPONENT,
        SERVER_S2S,
        STARTTLS_SERVER,
        UNPREFIXED,
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

pub const CLIENT_C2S: &str = concat!(
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
    "<stream:stream xmlns:stream=\"http://etherx.jabber.org/streams\" xmlns=\"jabber:client\" ",
    "to=\"example.com\" version=\"1.0\">\n",
    "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGp1bGlldAByMG0zMG15cjBtMzA=</auth>",
    "<?xml version='1.0'?><stream:stream xmlns='jabber:client' ",
    "xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0'>",
    "<iq type='set' id='bind_1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>",
    "<resource>balcony</resource></bind></iq>",
    "<enable xmlns='urn:xmpp:sm:3' resume='true'/> \n ",
    "<message to='romeo@example.net' id='m1' type='chat'><body>Wherefore art thou, Romeo?</body>",
    "<request xmlns='urn:xmpp:receipts'/></message>\n",
    "<r xmlns='urn:xmpp:sm:3'/>",
    "<presence><show>dnd</show><status xml:lang='de'>Schöne Grüße</status></presence>",
    "<iq type='get' id='roster_1'><query xmlns='jabber:iq:roster' ver=''/></iq>",
    "<a xmlns='urn:xmpp:sm:3' h='7'/>",
    "</stream:stream>",
);

pub const SERVER_S2C: &str = concat!(
    "<?xml version='1.0'?><stream:stream from='example.com' id='++TR84Sm6A3hnt3Q065SnAbbk3Y=' ",
    "to='juliet@example.com' version='1.0' xml:lang='en' xmlns='jabber:client' ",
    "xmlns:stream='http://etherx.jabber.org/streams'>",
    "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>",
    "<mechanism>SCRAM-SHA-1</mechanism><mechanism>PLAIN</mechanism></mechanisms></stream:features>",
    "<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>cj1vTXNUQUF3QUFBQU1BQUFBTlAwVEFBQUFB</challenge>",
    "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>dj1wTk5ERlZFUXh1WHhDb1NFaVc4R0VaKzFSU289</success>",
    "<stream:stream from='example.com' id='gPybzaOzBmaADgxKXu9UClbprp0=' to='juliet@example.com' ",
    "version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>",
    "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/><sm xmlns='urn:xmpp:sm:3'/>",
    "</stream:features>",
    "<iq type='result' id='bind_1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>",
    "<jid>juliet@example.com/balcony</jid></bind></iq>",
    "<enabled xmlns='urn:xmpp:sm:3' id='some-long-sm-id' resume='true'/>",
    "<message from=\"romeo@example.net/orchard\" to=\"juliet@example.com/balcony\" type=\"chat\" ",
    "id=\"ktx72v49\" xml:lang=\"en\"><body>Art thou not Romeo, and a Montague? &lt;3 &amp; ",
    "&#x263A; &#9731; &quot;&apos;&gt;</body><thread>e0ffe42b28561960c6b12b944a092794b9683a38</thread></message>",
    "\n\n\t \r\n",
    "<r xmlns='urn:xmpp:sm:3'/><a xmlns='urn:xmpp:sm:3' h='1'/>",
    "<presence from='romeo@example.net/orchard' xml:lang='fr'><show>away</show>",
    "<status>Je suis très occupé — 忙しい 🌹</status><c xmlns='http://jabber.org/protocol/caps' ",
    "hash='sha-1' node='http://psi-im.org' ver='q07IKJEyjvHSyhy//CH0CxmKi8w='/></presence>",
    "<message to='juliet@example.com'><body><![CDATA[if (a < b && c > d) { x = \"]]\"; } ]] > ]]]></body></message>",
    "<iq type=\"set\" id='x' ><pubsub xmlns=\"http://jabber.org/protocol/pubsub\"><publish node='urn:xmpp:avatar:data'>",
    "<item id='abc'><data xmlns='urn:xmpp:avatar:data'>iVBORw0KGgo=</data></item></publish></pubsub></iq >",
    "<message to='a&amp;b@example.com' from = 'x@y' ><body>1 &gt; 0 &#60; 2</body></message>",
    "\n</stream:stream >trailing bytes are ignored <!-- even this",
);

pub const COMPONENT: &str = concat!(
    "<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' ",
    "to='pubsub.example.com'>",
    "<handshake>aaee83c26aeeafcbabeabfcbcd50df997e0a2a1e</handshake>",
    "<iq xmlns='jabber:client' type='get' id='disco1' from='juliet@example.com/balcony' ",
    "to='pubsub.example.com'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
    "<message xmlns:x='jabber:x:data' to='x@y'><x:x type='form'><x:field var='a'/></x:x></message>",
    "<iq xmlns='jabber:client' to = \"a&apos;b\" from='&#x4a;uliet' type='get' id='&lt;1&gt;'>",
    "<query xmlns:p='urn:p' xmlns=\"urn:q&amp;r\" node='n'/></iq>",
    "<message><p:x xmlns:p='urn:p'/></message>",
    "<presence xmlns:dummy='urn:dummy' id='é'><x xmlns='vcard-temp:x:update'><photo/></x></presence>",
    " ",
    "</stream:stream>",
);

pub const SERVER_S2S: &str = concat!(
    "<?xml version='1.0'?>",
    "<stream:stream xmlns:stream='http://etherx.jabber.org/streams' xmlns='jabber:server' ",
    "xmlns:db='jabber:server:dialback' to='example.net' from='example.com' version='1.0'>",
    "<db:result from='example.com' to='example.net'>b4835385f37fe2895af6c196b59097b16862406db80559900d96bf6fa7d23df3</db:result>",
    "<db:verify from='example.com' to='example.net' id='417GAF25' type='valid'/>",
    "<message from='a@example.com' to='b@example.net' type='groupchat'><subject>Ümlaut &amp; ñ</subject></message>",
    "</stream:stream>",
);

pub const STARTTLS_SERVER: &str = concat!(
    "<?xml version='1.0'?><stream:stream from='example.com' id='t7AMCin9zjMNwQKDnplntZPIDEI=' ",
    "version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>",
    "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>",
    "<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
    "<?xml version='1.0'?><stream:stream from='example.com' id='x' ",
    "version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>",
    "<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>",
    "<text xmlns='urn:ietf:params:xml:ns:xmpp-streams' xml:lang='en'>Replaced by new connection</text>",
    "</stream:error></stream:stream>",
);

pub const UNPREFIXED: &str = concat!(
    "<stream xmlns='http://etherx.jabber.org/streams' to=\"example.com\" version='1.0'>",
    "<features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></features>",
    "<iq xmlns='jabber:client' type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>",
    "</stream>",
);

/// `h(before) + 0xFF 0xFE + after`: invalid UTF-8 at a chosen spot.
fn bad_utf8(h: &dyn Fn(&str) -> Vec<u8>, before: &str, after: &str) -> Vec<u8> {
    [h(before), b"\xff\xfe".to_vec(), after.as_bytes().to_vec()].concat()
}

/// Inputs that must fail, with the expected stream error condition and the limits to
/// run them under.
pub fn error_corpus() -> Vec<(Vec<u8>, &'static str, Limits)> {
    let d = Limits::default();
    let h = |body: &str| format!("{CLIENT_HEADER}{body}").into_bytes();
    let hs = |body: &str| format!("{SMALL_HEADER}{body}").into_bytes();
    let small = Limits {
        max_stanza_bytes: 300,
        max_depth: 4,
        max_attributes: 3,
    };
    let deep = "<a>".repeat(6) + &"</a>".repeat(6);
    let big = format!("<message><body>{}</body></message>", "x".repeat(400));
    vec![
        (b"<!DOCTYPE stream>".to_vec(), "restricted-xml", d),
        (h("<!-- comment -->"), "restricted-xml", d),
        (h("<message><!-- c --></message>"), "restricted-xml", d),
        (h("<message><!ENTITY x 'y'></message>"), "restricted-xml", d),
        (h("<a><![CDATX[x]]></a>"), "restricted-xml", d),
        (h("<?php echo 1 ?>"), "restricted-xml", d),
        (h("<message><?pi x?></message>"), "restricted-xml", d),
        (
            b"<?xml version='1.0'?><?xml version='1.0'?><stream:stream>".to_vec(),
            "restricted-xml",
            d,
        ),
        (
            b"<?xml-stylesheet href='a'?><stream:stream>".to_vec(),
            "restricted-xml",
            d,
        ),
        (h("<message>&foo;</message>"), "restricted-xml", d),
        (h("<message to='&ent;'/>"), "restricted-xml", d),
        (h("<message><body></message>"), "not-well-formed", d),
        (h("<message></body>"), "not-well-formed", d),
        (h("<a b=c/>"), "not-well-formed", d),
        (h("<a b/>"), "not-well-formed", d),
        (h("<a b='1' b='2'/>"), "not-well-formed", d),
        (h("<a b='<'/>"), "not-well-formed", d),
        (h("<a b='1'c='2'/>"), "not-well-formed", d),
        (h("hello"), "not-well-formed", d),
        (h("<a/>x"), "not-well-formed", d),
        (h("</foo>"), "not-well-formed", d),
        (h("<message>&#0;</message>"), "not-well-formed", d),
        (h("<message>&#xZZ;</message>"), "not-well-formed", d),
        (h("<message>&#;</message>"), "not-well-formed", d),
        (h("<message>&#x110000;</message>"), "not-well-formed", d),
        (h("<a>&amp</a>"), "not-well-formed", d),
        (h("<a>& b</a>"), "not-well-formed", d),
        (h("<message>\u{1}</message>"), "not-well-formed", d),
        (h("<a b='\u{0}'/>"), "not-well-formed", d),
        (h("<1a/>"), "not-well-formed", d),
        (h("<:a/>"), "not-well-formed", d),
        (h("< a/>"), "not-well-formed", d),
        (h("<a/ >"), "not-well-formed", d),
        (h("<a></ a>"), "not-well-formed", d),
        (h("<![CDATA[x]]>"), "not-well-formed", d),
        (h("<a><![CDATA[\u{2}]]></a>"), "not-well-formed", d),
        (
            [
                h("<message><body>"),
                b"\xff\xfe".to_vec(),
                b"</body></message>".to_vec(),
            ]
            .concat(),
            "not-well-formed",
            d,
        ),
        (bad_utf8(&h, "<a b='", "'/>"), "not-well-formed", d),
        (bad_utf8(&h, "<a", "/>"), "not-well-formed", d),
        (bad_utf8(&h, "<a b", "='1'/>"), "not-well-formed", d),
        (bad_utf8(&h, "<a></a", ">"), "not-well-formed", d),
        (
            bad_utf8(&h, "<a><![CDATA[", "]]></a>"),
            "not-well-formed",
            d,
        ),
        (
            bad_utf8(&h, "<a>0123456789abcdef\u{e9}", "</a>"),
            "not-well-formed",
            d,
        ),
        (
            bad_utf8(&h, "<a b='0123456789abcdef", "'/>"),
            "not-well-formed",
            d,
        ),
        (
            [h("<a>\u{e9}"), b"\xc3".to_vec(), b"</a>".to_vec()].concat(),
            "not-well-formed",
            d,
        ),
        (
            [h("<a>"), b"\xed\xa0\x80".to_vec(), b"</a>".to_vec()].concat(),
            "not-well-formed",
            d,
        ),
        (
            [
                b"<stream:stream to='".to_vec(),
                b"\xff".to_vec(),
                b"'>".to_vec(),
            ]
            .concat(),
            "not-well-formed",
            d,
        ),
        (
            b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams'/>".to_vec(),
            "not-well-formed",
            d,
        ),
        (b"hello <stream:stream>".to_vec(), "not-well-formed", d),
        (b"</stream:stream>".to_vec(), "not-well-formed", d),
        (h("</stream:streams>"), "not-well-formed", d),
        (hs(&deep), "policy-violation", small),
        (
            hs("<a b='1' c='2' d='3' e='4'/>"),
            "policy-violation",
            small,
        ),
        (hs(&big), "policy-violation", small),
        (
            format!(
                "<?xml version='1.0'?><stream:stream a='{}'>",
                "x".repeat(300)
            )
            .into_bytes(),
            "policy-violation",
            small,
        ),
    ]
}
