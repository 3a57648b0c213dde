//! `Jid`: the RFC 7622 address type (`node@domain/resource`) with the basic
//! well-formedness rules the proxy relies on. Full PRECIS/IDNA profiles are out of
//! scope; the domain is case-folded so that lookups can compare JIDs byte-wise.

use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;

/// RFC 7622 §3.1: each part is limited to 1023 octets.
const MAX_PART_BYTES: usize = 1023;

/// Characters RFC 7622 §3.3.1 forbids in a localpart.
const NODE_FORBIDDEN: &[char] = &['"', '&', '\'', '/', ':', '<', '>', '@'];

/// Which part of a JID a parse error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JidPart {
    Node,
    Domain,
    Resource,
}

impl fmt::Display for JidPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            JidPart::Node => "localpart",
            JidPart::Domain => "domainpart",
            JidPart::Resource => "resourcepart",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JidError {
    #[error("empty {0}")]
    Empty(JidPart),
    #[error("{0} longer than 1023 bytes")]
    TooLong(JidPart),
    #[error("{part} contains forbidden character {ch:?}")]
    ForbiddenChar { part: JidPart, ch: char },
    #[error("domainpart has an empty label (leading, trailing or doubled dot)")]
    EmptyLabel,
    #[error("domainpart is not a valid IPv6 literal")]
    BadIpv6Literal,
}

/// A well-formed JID. The domain is stored lowercased; node and resource are kept
/// as written (their case rules belong to the server that owns them).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Jid {
    node: Option<String>,
    domain: String,
    resource: Option<String>,
}

impl Jid {
    /// Parses `[node@]domain[/resource]`. The resource is split off first, so a
    /// resource may itself contain `@` and `/` (RFC 7622 §3.1).
    pub fn parse(s: &str) -> Result<Jid, JidError> {
        let (rest, resource) = match s.split_once('/') {
            Some((rest, res)) => (rest, Some(check_resource(res)?)),
            None => (s, None),
        };
        let (node, domain) = match rest.split_once('@') {
            Some((node, domain)) => (Some(check_node(node)?), domain),
            None => (None, rest),
        };
        Ok(Jid {
            node: node.map(str::to_owned),
            domain: normalize_domain(check_domain(domain)?),
            resource: resource.map(str::to_owned),
        })
    }

    pub fn node(&self) -> Option<&str> {
        self.node.as_deref()
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    pub fn resource(&self) -> Option<&str> {
        self.resource.as_deref()
    }

    pub fn bare(&self) -> Jid {
        Jid {
            resource: None,
            ..self.clone()
        }
    }

    /// True for a plain domain such as a server or component address.
    pub fn is_domain(&self) -> bool {
        self.node.is_none() && self.resource.is_none()
    }
}

/// Case-folds a domain the same way [`Jid::parse`] does, for lookups by raw string.
pub fn normalize_domain(domain: &str) -> String {
    domain.to_lowercase()
}

impl FromStr for Jid {
    type Err = JidError;

    fn from_str(s: &str) -> Result<Jid, JidError> {
        Jid::parse(s)
    }
}

impl fmt::Display for Jid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(node) = &self.node {
            write!(f, "{node}@")?;
        }
        f.write_str(&self.domain)?;
        if let Some(resource) = &self.resource {
            write!(f, "/{resource}")?;
        }
        Ok(())
    }
}

fn check_length(part: JidPart, s: &str) -> Result<(), JidError> {
    if s.is_empty() {
        return Err(JidError::Empty(part));
    }
    if s.len() > MAX_PART_BYTES {
        return Err(JidError::TooLong(part));
    }
    Ok(())
}

fn check_node(node: &str) -> Result<&str, JidError> {
    check_length(JidPart::Node, node)?;
    let bad = |c: char| c.is_whitespace() || c.is_control() || NODE_FORBIDDEN.contains(&c);
    match node.chars().find(|&c| bad(c)) {
        Some(ch) => Err(JidError::ForbiddenChar {
            part: JidPart::Node,
            ch,
        }),
        None => Ok(node),
    }
}

fn check_resource(resource: &str) -> Result<&str, JidError> {
    check_length(JidPart::Resource, resource)?;
    match resource.chars().find(|c| c.is_control()) {
        Some(ch) => Err(JidError::ForbiddenChar {
            part: JidPart::Resource,
            ch,
        }),
        None => Ok(resource),
    }
}

fn check_domain(domain: &str) -> Result<&str, JidError> {
    check_length(JidPart::Domain, domain)?;
    if let Some(literal) = domain.strip_prefix('[') {
        return match literal.strip_suffix(']').map(str::parse::<Ipv6Addr>) {
            Some(Ok(_)) => Ok(domain),
            _ => Err(JidError::BadIpv6Literal),
        };
    }
    let bad = |c: char| {
        c.is_whitespace()
            || c.is_control()
            || matches!(
                c,
                '@' | '/' | ':' | '[' | ']' | '"' | '\'' | '<' | '>' | '\\'
            )
    };
    if let Some(ch) = domain.chars().find(|&c| bad(c)) {
        return Err(JidError::ForbiddenChar {
            part: JidPart::Domain,
            ch,
        });
    }
    if domain.split('.').any(str::is_empty) {
        return Err(JidError::EmptyLabel);
    }
    Ok(domain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_all_parts() {
        let jid = Jid::parse("juliet@Capulet.LIT/balcony@home/x").unwrap();
        assert_eq!(jid.node(), Some("juliet"));
        assert_eq!(jid.domain(), "capulet.lit");
        assert_eq!(jid.resource(), Some("balcony@home/x"));
        assert_eq!(jid.to_string(), "juliet@capulet.lit/balcony@home/x");
        assert_eq!(jid.bare().to_string(), "juliet@capulet.lit");
        assert!(!jid.is_domain());
    }

    #[test]
    fn domain_only() {
        let jid = Jid::parse("pubsub.capulet.lit").unwrap();
        assert!(jid.is_domain());
        assert_eq!(jid.node(), None);
        assert_eq!(jid.resource(), None);
        assert!(Jid::parse("[::1]").unwrap().is_domain());
    }

    #[test]
    fn rejects_malformed() {
        let cases = [
            ("", JidError::Empty(JidPart::Domain)),
            ("@capulet.lit", JidError::Empty(JidPart::Node)),
            ("capulet.lit/", JidError::Empty(JidPart::Resource)),
            (".capulet.lit", JidError::EmptyLabel),
            ("capulet.lit.", JidError::EmptyLabel),
            ("capulet..lit", JidError::EmptyLabel),
            ("[::zz]", JidError::BadIpv6Literal),
        ];
        for (input, expected) in cases {
            assert_eq!(Jid::parse(input), Err(expected), "{input:?}");
        }
        assert!(matches!(
            Jid::parse("a@b@c"),
            Err(JidError::ForbiddenChar { ch: '@', .. })
        ));
        assert!(matches!(
            Jid::parse("capulet lit"),
            Err(JidError::ForbiddenChar { ch: ' ', .. })
        ));
        assert!(matches!(
            Jid::parse("ro:meo@capulet.lit"),
            Err(JidError::ForbiddenChar { ch: ':', .. })
        ));
    }

    #[test]
    fn enforces_part_length() {
        let long = "a".repeat(1024);
        assert_eq!(Jid::parse(&long), Err(JidError::TooLong(JidPart::Domain)));
        let ok = "a".repeat(1023);
        assert!(Jid::parse(&format!("{ok}@{ok}/{ok}")).is_ok());
    }
}
