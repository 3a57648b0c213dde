//! Stream Management (XEP-0198) counter translation between a client and the legacy server.
//!
//! The proxy sits between two SM peers that each count the stanzas they *receive* and
//! acknowledge that count with `<a h='N'/>`. Whenever the proxy consumes a stanza (a
//! delegated IQ never reaches the server) or injects one (a delegation answer the server
//! never sent), the two peers' counts diverge. [`Direction`] keeps, for one direction of
//! the stream, the exceptions to plain relaying since the last acknowledgement, and
//! translates the receiver's `h` into the number the sender expects.
//!
//! Terms: the *sender* emits stanzas, the *receiver* acknowledges them. For the
//! client→server direction the sender is the client; for server→client it is the server.

use std::collections::VecDeque;

use bytes::Bytes;

/// What happened to one stanza on its way from sender to receiver, when not relayed.
#[derive(Debug, Clone)]
enum Exception {
    /// The sender sent it and the proxy handled it: the receiver never sees it.
    /// `recv_before` = receiver stanzas relayed or injected before it.
    Consumed { recv_before: u64 },
    /// The proxy created it: the receiver counts it, the sender never sent it.
    /// `recv_index` = its 0-based position among the receiver's stanzas.
    Injected { recv_index: u64, stanza: Bytes },
}

/// The receiver acknowledged more stanzas than it was ever given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("peer acknowledged {acked} stanzas but only {received} were sent to it")]
pub struct AckTooHigh {
    pub acked: u64,
    pub received: u64,
    /// The sender-side value that keeps the same excess, so the sender reacts to the
    /// peer's bug exactly as it would without the proxy in between.
    pub translated: u32,
}

/// Counters and exceptions for one direction of an SM-enabled stream.
#[derive(Debug, Clone, Default)]
pub struct Direction {
    /// Receiver count and matching sender count at the last acknowledgement.
    acked_recv: u64,
    acked_sender: u64,
    /// Stanzas the receiver has been given (relayed + injected) since SM was enabled.
    recv_total: u64,
    /// Stanzas the sender has emitted (relayed + consumed) since SM was enabled.
    sender_total: u64,
    exceptions: VecDeque<Exception>,
}

impl Direction {
    /// Starts counting from the given absolute positions (both 0 for a fresh `<enable/>`).
    pub fn starting_at(recv: u64, sender: u64) -> Self {
        Direction {
            acked_recv: recv,
            acked_sender: sender,
            recv_total: recv,
            sender_total: sender,
            exceptions: VecDeque::new(),
        }
    }

    /// A stanza passed from sender to receiver unchanged.
    pub fn relayed(&mut self) {
        self.recv_total += 1;
        self.sender_total += 1;
    }

    /// A sender's stanza was handled by the proxy and not passed on.
    pub fn consumed(&mut self) {
        self.sender_total += 1;
        self.exceptions.push_back(Exception::Consumed {
            recv_before: self.recv_total,
        });
    }

    /// The proxy gave the receiver a stanza of its own. The bytes are kept until
    /// acknowledged so a resumed stream can deliver them again.
    pub fn injected(&mut self, stanza: Bytes) {
        self.exceptions.push_back(Exception::Injected {
            recv_index: self.recv_total,
            stanza,
        });
        self.recv_total += 1;
    }

    /// Stanzas this direction remembers until the receiver acknowledges them (the
    /// proxy's own injections, with their bytes, and consumed stanzas).
    pub fn unacknowledged(&self) -> usize {
        self.exceptions.len()
    }

    pub fn received_total(&self) -> u64 {
        self.recv_total
    }

    pub fn sent_total(&self) -> u64 {
        self.sender_total
    }

    /// Translates the receiver's acknowledgement into the sender's count and forgets
    /// everything it covers. Consumed stanzas directly after the acknowledged point count
    /// as handled: the proxy already took care of them.
    pub fn ack(&mut self, h: u32) -> Result<u32, AckTooHigh> {
        let acked = self.unwrap_h(h);
        if acked > self.recv_total {
            let excess = acked - self.recv_total;
            let sender = self.sender_for(self.recv_total);
            self.commit(self.recv_total, sender);
            return Err(AckTooHigh {
                acked,
                received: self.recv_total,
                translated: (sender + excess) as u32,
            });
        }
        // Acknowledgements never go backwards; a stale one re-confirms the last.
        let acked = acked.max(self.acked_recv);
        let sender = self.sender_for(acked);
        self.commit(acked, sender);
        Ok(sender as u32)
    }

