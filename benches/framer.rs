//! Throughput of the XMPP framer on an XMPP-shaped corpus (a client stream of ~250-byte
//! iq/message/presence stanzas), against a bare quick-xml event loop as the baseline.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use quick_xml::events::Event;
use quick_xml::Reader;
use stanzagate::xml::{Frame, Framer, Limits};

const CORPUS_BYTES: usize = 4 * 1024 * 1024;
const CHUNK: usize = 4096;

/// Deterministic xorshift so every run benches the same bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const WORDS: &[&str] = &[
    "wherefore",
    "art",
    "thou",
    "romeo",
    "deny",
    "thy",
    "father",
    "and",
    "refuse",
    "name",
    "or",
    "if",
    "wilt",
    "not",
    "be",
    "but",
    "sworn",
    "my",
    "love",
    "café",
    "naïve",
    "über",
];

fn jid(rng: &mut Rng, resource: bool) -> String {
    let user = rng.below(5000);
    let domain = ["example.com", "example.net", "im.example.org"][rng.below(3) as usize];
    match resource {
        true => format!("user{user}@{domain}/res-{:x}", rng.next() & 0xffff),
        false => format!("user{user}@{domain}"),
    }
}

fn text(rng: &mut Rng, words: u64) -> String {
    let mut out = String::new();
    for i in 0..words {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(WORDS[rng.below(WORDS.len() as u64) as usize]);
    }
    out
}

fn message(rng: &mut Rng) -> String {
    let (from, to, id) = (jid(rng, true), jid(rng, true), rng.next() & 0xffff_ffff);
    let words = 6 + rng.below(6);
    let body = text(rng, words);
    format!(
        "<message from='{from}' to='{to}' type='chat' id='m-{id:08x}' xml:lang='en'>\
         <body>{body} &amp; more</body>\
         <active xmlns='http://jabber.org/protocol/chatstates'/>\
         <request xmlns='urn:xmpp:receipts'/></message>"
    )
}

fn iq(rng: &mut Rng) -> String {
    let (from, to, id) = (jid(rng, true), jid(rng, false), rng.next() & 0xffff_ffff);
    match rng.below(2) {
        0 => format!(
            "<iq from='{from}' to='{to}' type='get' id='r-{id:08x}'>\
             <query xmlns='jabber:iq:roster' ver='ver{}'/></iq>",
            rng.below(100)
        ),
        _ => format!(
            "<iq from='{from}' to='{to}' type=\"result\" id=\"v-{id:08x}\">\
             <query xmlns='jabber:iq:version'><name>Exodus</name><version>0.9.{}</version>\
             <os>Linux</os></query></iq>",
            rng.below(10)
        ),
    }
}

fn presence(rng: &mut Rng) -> String {
    let (from, to) = (jid(rng, true), jid(rng, false));
    let status = text(rng, 3);
    format!(
        "<presence from='{from}' to='{to}'><show>away</show><status>{status}</status>\
         <c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='http://psi-im.org' \
         ver='q07IKJEyjvHSyhy//CH0CxmKi8w='/></presence>"
    )
}

/// A client stream header followed by stanzas up to `CORPUS_BYTES`, then the stream end.
fn corpus() -> (Vec<u8>, usize) {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut out = String::from(
        "<?xml version='1.0'?><stream:stream to='example.com' xmlns='jabber:client' \
         xmlns:stream='http://etherx.jabber.org/streams' version='1.0' xml:lang='en'>",
    );
    let mut stanzas = 0;
    while out.len() < CORPUS_BYTES {
        let stanza = match rng.below(10) {
            0..=4 => message(&mut rng),
            5..=7 => presence(&mut rng),
            _ => iq(&mut rng),
        };
        out.push_str(&stanza);
        if rng.below(50) == 0 {
            out.push('\n');
        }
        stanzas += 1;
    }
    out.push_str("</stream:stream>");
    (out.into_bytes(), stanzas)
}

/// What the router does per frame: read the head's name, `to` and `type`.
fn route(frame: &Frame) -> usize {
    let Frame::Stanza(stanza) = frame else {
        return 0;
    };
    let Ok(head) = stanza.head() else {
        return 0;
    };
    let to = head.to().map_or(0, |t| t.len());
    let type_ = head.type_().map_or(0, |t| t.len());
    head.name().len() + to + type_
}

fn frame_chunks(input: &[u8], chunk: usize, with_head: bool) -> usize {
    let mut framer = Framer::new(Limits::default());
    let mut total = 0;
    for piece in input.chunks(chunk) {
        framer.buffer_mut().extend_from_slice(piece);
        while let Ok(Some(frame)) = framer.next_frame() {
            total += match with_head {
                true => route(&frame),
                false => frame.bytes().len(),
            };
            black_box(&frame);
        }
    }
    total
}

fn quick_xml_loop(input: &[u8]) -> usize {
    let mut reader = Reader::from_reader(input);
    let (mut depth, mut elements) = (0usize, 0usize);
    loop {
        match reader.read_event() {
            Ok(Event::Start(_)) => depth += 1,
            Ok(Event::End(_)) => {
                depth -= 1;
                elements += usize::from(depth == 1);
            }
            Ok(Event::Empty(_)) => elements += usize::from(depth == 1),
            Ok(Event::Eof) | Err(_) => break,
            Ok(other) => {
                black_box(other);
            }
        }
    }
    elements
}

fn bench(c: &mut Criterion) {
    let (input, stanzas) = corpus();
    assert_eq!(
        quick_xml_loop(&input),
        stanzas,
        "baseline sees every stanza"
    );
    assert_eq!(
        frame_chunks(&input, CHUNK, false),
        input.len(),
        "framer frames all bytes"
    );
    eprintln!(
        "corpus: {} bytes, {stanzas} stanzas, {} bytes/stanza",
        input.len(),
        input.len() / stanzas
    );
    let mut group = c.benchmark_group("framer");
    group
        .throughput(Throughput::Bytes(input.len() as u64))
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    group.bench_function("a_framer_head_4k_chunks", |b| {
        b.iter(|| frame_chunks(black_box(&input), CHUNK, true))
    });
    group.bench_function("a_framer_head_whole", |b| {
        b.iter(|| frame_chunks(black_box(&input), input.len(), true))
    });
    group.bench_function("b_framer_only_4k_chunks", |b| {
        b.iter(|| frame_chunks(black_box(&input), CHUNK, false))
    });
    group.bench_function("c_quick_xml_bare_loop", |b| {
        b.iter(|| quick_xml_loop(black_box(&input)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
