//! The accept side of XEP-0114: header checks (checklist 1) and the SHA-1 handshake
//! (checklist 2).

use subtle::ConstantTimeEq;

use crate::jid::Domain;
use sha1::{Digest, Sha1};

use crate::config::Config;

use crate::xml::ns::{NS_COMPONENT, NS_STREAMS};
use crate::xml::{Stanza, StreamHeader};

/// `hex(SHA-1(stream id ‖ secret))`, lowercase, as XEP-0114 §3 defines it.
pub fn handshake_digest(stream_id: &str, secret: &str) -> String {
    let mut hasher = Sha1::new();
    hasher.update(stream_id.as_bytes());
    hasher.update(secret.as_bytes());
    hex::encode(hasher.finalize())
}

/// A refused component stream: the stream error condition and its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub condition: &'static str,
    pub text: &'static str,
}

const fn refusal(condition: &'static str, text: &'static str) -> Refusal {
    Refusal { condition, text }
}

/// Checks the component's stream header; returns the (lowercased) component name.
pub fn check_header(header: &StreamHeader, cfg: &Config) -> Result<String, Refusal> {
    if header.default_ns.as_deref() != Some(NS_COMPONENT)
        || header.namespaces.lookup(header.stream_prefix.as_deref()) != Some(NS_STREAMS)
    {
        return Err(refusal(
            "invalid-namespace",
            "expected jabber:component:accept",
        ));
    }
    let Some(to) = header.to.as_deref() else {
        return Err(refusal(
            "improper-addressing",
            "the stream header has no 'to'",
        ));
    };
    let Ok(name) = Domain::parse(to) else {
        return Err(refusal(
            "host-unknown",
            "the stream header's 'to' is not a domain",
        ));
    };
    if cfg.component(name.as_str()).is_none() {
        return Err(refusal("host-unknown", "no such component is configured"));
    }
    Ok(name.as_str().to_owned())
}

/// Checks `<handshake>DIGEST</handshake>` against the configured secret.
pub fn check_handshake(stanza: &Stanza, stream_id: &str, secret: &str) -> Result<(), Refusal> {
    let not_authorized = refusal("not-authorized", "handshake failed");
    let head = stanza.head().map_err(|_| not_authorized)?;
    if head.name() != "handshake" || head.ns() != Some(NS_COMPONENT) || head.child_count() != 0 {
        return Err(not_authorized);
    }
    let body = &stanza.bytes()[head.content_range()];
    let offered = std::str::from_utf8(body)
        .map_err(|_| not_authorized)?
        .trim();
    let expected = handshake_digest(stream_id, secret);
    if constant_time_eq_ignore_case(offered.as_bytes(), expected.as_bytes()) {
        Ok(())
    } else {
        Err(not_authorized)
    }
}

/// Hex digests compared case-insensitively in constant time (`subtle`), so the time
/// taken reveals nothing about how much of the digest was right.
fn constant_time_eq_ignore_case(a: &[u8], b: &[u8]) -> bool {
    let a = a.to_ascii_lowercase();
    let b = b.to_ascii_lowercase();
    bool::from(a.ct_eq(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_matches_xep_0114_example() {
        // checklist 2
        assert_eq!(
            handshake_digest("3BF96D32", "s3cr3t"),
            "ba33290100f616a33656a931798d6c9011cfa840"
        );
    }

    #[test]
    fn comparison_ignores_case_only() {
        assert!(constant_time_eq_ignore_case(b"ABcd", b"abCD"));
        assert!(!constant_time_eq_ignore_case(b"abce", b"abcd"));
        assert!(!constant_time_eq_ignore_case(b"abc", b"abcd"));
    }
}