    /// Interprets a 32-bit `h` (which wraps, XEP-0198 §5) as the absolute count closest
    /// below or at what the receiver has been given.
    fn unwrap_h(&self, h: u32) -> u64 {
        let total_low = self.recv_total as u32;
        let behind = total_low.wrapping_sub(h) as u64;
        if behind <= self.recv_total && behind < (1 << 31) {
            self.recv_total - behind
        } else {
            // Ahead of what was sent: keep the excess visible to the caller.
            self.recv_total + (h.wrapping_sub(total_low) as u64)
        }
    }

    fn sender_for(&self, acked_recv: u64) -> u64 {
        let mut sender = self.acked_sender + (acked_recv - self.acked_recv);
        for exception in &self.exceptions {
            match exception {
                Exception::Injected { recv_index, .. } if *recv_index < acked_recv => sender -= 1,
                Exception::Consumed { recv_before } if *recv_before <= acked_recv => sender += 1,
                Exception::Injected { .. } | Exception::Consumed { .. } => {}
            }
        }
        sender.min(self.sender_total)
    }

    fn commit(&mut self, acked_recv: u64, sender: u64) {
        self.acked_recv = acked_recv;
        self.acked_sender = self.acked_sender.max(sender);
        self.exceptions.retain(|exception| match exception {
            Exception::Injected { recv_index, .. } => *recv_index >= acked_recv,
            Exception::Consumed { recv_before } => *recv_before > acked_recv,
        });
        // A burst that has been acknowledged gives its memory back.
        if self.exceptions.is_empty() && self.exceptions.capacity() > 64 {
            self.exceptions = VecDeque::new();
        }
    }

