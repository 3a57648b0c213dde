//! JIDs: the one address type for routes, permission checks and registry keys.
//!
//! This module owns parsing an address that a peer wrote (a `to` or `from`
//! attribute) or that the operator wrote (`proxy.toml`) into [`Jid`] (either
//! kind), [`BareJid`], [`FullJid`] or [`Domain`], and the comparison rules of
//! those types. Parsing prepares each part once; after that `==`, `Hash` and
//! `Ord` compare the prepared text byte-wise, so two spellings the server treats
//! as one address are one value here, and nothing else needs
//! `eq_ignore_ascii_case` or `to_lowercase`.
//!
//! # Normalisation
//!
//! The proxy must see the same entity the server behind it sees, or a variant
//! the server folds could slip past a delegation or permission check. The
//! servers we front prepare JIDs with the RFC 6122 stringprep profiles
//! (Prosody's `util.jid.prep` runs nodeprep, nameprep and resourceprep from
//! libidn or ICU), so we apply the same profiles, through the `jid` crate:
//!
//! - localpart, Nodeprep (RFC 3920 appendix A): characters "commonly mapped to
//!   nothing" (soft hyphen, zero-width space, ...) are dropped, case is folded
//!   with table B.2 (`Alice` → `alice`, `Straße` → `strasse`, `İ` → `i̇`, not
//!   `i`), NFKC is applied (fullwidth `ａｌｉｃｅ` → `alice`, `ﬀ` → `ff`), then
//!   spaces, controls, `"&'/:<>@` and mixed-direction text are refused.
//! - domainpart: one trailing dot (the DNS root label) is dropped, as Prosody
//!   drops it; IPv4 and bracketed IPv6 literals are kept (hex digits
//!   lowercased); any other name must pass IDNA (UTS #46: labels of at most 63
//!   octets, at most 253 in all, no leading or trailing hyphen) and is then
//!   Nameprep'd (RFC 3491: B.2 case folding and NFKC). The result stays in
//!   Unicode: `bücher.example` and `xn--bcher-kva.example` are two domains, as
//!   they are to Prosody.
//! - resourcepart, Resourceprep (RFC 3920 appendix B): characters mapped to
//!   nothing are dropped and NFKC is applied, but case is kept: `/Phone` and
//!   `/phone` are two resources.
//! - every part is 1 to 1023 octets, both as written (Prosody refuses a part
//!   of 1024 octets or more before preparing it) and once prepared.
//!
//! # Characters newer than Unicode 3.2
//!
//! Stringprep is defined on Unicode 3.2. The `stringprep` crate normalises
//! with today's Unicode data, which agrees with 3.2 on every character 3.2
//! assigns, but maps some newer ones where libidn leaves them alone (today's
//! NFKC turns U+1F100 `🄀` into `0.`). We therefore refuse an address holding
//! any code point unassigned in Unicode 3.2 before preparing it, as libidn
//! does in its strict mode. In exchange, whenever we accept an address we name
//! the entity the server names (short of the few CJK compatibility ideographs
//! whose decomposition Unicode corrected after 3.2, in Corrigendum #4). The
//! price: addresses with newer characters,
//! emoji first of all (`room@muc.example/😀`), are refused with
//! [`JidError::Unassigned`] although Prosody routes them (it prepares stanza
//! addresses in non-strict mode). A caller that only forwards can tell that
//! error apart and pass the address on unparsed; one that decides on it
//! cannot do better than refuse.
//!
//! # Cost
//!
//! Parsing allocates the prepared text and one reference-counted box. An
//! address already in prepared ASCII form skips the Unicode work except for the
//! IDNA check of its domain (about 0.1 µs in a release build); one whose case
//! or width must be folded takes about 1 µs. Values are `Arc`-backed: `clone`
//! is one atomic increment, `==` is a pointer check then a byte comparison,
//! `Hash` hashes the prepared bytes. `FullJid::bare` allocates a new value
//! (about as much as a parse of prepared text); `Jid::bare` of a bare JID does
//! not.

use std::borrow::{Borrow, Cow};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;
use std::sync::Arc;

pub use jid::DomainRef;

/// RFC 6122 §2.1: each part is at most 1023 octets.
const MAX_PART_BYTES: usize = 1023;

