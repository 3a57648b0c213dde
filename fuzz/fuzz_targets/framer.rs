//! Fuzz target for the XMPP framer: arbitrary bytes, split at a fuzzer-chosen point,
//! must never panic, must frame identically whole or split (split invariance), and the
//! frames must concatenate to a prefix of the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stanzagate::xml::{Frame, FrameError, Framer, Limits};

/// Frames with adjacent whitespace runs merged (a run may be cut by a read), the
/// error if any, and every stanza head's debug rendering.
type Outcome = (Vec<(u8, Vec<u8>)>, Option<FrameError>, Vec<String>);

fn kind(frame: &Frame) -> u8 {
    match frame {
        Frame::Header(_) => 0,
        Frame::Stanza(_) => 1,
        Frame::Whitespace(_) => 2,
        Frame::End(_) => 3,
    }
}

fn run(input: &[u8], cut: usize, limits: Limits) -> Outcome {
    let mut framer = Framer::new(limits);
    let mut out: Outcome = (Vec::new(), None, Vec::new());
    for chunk in [&input[..cut], &input[cut..]] {
        framer.buffer_mut().extend_from_slice(chunk);
        loop {
            match framer.next_frame() {
                Ok(None) => break,
                Ok(Some(frame)) => record(&mut out, &mut framer, frame),
                Err(e) => {
                    out.1 = Some(e);
                    return out;
                }
            }
        }
    }
    out
}

fn record(out: &mut Outcome, framer: &mut Framer, frame: Frame) {
    if let Frame::Stanza(stanza) = &frame {
        let head = stanza.head().map(|h| {
            let child = h.child().map(|c| (c.name().to_owned(), c.ns().map(str::to_owned)));
            format!("{} {:?} {:?} {:?} {child:?}", h.name(), h.ns(), h.to(), h.attrs().count())
        });
        out.2.push(format!("{head:?}"));
        if matches!(stanza.head().map(|h| h.name()), Ok("success" | "proceed")) {
            framer.restart();
        }
    }
    let k = kind(&frame);
    let bytes = frame.into_bytes().to_vec();
    match out.0.last_mut() {
        Some((2, prev)) if k == 2 => prev.extend_from_slice(&bytes),
        _ => out.0.push((k, bytes)),
    }
}

fuzz_target!(|data: &[u8]| {
    let [selector, hi, lo, input @ ..] = data else {
        return;
    };
    let limits = match selector & 1 {
        0 => Limits::default(),
        _ => Limits {
            max_stanza_bytes: 512,
            max_depth: 8,
            max_attributes: 8,
        },
    };
    let cut = usize::from(u16::from_be_bytes([*hi, *lo])) % (input.len() + 1);
    let whole = run(input, 0, limits);
    let split = run(input, cut, limits);
    assert_eq!(whole, split, "split at {cut} changed the outcome");
    let concat: Vec<u8> = whole.0.iter().flat_map(|(_, b)| b.iter().copied()).collect();
    assert!(input.starts_with(&concat), "frames are not a prefix of the input");
    for (_, bytes) in &whole.0 {
        assert!(std::str::from_utf8(bytes).is_ok(), "a frame is not UTF-8");
    }
});
