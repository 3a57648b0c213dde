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
use std::sync::Arc;

use bytes::Bytes;

use super::attrs::{find_decl, qname, Attrs, QName};
use super::error::HeadError;
use super::escape::unescape;
use super::namespaces::{Namespaces, XML_NS};
use super::scanner::{ElementMeta, Known, TagMeta};
use super::span::Span;

/// Where an element's namespace comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
enum NsRef {
    /// No namespace (`xmlns=''`, or no default namespace in scope).
    Unbound,
    /// A declaration inside the stanza; the raw value needs no unescaping.
    Local(Span),
    /// A declaration inside the stanza whose value holds entity references.
    Owned(String),
    /// The declaration at this index of the stream's namespaces.
    Stream(usize),
    Xml,
}

/// An element name and the namespace it resolved to.
#[derive(Clone, Debug)]
struct Named {
    name: QName,
    ns: NsRef,
    /// Offset just past the element name, where its attributes start.
    attrs_start: u32,
}

const NO_SPAN: Span = Span { start: 0, end: 0 };

impl Named {
    const EMPTY: Named = Named {
        name: QName {
            prefix: None,
            local: NO_SPAN,
        },
        ns: NsRef::Unbound,
        attrs_start: 0,
    };

    fn ns<'a>(&'a self, bytes: &'a [u8], namespaces: &'a Namespaces) -> Option<&'a str> {
        match &self.ns {
            NsRef::Unbound => None,
            NsRef::Local(span) => Some(span.str_of(bytes)),
            NsRef::Owned(uri) => Some(uri.as_str()),
            NsRef::Stream(i) => namespaces.uri_at(*i),
            NsRef::Xml => Some(XML_NS),
        }
    }

    fn attr(&self, bytes: &[u8], name: &str) -> Option<Span> {
        Attrs::new(bytes, self.attrs_start as usize)
            .find(|a| a.name.of(bytes) == name.as_bytes())
            .map(|a| a.value)
    }

    fn attrs<'a>(&self, bytes: &'a [u8]) -> impl Iterator<Item = (&'a str, Cow<'a, str>)> {
        Attrs::new(bytes, self.attrs_start as usize).filter_map(move |a| {
            let value = unescape(a.value.of(bytes)).ok()?;
            Some((a.name.str_of(bytes), value))
        })
    }
}

/// The parse result cached on first `Stanza::head` call: names and namespaces. The
/// attributes come straight from the scanner's `ElementMeta`.
#[derive(Clone, Debug)]
struct Parsed {
    top: Named,
    own_ns_declared: bool,
    child: Option<Named>,
}

/// Stands in if an accessor runs before a successful parse (the public API prevents it).
static UNPARSED: Parsed = Parsed {
    top: Named::EMPTY,
    own_ns_declared: false,
    child: None,
};

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
    namespaces: Arc<Namespaces>,
    meta: ElementMeta,
    parsed: OnceCell<Result<Parsed, HeadError>>,
}

impl Head {
    pub(crate) fn new(bytes: Bytes, namespaces: Arc<Namespaces>, meta: ElementMeta) -> Self {
        Head {
            inner: ChildHead {
                bytes,
                namespaces,
                meta,
                parsed: OnceCell::new(),
            },
        }
    }

    pub(crate) fn bytes(&self) -> &Bytes {
        &self.inner.bytes
    }

    pub(crate) fn into_bytes(self) -> Bytes {
        self.inner.bytes
    }

    pub(crate) fn namespaces(&self) -> &Arc<Namespaces> {
        &self.inner.namespaces
    }

    /// Parses on the first call; later calls return the cached outcome.
    pub(crate) fn ensure_parsed(&self) -> Result<(), HeadError> {
        let inner = &self.inner;
        let parsed = inner
            .parsed
            .get_or_init(|| parse(&inner.bytes, &inner.namespaces, &inner.meta));
        match parsed {
            Ok(_) => Ok(()),
            Err(e) => Err(e.clone()),
        }
    }

    fn parsed(&self) -> &Parsed {
        self.inner.parsed()
    }

    fn raw(&self) -> &[u8] {
        &self.inner.bytes
    }

    /// Local name, e.g. `iq`, `message`, `features`, `a`.
    pub fn name(&self) -> &str {
        self.parsed().top.name.local.str_of(self.raw())
    }

    pub fn prefix(&self) -> Option<&str> {
        let prefix = self.parsed().top.name.prefix?;
        Some(prefix.str_of(self.raw()))
    }

    /// Resolved namespace: the element's own declaration, else the stream's.
    pub fn ns(&self) -> Option<&str> {
        self.parsed().top.ns(self.raw(), &self.inner.namespaces)
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
        let span = self.parsed().top.attr(self.raw(), name)?;
        unescape(span.of(self.raw())).ok()
    }