    /// For stream resumption: acknowledges `h`, and returns the direction as it continues
    /// on the new stream plus the injected stanzas the receiver never acknowledged (the
    /// sender does not know them, so the proxy must deliver them again).
    pub fn resume(mut self, h: u32) -> (Direction, u32, Vec<Bytes>) {
        let translated = match self.ack(h) {
            Ok(sender) => sender,
            Err(too_high) => too_high.translated,
        };
        let unacked: Vec<Bytes> = self
            .exceptions
            .drain(..)
            .filter_map(|exception| match exception {
                Exception::Injected { stanza, .. } => Some(stanza),
                Exception::Consumed { .. } => None,
            })
            .collect();
        let next = Direction::starting_at(self.acked_recv, self.acked_sender);
        (next, translated, unacked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stanza() -> Bytes {
        Bytes::from_static(b"<iq type='result' id='x'/>")
    }

    #[test]
    fn plain_relay_is_identity() {
        let mut d = Direction::default();
        for _ in 0..5 {
            d.relayed();
        }
        assert_eq!(d.ack(3), Ok(3));
        assert_eq!(d.ack(5), Ok(5));
    }

    #[test]
    fn consumed_stanzas_raise_the_senders_count() {
        // client sends: fwd, consumed, fwd, consumed, consumed, fwd
        let mut up = Direction::default();
        up.relayed();
        up.consumed();
        up.relayed();
        up.consumed();
        up.consumed();
        up.relayed();
        // server acks 1: the consumed stanza right after it counts as handled
        assert_eq!(up.ack(1), Ok(2));
        assert_eq!(up.ack(2), Ok(5));
        assert_eq!(up.ack(3), Ok(6));
    }

    #[test]
    fn leading_consumed_stanzas_count_at_h_zero() {
        let mut up = Direction::default();
        up.consumed();
        up.consumed();
        up.relayed();
        assert_eq!(up.ack(0), Ok(2));
        assert_eq!(up.ack(1), Ok(3));
    }

    #[test]
    fn injected_stanzas_lower_the_senders_count() {
        // server→client: relay, inject, relay, inject
        let mut down = Direction::default();
        down.relayed();
        down.injected(stanza());
        down.relayed();
        down.injected(stanza());
        assert_eq!(down.ack(1), Ok(1));
        assert_eq!(down.ack(2), Ok(1));
        assert_eq!(down.ack(3), Ok(2));
        assert_eq!(down.ack(4), Ok(2));
    }

    #[test]
    fn mixed_exceptions_in_one_direction() {
        // server→client where the proxy also consumes server stanzas (answers to
        // injected IQs): relay, consume, inject, consume, relay
        let mut down = Direction::default();
        down.relayed();
        down.consumed();
        down.injected(stanza());
        down.consumed();
        down.relayed();
        assert_eq!(down.received_total(), 3);
        assert_eq!(down.sent_total(), 4);
        assert_eq!(down.ack(1), Ok(2)); // relay + the consumed right after it
        assert_eq!(down.ack(2), Ok(3)); // the injected one adds nothing, next consumed does
        assert_eq!(down.ack(3), Ok(4));
    }

    #[test]
    fn acks_never_go_backwards() {
        let mut up = Direction::default();
        up.relayed();
        up.consumed();
        up.relayed();
        assert_eq!(up.ack(2), Ok(3));
        assert_eq!(up.ack(1), Ok(3));
    }

    #[test]
    fn too_high_keeps_the_excess() {
        let mut down = Direction::default();
        down.relayed();
        down.injected(stanza());
        let err = down.ack(5).unwrap_err();
        assert_eq!(err.received, 2);
        assert_eq!(err.acked, 5);
        assert_eq!(err.translated, 1 + 3);
    }

    #[test]
    fn h_wraps_at_two_to_the_32() {
        let start = u32::MAX as u64 - 1;
        let mut up = Direction::starting_at(start, start + 3);
        up.relayed(); // recv u32::MAX
        up.relayed(); // recv 2^32 -> wraps to 0
        up.consumed();
        up.relayed(); // wraps to 1
        assert_eq!(up.ack(0), Ok(((start + 3 + 2 + 1) & 0xffff_ffff) as u32));
        assert_eq!(up.ack(1), Ok(((start + 3 + 4) & 0xffff_ffff) as u32));
    }

    #[test]
    fn exceptions_are_forgotten_once_acknowledged() {
        let mut down = Direction::default();
        for _ in 0..1000 {
            down.injected(stanza());
            down.relayed();
        }
        assert_eq!(down.ack(2000), Ok(1000));
        assert!(down.exceptions.is_empty());
    }

    #[test]
    fn resume_returns_unacknowledged_injections() {
        let mut down = Direction::default();
        down.relayed();
        down.injected(Bytes::from_static(b"<iq id='1'/>"));
        down.relayed();
        down.injected(Bytes::from_static(b"<iq id='2'/>"));
        down.relayed();
        let (mut next, sender_h, again) = down.resume(2);
        assert_eq!(sender_h, 1);
        assert_eq!(again, vec![Bytes::from_static(b"<iq id='2'/>")]);
        // The client continues from 2; the server retransmits from 1.
        for stanza in again {
            next.injected(stanza);
        }
        next.relayed(); // server's retransmission of its 2nd stanza
        next.relayed(); // and 3rd
        assert_eq!(next.ack(5), Ok(3));
    }

    #[test]
    fn arbitrary_interleavings_match_a_reference_model() {
        // Reference: walk the full event list; for a receiver prefix of h items, the
        // sender count is the sender items before the (h+1)-th receiver item.
        let patterns: [&[u8]; 6] = [b"rcicrr", b"ccc", b"iii", b"rirc", b"cicicr", b"rrccii"];
        for pattern in patterns {
            let mut d = Direction::default();
            for event in pattern {
                match event {
                    b'r' => d.relayed(),
                    b'c' => d.consumed(),
                    _ => d.injected(stanza()),
                }
            }
            let recv_items = pattern.iter().filter(|e| **e != b'c').count();
            for h in 0..=recv_items {
                let mut seen_recv = 0;
                let mut sender = 0;
                for event in pattern {
                    let counts_recv = *event != b'c';
                    if counts_recv && seen_recv == h {
                        break;
                    }
                    if counts_recv {
                        seen_recv += 1;
                    }
                    if *event != b'i' {
                        sender += 1;
                    }
                }
                let mut fresh = d.clone();
                assert_eq!(fresh.ack(h as u32), Ok(sender), "pattern {pattern:?} h={h}");
            }
        }
    }
}