/// Which part of a JID a parse error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JidPart {
    Node,
    Domain,
    Resource,
}

impl JidPart {
    /// The stringprep profile that prepares this part.
    fn profile(self) -> &'static str {
        match self {
            JidPart::Node => "nodeprep",
            JidPart::Domain => "nameprep",
            JidPart::Resource => "resourceprep",
        }
    }
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
    /// Also when every character of the part is one stringprep drops.
    #[error("empty {0}")]
    Empty(JidPart),
    #[error("{0} longer than 1023 bytes")]
    TooLong(JidPart),
    #[error(
        "{part} contains {ch:?} (U+{code:04X}), which Unicode 3.2 does not assign, \
         so stringprep cannot compare it reliably",
        code = u32::from(*ch)
    )]
    Unassigned { part: JidPart, ch: char },
    /// A prohibited character (space, control, `"&'/:<>@` in a localpart, ...)
    /// or mixed-direction text; `reason` is the stringprep crate's wording.
    #[error("{part} is refused by {}: {reason}", part.profile())]
    Prep { part: JidPart, reason: String },
    #[error("domainpart is not a valid domain name or IP literal")]
    BadDomain,
    #[error("more than one @ before the resourcepart")]
    TooManyAts,
    #[error("a full JID needs a /resource")]
    MissingResource,
    #[error("expected a bare JID, found a /resource")]
    UnexpectedResource,
    #[error("expected a domain, found a localpart")]
    UnexpectedNode,
}

/// An address as a peer wrote it: bare or full, decided by the text.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Jid {
    Bare(BareJid),
    Full(FullJid),
}

/// `[node@]domain`, prepared. Cannot hold a resource.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BareJid(Arc<jid::BareJid>);

/// `[node@]domain/resource`, prepared. Always holds a resource.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FullJid(Arc<jid::FullJid>);

/// A prepared domain with neither localpart nor resource: a served host or a
/// component name.
///
/// Keys of a map of domains can be looked up with the [`DomainRef`] that
/// [`BareJid::domain`] and friends return, without allocating.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Domain(BareJid);

impl Jid {
    /// Parses and prepares `[node@]domain[/resource]`. The resource is split off
    /// at the first `/`, so it may itself contain `@` and `/`.
    pub fn parse(text: &str) -> Result<Jid, JidError> {
        Ok(match prepare(text)?.try_into_full() {
            Ok(full) => Jid::Full(FullJid(Arc::new(full))),
            Err(bare) => Jid::Bare(BareJid(Arc::new(bare))),
        })
    }

    pub fn node(&self) -> Option<&str> {
        self.as_crate().node().map(|node| node.as_str())
    }

    pub fn domain(&self) -> &DomainRef {
        self.as_crate().domain()
    }

    pub fn resource(&self) -> Option<&str> {
        self.as_crate().resource().map(|resource| resource.as_str())
    }

    /// Without the resource; a clone (no allocation) when already bare.
    pub fn bare(&self) -> BareJid {
        match self {
            Jid::Bare(bare) => bare.clone(),
            Jid::Full(full) => full.bare(),
        }
    }

    /// True for a plain domain, such as a server or component address.
    pub fn is_domain(&self) -> bool {
        matches!(self, Jid::Bare(bare) if bare.is_domain())
    }

    /// The prepared text, as it should be compared or written back.
    pub fn as_str(&self) -> &str {
        self.as_crate().as_str()
    }

    fn as_crate(&self) -> &jid::Jid {
        match self {
            Jid::Bare(bare) => &bare.0,
            Jid::Full(full) => &full.0,
        }
    }
}

impl BareJid {
    /// Parses and prepares `[node@]domain`; a resource is an error.
    pub fn parse(text: &str) -> Result<BareJid, JidError> {
        match Jid::parse(text)? {
            Jid::Bare(bare) => Ok(bare),
            Jid::Full(_) => Err(JidError::UnexpectedResource),
        }
    }

    pub fn node(&self) -> Option<&str> {
        self.0.node().map(|node| node.as_str())
    }

    pub fn domain(&self) -> &DomainRef {
        self.0.domain()
    }

    /// True for a plain domain, such as a server or component address.
    pub fn is_domain(&self) -> bool {
        self.0.node().is_none()
    }