    /// Byte range of the raw (escaped) value of attribute `name`, for in-place rewriting.
    pub fn attr_range(&self, name: &str) -> Option<Range<usize>> {
        self.parsed().top.attr(self.raw(), name).map(Span::range)
    }

    /// All attributes of the top element in order, values unescaped.
    pub fn attrs(&self) -> impl Iterator<Item = (&str, Cow<'_, str>)> {
        self.parsed().top.attrs(self.raw())
    }

    /// The first child element, if any.
    pub fn child(&self) -> Option<&ChildHead> {
        self.parsed().child.as_ref().map(|_| &self.inner)
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
        self.parsed().own_ns_declared
    }
}

impl ChildHead {
    fn parsed(&self) -> &Parsed {
        match self.parsed.get() {
            Some(Ok(parsed)) => parsed,
            _ => &UNPARSED,
        }
    }

    fn named(&self) -> &Named {
        self.parsed().child.as_ref().unwrap_or(&Named::EMPTY)
    }

    pub fn name(&self) -> &str {
        self.named().name.local.str_of(&self.bytes)
    }

    pub fn prefix(&self) -> Option<&str> {
        let prefix = self.named().name.prefix?;
        Some(prefix.str_of(&self.bytes))
    }

    /// Resolved namespace, considering the child's, the parent's and the stream's
    /// declarations in that order.
    pub fn ns(&self) -> Option<&str> {
        self.named().ns(&self.bytes, &self.namespaces)
    }

    pub fn attr(&self, name: &str) -> Option<Cow<'_, str>> {
        let span = self.named().attr(&self.bytes, name)?;
        unescape(span.of(&self.bytes)).ok()
    }

    /// All attributes of the child's open tag in order, values unescaped.
    pub fn attrs(&self) -> impl Iterator<Item = (&str, Cow<'_, str>)> {
        self.named().attrs(&self.bytes)
    }

    /// The whole child element's bytes within the stanza.
    pub fn range(&self) -> Range<usize> {
        self.meta.first_child.range()
    }
}

fn parse(raw: &[u8], namespaces: &Namespaces, meta: &ElementMeta) -> Result<Parsed, HeadError> {
    let top = &meta.top;
    if top.name.is_absent() {
        return Err(HeadError::Malformed);
    }
    let name = qname(raw, top.name);
    let own_decl = own_decl(raw, &name, top);
    let mut parsed = Parsed {
        top: Named {
            name,
            ns: resolve(raw, name.prefix, own_decl, namespaces)?,
            attrs_start: top.name.end,
        },
        own_ns_declared: own_decl.is_some(),
        child: None,
    };
    if meta.child_count > 0 {
        parsed.child = Some(parse_child(raw, namespaces, meta)?);
    }
    Ok(parsed)
}

/// The declaration an element makes for its own prefix, if any.
fn own_decl(raw: &[u8], name: &QName, tag: &TagMeta) -> Option<Span> {
    match name.prefix {
        None => tag.get(Known::Xmlns).map(|(span, _)| span),
        Some(_) if !tag.prefixed_decls => None,
        Some(prefix) => find_decl(raw, tag.name.end as usize, Some(prefix.of(raw))),
    }
}

fn parse_child(
    raw: &[u8],
    namespaces: &Namespaces,
    meta: &ElementMeta,
) -> Result<Named, HeadError> {
    let tag = &meta.child;
    if tag.name.is_absent() {
        return Err(HeadError::Malformed);
    }
    let name = qname(raw, tag.name);
    let decl = own_decl(raw, &name, tag).or_else(|| own_decl(raw, &name, &meta.top));
    Ok(Named {
        name,
        ns: resolve(raw, name.prefix, decl, namespaces)?,
        attrs_start: tag.name.end,
    })
}

/// Resolves an element's namespace from the nearest declaration inside the stanza,
/// else from the stream header's.
fn resolve(
    raw: &[u8],
    prefix: Option<Span>,
    decl: Option<Span>,
    namespaces: &Namespaces,
) -> Result<NsRef, HeadError> {
    let prefix = prefix.map(|p| p.of(raw));
    if prefix == Some(b"xml") {
        return Ok(NsRef::Xml);
    }
    if let Some(value) = decl {
        return local(raw, value);
    }
    match (namespaces.index_of(prefix), prefix) {
        (Some(i), _) => Ok(NsRef::Stream(i)),
        (None, None) => Ok(NsRef::Unbound),
        (None, Some(p)) => Err(HeadError::UndeclaredPrefix(
            String::from_utf8_lossy(p).into_owned(),
        )),
    }
}

fn local(raw: &[u8], value: Span) -> Result<NsRef, HeadError> {
    match unescape(value.of(raw)) {
        Ok(Cow::Borrowed("")) => Ok(NsRef::Unbound),
        Ok(Cow::Borrowed(_)) => Ok(NsRef::Local(value)),
        Ok(Cow::Owned(uri)) => Ok(NsRef::Owned(uri)),
        Err(_) => Err(HeadError::Malformed),
    }
}
