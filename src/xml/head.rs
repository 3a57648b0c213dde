//! Lazily parsed views of a stanza's top element and first child: names, resolved
//! namespaces and attributes, stored as byte spans into the stanza so parsing a head
//! allocates nothing (values are unescaped on access, borrowed unless they hold
//! entities).
//!
//! The views nest instead of sharing by reference counting: a `Stanza` is a `Head`, a
//! `Head` wraps the `ChildHead` that holds the bytes and the parse cache, so handing out
//! `&Head` and `&ChildHead` costs no `Bytes`/`Arc` clones (no atomics per stanza).

use std::borrow::Cow;
use std::cell::OnceCell;
use std::ops::Range;

use bytes::Bytes;

use super::attrs::{qname, Attrs};
use super::error::HeadError;
use super::escape::unescape;
use super::namespaces::{Namespaces, NsHandle};
use super::resolve::{element_name, Decoded, Failure, NsRef, Resolved};
use super::scanner::{ElementMeta, Known, TagMeta};
use super::span::Span;

/// A view of one element's open tag: its recorded name and where attributes start.
fn attrs_of<'a, const N: usize>(raw: &'a [u8], tag: &TagMeta<N>) -> Attrs<'a> {
    Attrs::new(raw, tag.name.end as usize)
}

fn find_attr<const N: usize>(raw: &[u8], tag: &TagMeta<N>, name: &str) -> Option<Span> {
    attrs_of(raw, tag)
        .find(|a| a.name.of(raw) == name.as_bytes())
        .map(|a| a.value)
}

fn attr_pairs<'a, const N: usize>(
    raw: &'a [u8],
    tag: &TagMeta<N>,
) -> impl Iterator<Item = (&'a str, Cow<'a, str>)> {
    attrs_of(raw, tag).filter_map(move |a| {
        let value = unescape(a.value.of(raw)).ok()?;
        Some((a.name.str_of(raw), value))
    })
}

fn local_name<'a, const N: usize>(raw: &'a [u8], tag: &TagMeta<N>) -> &'a str {
    if tag.unprefixed {
        return tag.name.str_of(raw);
    }
    element_name(raw, tag).map_or("", |q| q.local.str_of(raw))
}

fn prefix<'a, const N: usize>(raw: &'a [u8], tag: &TagMeta<N>) -> Option<&'a str> {
    if tag.unprefixed {
        return None;
    }
    let prefix = element_name(raw, tag).ok()?.prefix?;
    Some(prefix.str_of(raw))
}

/// The top element of a stanza.
#[derive(Clone, Debug)]
pub struct Head {
    /// Also the storage of the whole stanza (see the module doc).
    inner: ChildHead,
}

/// The first child element of a stanza.
#[derive(Clone, Debug)]
pub struct ChildHead {
    bytes: Bytes,
    namespaces: NsHandle,
    meta: ElementMeta,
    parsed: OnceCell<Result<Resolved, Failure>>,
    /// Namespace URIs written with references, decoded during resolution (rare, so
    /// boxed to keep every stanza small).
    decoded: OnceCell<Box<Decoded>>,
}

impl Head {
    pub(crate) fn new(bytes: Bytes, namespaces: NsHandle, meta: ElementMeta) -> Self {
        Head {
            inner: ChildHead {
                bytes,
                namespaces,
                meta,
                parsed: OnceCell::new(),
                decoded: OnceCell::new(),
            },
        }
    }

    pub(crate) fn bytes(&self) -> &Bytes {
        &self.inner.bytes
    }

    pub(crate) fn into_bytes(self) -> Bytes {
        self.inner.bytes
    }

    pub(crate) fn namespaces(&self) -> &Namespaces {
        &self.inner.namespaces
    }

    /// Checks that the head resolves. Elements and first children without prefixes
    /// (nearly all stanzas) cannot fail to resolve, so their namespaces are only
    /// resolved once `ns` asks for them; otherwise resolution happens now, on the
    /// first call, and its outcome (errors too) is cached.
    #[inline]
    pub(crate) fn ensure_parsed(&self) -> Result<(), HeadError> {
        if self.inner.infallible() {
            return Ok(());
        }
        match self.inner.parsed() {
            Ok(_) => Ok(()),
            Err(failure) => Err(failure.into_error(&self.inner.bytes)),
        }
    }

    fn resolved(&self) -> Resolved {
        self.inner.resolved()
    }

    fn raw(&self) -> &[u8] {
        &self.inner.bytes
    }

    /// Local name, e.g. `iq`, `message`, `features`, `a`.
    pub fn name(&self) -> &str {
        local_name(self.raw(), &self.inner.meta.top)
    }

    pub fn prefix(&self) -> Option<&str> {
        prefix(self.raw(), &self.inner.meta.top)
    }

    /// Resolved namespace: the element's own declaration, else the stream's.
    pub fn ns(&self) -> Option<&str> {
        self.inner.uri(self.resolved().top)
    }