    /// This JID with `resource` (as written; it is prepared here).
    pub fn with_resource(&self, resource: &str) -> Result<FullJid, JidError> {
        check_written(JidPart::Resource, resource)?;
        self.0
            .with_resource_str(resource)
            .map(|full| FullJid(Arc::new(full)))
            .map_err(|err| crate_error(err, &Split::resource_only(resource)))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl FullJid {
    /// Parses and prepares `[node@]domain/resource`; a missing resource is an
    /// error.
    pub fn parse(text: &str) -> Result<FullJid, JidError> {
        match Jid::parse(text)? {
            Jid::Full(full) => Ok(full),
            Jid::Bare(_) => Err(JidError::MissingResource),
        }
    }

    pub fn node(&self) -> Option<&str> {
        self.0.node().map(|node| node.as_str())
    }

    pub fn domain(&self) -> &DomainRef {
        self.0.domain()
    }

    pub fn resource(&self) -> &str {
        self.0.resource().as_str()
    }

    /// Without the resource. Allocates: a bare JID does not share the text.
    pub fn bare(&self) -> BareJid {
        BareJid(Arc::new(self.0.to_bare()))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl Domain {
    /// Parses and prepares a plain domain; a localpart or resource is an error.
    pub fn parse(text: &str) -> Result<Domain, JidError> {
        let bare = BareJid::parse(text)?;
        if bare.is_domain() {
            Ok(Domain(bare))
        } else {
            Err(JidError::UnexpectedNode)
        }
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The domain as a JID (a component's or server's address).
    pub fn as_bare(&self) -> &BareJid {
        &self.0
    }
}

impl From<&DomainRef> for Domain {
    /// Allocates; look maps up with the `&DomainRef` itself instead.
    fn from(domain: &DomainRef) -> Domain {
        Domain(BareJid(Arc::new(jid::BareJid::from(domain))))
    }
}

impl From<Domain> for BareJid {
    fn from(domain: Domain) -> BareJid {
        domain.0
    }
}

impl From<BareJid> for Jid {
    fn from(bare: BareJid) -> Jid {
        Jid::Bare(bare)
    }
}

impl From<FullJid> for Jid {
    fn from(full: FullJid) -> Jid {
        Jid::Full(full)
    }
}

impl Borrow<DomainRef> for Domain {
    fn borrow(&self) -> &DomainRef {
        self.0.domain()
    }
}

// `Borrow<DomainRef>` requires hashing exactly as `DomainRef` hashes.
impl Hash for Domain {
    fn hash<H: Hasher>(&self, state: &mut H) {
        Borrow::<DomainRef>::borrow(self).hash(state);
    }
}

// A bare and a full JID never have the same text (only the full one holds a
// `/`), so ordering by text agrees with `==`.
impl Ord for Jid {
    fn cmp(&self, other: &Jid) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl PartialOrd for Jid {
    fn partial_cmp(&self, other: &Jid) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

macro_rules! text_impls {
    ($($ty:ident),+) => {$(
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_tuple(stringify!($ty)).field(&self.as_str()).finish()
            }
        }

        impl FromStr for $ty {
            type Err = JidError;

            fn from_str(text: &str) -> Result<$ty, JidError> {
                $ty::parse(text)
            }
        }
    )+};
}

text_impls!(Jid, BareJid, FullJid, Domain);

/// An address split into its parts as written: the resource is everything
/// after the first `/`, the localpart everything before the first `@` ahead
/// of it. This is how the `jid` crate and Prosody split, so our checks below
/// look at the same parts the crate then prepares.
struct Split<'a> {
    node: Option<&'a str>,
    domain: &'a str,
    resource: Option<&'a str>,
}

impl<'a> Split<'a> {
    fn new(text: &'a str) -> Split<'a> {
        let (head, resource) = match text.split_once('/') {
            Some((head, resource)) => (head, Some(resource)),
            None => (text, None),
        };
        let (node, domain) = match head.split_once('@') {
            Some((node, domain)) => (Some(node), domain),
            None => (None, head),
        };
        Split {
            node,
            domain,
            resource,
        }
    }

    fn resource_only(resource: &'a str) -> Split<'a> {
        Split {
            node: None,
            domain: "",
            resource: Some(resource),
        }
    }
}

/// Checks the parts as written, then lets the crate prepare them.
fn prepare(text: &str) -> Result<jid::Jid, JidError> {
    let split = Split::new(text);
    if split.domain.contains('@') {
        return Err(JidError::TooManyAts);
    }
    if let Some(node) = split.node {
        check_written(JidPart::Node, node)?;
    }
    if let Some(resource) = split.resource {
        check_written(JidPart::Resource, resource)?;
    }
    let domain = written_domain(split.domain)?;
    let text: Cow<'_, str> = if domain == split.domain {
        Cow::Borrowed(text)
    } else {
        let mut rebuilt = String::with_capacity(text.len());
        if let Some(node) = split.node {
            rebuilt.push_str(node);
            rebuilt.push('@');
        }
        rebuilt.push_str(&domain);
        if let Some(resource) = split.resource {
            rebuilt.push('/');
            rebuilt.push_str(resource);
        }
        Cow::Owned(rebuilt)
    };
    let split = Split {
        domain: &domain,
        ..split
    };
    jid::Jid::new(&text).map_err(|err| crate_error(err, &split))
}

/// Length as written (Prosody's limit, and it keeps a huge attribute from
/// being normalised at all) and the Unicode 3.2 rule from the module doc.
fn check_written(part: JidPart, text: &str) -> Result<(), JidError> {
    if text.is_empty() {
        return Err(JidError::Empty(part));
    }
    if text.len() > MAX_PART_BYTES {
        return Err(JidError::TooLong(part));
    }
    let unassigned = |c: char| !c.is_ascii() && stringprep::tables::unassigned_code_point(c);
    match text.chars().find(|&c| unassigned(c)) {
        Some(ch) => Err(JidError::Unassigned { part, ch }),
        None => Ok(()),
    }
}

/// The domainpart the crate should see. Prosody drops one trailing dot before
/// nameprep. The crate drops it too, but only for its checks: it keeps the dot
/// in the text and then cuts the resource one byte early (`a@b./r` gives the
/// resource `/r`), so the dot must be gone before the crate sees it. An IPv6
/// literal skips the crate's nameprep, which would have lowercased it.
fn written_domain(domain: &str) -> Result<Cow<'_, str>, JidError> {
    let domain = domain.strip_suffix('.').unwrap_or(domain);
    check_written(JidPart::Domain, domain)?;
    // A second trailing dot is an empty label; the crate would drop it too
    // and hit the same misplaced resource.
    if domain.ends_with('.') {
        return Err(JidError::BadDomain);
    }
    if domain.starts_with('[') && domain.bytes().any(|b| b.is_ascii_uppercase()) {
        Ok(Cow::Owned(domain.to_ascii_lowercase()))
    } else {
        Ok(Cow::Borrowed(domain))
    }
}

/// Maps the crate's error, asking the stringprep crate again for the reason of
/// a stringprep refusal (the `jid` crate drops it).
fn crate_error(err: jid::Error, split: &Split<'_>) -> JidError {
    let prep = |part: JidPart, text: Option<&str>| {
        let text = text.unwrap_or_default();
        let refusal = match part {
            JidPart::Node => stringprep::nodeprep(text).err(),
            JidPart::Domain => stringprep::nameprep(text).err(),
            JidPart::Resource => stringprep::resourceprep(text).err(),
        };
        let reason = refusal.map_or_else(|| "refused".to_owned(), |e| e.to_string());
        JidError::Prep { part, reason }
    };
    match err {
        jid::Error::NodeEmpty => JidError::Empty(JidPart::Node),
        jid::Error::ResourceEmpty => JidError::Empty(JidPart::Resource),
        jid::Error::NodeTooLong => JidError::TooLong(JidPart::Node),
        jid::Error::ResourceTooLong => JidError::TooLong(JidPart::Resource),
        jid::Error::NodePrep => prep(JidPart::Node, split.node),
        jid::Error::NamePrep => prep(JidPart::Domain, Some(split.domain)),
        jid::Error::ResourcePrep => prep(JidPart::Resource, split.resource),
        jid::Error::ResourceMissingInFullJid => JidError::MissingResource,
        jid::Error::ResourceInBareJid => JidError::UnexpectedResource,
        jid::Error::TooManyAts => JidError::TooManyAts,
        jid::Error::Idna => JidError::BadDomain,
    }
}

#[cfg(test)]
mod tests;
