//! Namespace resolution for a stanza's top element and first child. The result is the
//! compact cache behind `Head`: `Copy` references into the stanza bytes or the
//! stream's declarations, so resolving allocates nothing in the common case.

use std::borrow::Cow;

use super::attrs::{find_decl, qname, QName};
use super::error::HeadError;
use super::escape::unescape;
use super::namespaces::Namespaces;
use super::ns::NS_XML;
use super::scanner::{ElementMeta, Known, TagMeta};
use super::span::Span;

/// Where an element's namespace comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NsRef {
    /// No namespace (`xmlns=''`, or no default namespace in scope).
    Unbound,
    /// A declaration inside the stanza whose raw value needs no unescaping.
    Local(Span),
    /// The declaration at this index of the stream's namespaces.
    Stream(u32),
    Xml,
    /// A declaration with references, decoded into `Resolved::decoded[i]`.
    Decoded(u8),
}

/// Why resolution failed, kept small and `Copy` (a `HeadError` holds a `String`):
/// an undeclared prefix (its span) or malformed input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    Undeclared(Span),
    Malformed,
}

impl Failure {
    pub(crate) fn into_error(self, raw: &[u8]) -> HeadError {
        match self {
            Failure::Undeclared(p) => {
                HeadError::UndeclaredPrefix(String::from_utf8_lossy(p.of(raw)).into_owned())
            }
            Failure::Malformed => HeadError::Malformed,
        }
    }
}

/// Resolved namespaces of the top element and the first child. Small and `Copy` so
/// caching it is a plain store (URIs written with references live in `Decoded`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Resolved {
    pub(crate) top: NsRef,
    pub(crate) child: NsRef,
    pub(crate) own_ns_declared: bool,
}

/// Namespace URIs that had to be decoded (written with entity references): rare, so
/// they are kept apart from the `Copy` cache.
pub(crate) type Decoded = Vec<String>;

impl Resolved {
    pub(crate) const UNRESOLVED: Resolved = Resolved {
        top: NsRef::Unbound,
        child: NsRef::Unbound,
        own_ns_declared: false,
    };

    pub(crate) fn uri<'a>(
        ns: NsRef,
        raw: &'a [u8],
        namespaces: &'a Namespaces,
        decoded: Option<&'a Decoded>,
    ) -> Option<&'a str> {
        match ns {
            NsRef::Unbound => None,
            NsRef::Local(span) => Some(span.str_of(raw)),
            NsRef::Stream(i) => namespaces.uri_at(i as usize),
            NsRef::Xml => Some(NS_XML),
            NsRef::Decoded(i) => decoded?.get(usize::from(i)).map(String::as_str),
        }
    }

    /// Resolves from what the scanner recorded; fails on undeclared prefixes.
    /// `decoded` collects URIs written with references.
    pub(crate) fn resolve(
        raw: &[u8],
        namespaces: &Namespaces,
        meta: &ElementMeta,
        decoded: &mut Decoded,
    ) -> Result<Resolved, Failure> {
        let top = element_name(raw, &meta.top).map_err(|_| Failure::Malformed)?;
        let own = own_decl(raw, &top, &meta.top);
        let top_ns = resolve_one(raw, top.prefix, own, namespaces, decoded)?;
        let mut child_ns = NsRef::Unbound;
        if meta.child_count > 0 {
            let child = element_name(raw, &meta.child).map_err(|_| Failure::Malformed)?;
            let decl =
                own_decl(raw, &child, &meta.child).or_else(|| own_decl(raw, &child, &meta.top));
            child_ns = resolve_one(raw, child.prefix, decl, namespaces, decoded)?;
        }
        Ok(Resolved {
            top: top_ns,
            child: child_ns,
            own_ns_declared: own.is_some(),
        })
    }
}

/// The nearest declaration inside the stanza, else the stream header's.
#[inline(always)]
fn resolve_one(
    raw: &[u8],
    prefix_span: Option<Span>,
    decl: Option<(Span, bool)>,
    namespaces: &Namespaces,
    decoded: &mut Decoded,
) -> Result<NsRef, Failure> {
    let prefix = prefix_span.map(|p| p.of(raw));
    if prefix == Some(b"xml") {
        return Ok(NsRef::Xml);
    }
    if let Some((value, escaped)) = decl {
        return local(raw, value, escaped, decoded);
    }
    match (namespaces.index_of(prefix), prefix_span) {
        (Some(i), _) => Ok(NsRef::Stream(u32::try_from(i).unwrap_or(u32::MAX))),
        (None, None) => Ok(NsRef::Unbound),
        (None, Some(p)) => Err(Failure::Undeclared(p)),
    }
}

/// A namespace declared inside the stanza; only values with references are decoded
/// here, the rest are validated lazily by `uri`.
#[inline(always)]
fn local(raw: &[u8], value: Span, escaped: bool, decoded: &mut Decoded) -> Result<NsRef, Failure> {
    if !escaped {
        return Ok(match value.is_empty() {
            true => NsRef::Unbound,
            false => NsRef::Local(value),
        });
    }
    match unescape(value.of(raw)) {
        Ok(Cow::Borrowed("")) => Ok(NsRef::Unbound),
        Ok(Cow::Borrowed(_)) => Ok(NsRef::Local(value)),
        Ok(Cow::Owned(uri)) => {
            let index = u8::try_from(decoded.len()).map_err(|_| Failure::Malformed)?;
            decoded.push(uri);
            Ok(NsRef::Decoded(index))
        }
        Err(_) => Err(Failure::Malformed),
    }
}

/// The element's qualified name, split at its prefix.
#[inline]
pub(crate) fn element_name<const N: usize>(
    raw: &[u8],
    tag: &TagMeta<N>,
) -> Result<QName, HeadError> {
    match tag.name.is_absent() {
        true => Err(HeadError::Malformed),
        false => Ok(qname(raw, tag.name)),
    }
}

/// The declaration an element makes for its own prefix: raw value, and whether it may
/// hold references.
#[inline]
fn own_decl<const N: usize>(raw: &[u8], name: &QName, tag: &TagMeta<N>) -> Option<(Span, bool)> {
    match name.prefix {
        None => tag.get(Known::Xmlns),
        Some(_) if !tag.prefixed_decls => None,
        Some(prefix) => {
            find_decl(raw, tag.name.end as usize, Some(prefix.of(raw))).map(|span| (span, true))
        }
    }
}