    pub fn to(&self) -> Option<Cow<'_, str>> {
        self.known(Known::To)
    }

    pub fn from(&self) -> Option<Cow<'_, str>> {
        self.known(Known::From)
    }

    pub fn type_(&self) -> Option<Cow<'_, str>> {
        self.known(Known::Type)
    }

    pub fn id(&self) -> Option<Cow<'_, str>> {
        self.known(Known::Id)
    }

    fn known(&self, known: Known) -> Option<Cow<'_, str>> {
        let (span, escaped) = self.inner.meta.top.get(known)?;
        match escaped {
            true => unescape(span.of(self.raw())).ok(),
            false => Some(Cow::Borrowed(span.str_of(self.raw()))),
        }
    }

    /// Any attribute of the top element by qualified name, unescaped.
    pub fn attr(&self, name: &str) -> Option<Cow<'_, str>> {
        let span = find_attr(self.raw(), &self.inner.meta.top, name)?;
        unescape(span.of(self.raw())).ok()
    }

    /// Byte range of the raw (escaped) value of attribute `name`, for in-place rewriting.
    pub fn attr_range(&self, name: &str) -> Option<Range<usize>> {
        find_attr(self.raw(), &self.inner.meta.top, name).map(Span::range)
    }

    /// All attributes of the top element in order, values unescaped.
    pub fn attrs(&self) -> impl Iterator<Item = (&str, Cow<'_, str>)> {
        attr_pairs(self.raw(), &self.inner.meta.top)
    }

    /// The first child element, if any.
    pub fn child(&self) -> Option<&ChildHead> {
        (self.inner.meta.child_count > 0).then_some(&self.inner)
    }

    /// Number of child elements (text nodes not counted).
    pub fn child_count(&self) -> usize {
        self.inner.meta.child_count as usize
    }

    /// True for `<a/>`-style elements.
    pub fn is_empty_element(&self) -> bool {
        self.inner.meta.close_start as usize >= self.inner.bytes.len()
    }

    /// Bytes of the opening tag.
    pub fn open_tag_range(&self) -> Range<usize> {
        0..self.inner.meta.open_end as usize
    }

    /// Bytes between the open and close tag (empty for self-closing elements).
    pub fn content_range(&self) -> Range<usize> {
        self.inner.meta.open_end as usize..self.inner.meta.close_start as usize
    }

    /// True if the element itself declares the namespace of its own prefix (`xmlns=`
    /// for the usual unprefixed stanza), rather than inheriting the stream's.
    pub fn own_ns_declared(&self) -> bool {
        self.resolved().own_ns_declared
    }
}

impl ChildHead {
    /// Whether resolving cannot fail: both names are there and unprefixed, and no
    /// default namespace declaration they use needs unescaping (which is where
    /// resolution of an unprefixed name could fail).
    #[inline]
    fn infallible(&self) -> bool {
        let clean = |name: Span, unprefixed: bool, xmlns: Option<(Span, bool)>| {
            !name.is_absent()
                && (unprefixed || qname(&self.bytes, name).prefix.is_none())
                && !xmlns.is_some_and(|(_, escaped)| escaped)
        };
        let (top, child) = (&self.meta.top, &self.meta.child);
        clean(top.name, top.unprefixed, top.get(Known::Xmlns))
            && (self.meta.child_count == 0
                || clean(child.name, child.unprefixed, child.get(Known::Xmlns)))
    }

    /// Resolves on the first call; later calls return the cached outcome.
    fn parsed(&self) -> &Result<Resolved, Failure> {
        self.parsed.get_or_init(|| {
            let mut decoded = Decoded::new();
            let resolved =
                Resolved::resolve(&self.bytes, &self.namespaces, &self.meta, &mut decoded);
            if !decoded.is_empty() {
                let _ = self.decoded.set(Box::new(decoded));
            }
            resolved
        })
    }

    fn resolved(&self) -> Resolved {
        match self.parsed() {
            Ok(resolved) => *resolved,
            Err(_) => Resolved::UNRESOLVED,
        }
    }

    fn uri(&self, ns: NsRef) -> Option<&str> {
        Resolved::uri(
            ns,
            &self.bytes,
            &self.namespaces,
            self.decoded.get().map(|d| &**d),
        )
    }

    pub fn name(&self) -> &str {
        local_name(&self.bytes, &self.meta.child)
    }

    pub fn prefix(&self) -> Option<&str> {
        prefix(&self.bytes, &self.meta.child)
    }

    /// Resolved namespace, considering the child's, the parent's and the stream's
    /// declarations in that order.
    pub fn ns(&self) -> Option<&str> {
        self.uri(self.resolved().child)
    }

    pub fn attr(&self, name: &str) -> Option<Cow<'_, str>> {
        let span = find_attr(&self.bytes, &self.meta.child, name)?;
        unescape(span.of(&self.bytes)).ok()
    }

    /// All attributes of the child's open tag in order, values unescaped.
    pub fn attrs(&self) -> impl Iterator<Item = (&str, Cow<'_, str>)> {
        attr_pairs(&self.bytes, &self.meta.child)
    }

    /// The whole child element's bytes within the stanza.
    pub fn range(&self) -> Range<usize> {
        self.meta.first_child.range()
    }
}
