//! Lazily parsed views of a stanza's top element and first child: names, resolved
//! namespaces and attributes, stored as byte spans into the stanza so parsing a head
//! allocates nothing (values are unescaped on access, borrowed unless they hold
//! entities).

use std::borrow::Cow;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;

use super::attrs::{declares, find_decl, tag_name, Attrs, QName};
use super::error::HeadError;
use super::escape::unescape;
use super::namespaces::{Namespaces, XML_NS};
use super::scanner::ElementMeta;
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

impl Named {
    fn ns<'a>(&'a self, bytes: &'a [u8], namespaces: &'a Namespaces) -> Option<&'a str> {
        match &self.ns {
            NsRef::Unbound => None,
            NsRef::Local(span) => Some(span.str_of(bytes)),
            NsRef::Owned(uri) => Some(uri.as_str()),
            NsRef::Stream(i) => namespaces.uri_at(*i),
            NsRef::Xml => Some(XML_NS),
        }
    }
}

/// The top element of a stanza.
#[derive(Clone, Debug)]
pub struct Head {
    bytes: Bytes,
    namespaces: Arc<Namespaces>,
    named: Named,
    to: Option<Span>,
    from: Option<Span>,
    type_: Option<Span>,
    id: Option<Span>,
    own_ns_declared: bool,
    meta: ElementMeta,
    child: Option<ChildHead>,
}

/// The first child element of a stanza.
#[derive(Clone, Debug)]
pub struct ChildHead {
    bytes: Bytes,
    namespaces: Arc<Namespaces>,
    named: Named,
    range: Span,
}

impl Head {
    pub(crate) fn parse(
        bytes: &Bytes,
        namespaces: &Arc<Namespaces>,
        meta: &ElementMeta,
    ) -> Result<Head, HeadError> {
        let raw = &bytes[..];
        let (name, attrs_start) = tag_name(raw, 0).ok_or(HeadError::Malformed)?;
        let mut head = Head {
            bytes: bytes.clone(),
            namespaces: namespaces.clone(),
            named: Named {
                name,
                ns: NsRef::Unbound,
                attrs_start: offset(attrs_start),
            },
            to: None,
            from: None,
            type_: None,
            id: None,
            own_ns_declared: false,
            meta: *meta,
            child: None,
        };
        let own_decl = head.scan_attrs(raw, attrs_start);
        head.own_ns_declared = own_decl.is_some();
        head.named.ns = resolve(raw, &name, own_decl, None, namespaces)?;
        if meta.child_count > 0 {
            head.child = Some(ChildHead::parse(
                bytes,
                namespaces,
                meta.first_child,
                attrs_start,
            )?);
        }
        Ok(head)
    }

    /// One pass over the attributes: remembers the routing attributes and returns the
    /// element's own namespace declaration, if any.
    fn scan_attrs(&mut self, raw: &[u8], attrs_start: usize) -> Option<Span> {
        let prefix = self.named.name.prefix.map(|p| p.of(raw));
        let mut own_decl = None;
        for attr in Attrs::new(raw, attrs_start) {
            let slot = match attr.name.of(raw) {
                b"to" => &mut self.to,
                b"from" => &mut self.from,
                b"type" => &mut self.type_,
                b"id" => &mut self.id,
                name if declares(name, prefix) => &mut own_decl,
                _ => continue,
            };
            *slot = Some(attr.value);
        }
        own_decl
    }

    /// Local name, e.g. `iq`, `message`, `features`, `a`.
    pub fn name(&self) -> &str {
        self.named.name.local.str_of(&self.bytes)
    }

    pub fn prefix(&self) -> Option<&str> {
        self.named.name.prefix.map(|p| p.str_of(&self.bytes))
    }

    /// Resolved namespace: the element's own declaration, else the stream's.
    pub fn ns(&self) -> Option<&str> {
        self.named.ns(&self.bytes, &self.namespaces)
    }

    pub fn to(&self) -> Option<Cow<'_, str>> {
        self.value(self.to)
    }

    pub fn from(&self) -> Option<Cow<'_, str>> {
        self.value(self.from)
    }

    pub fn type_(&self) -> Option<Cow<'_, str>> {
        self.value(self.type_)
    }

    pub fn id(&self) -> Option<Cow<'_, str>> {
        self.value(self.id)
    }

    fn value(&self, span: Option<Span>) -> Option<Cow<'_, str>> {
        unescape(span?.of(&self.bytes)).ok()
    }

    /// Any attribute of the top element by qualified name, unescaped.
    pub fn attr(&self, name: &str) -> Option<Cow<'_, str>> {
        self.value(find_attr(&self.bytes, &self.named, name))
    }

    /// Byte range of the raw (escaped) value of attribute `name`, for in-place rewriting.
    pub fn attr_range(&self, name: &str) -> Option<Range<usize>> {
        find_attr(&self.bytes, &self.named, name).map(Span::range)
    }

    /// All attributes of the top element in order, values unescaped.
    pub fn attrs(&self) -> impl Iterator<Item = (&str, Cow<'_, str>)> {
        attr_pairs(&self.bytes, &self.named)
    }

    /// The first child element, if any.
    pub fn child(&self) -> Option<&ChildHead> {
        self.child.as_ref()
    }

    /// Number of child elements (text nodes not counted).
    pub fn child_count(&self) -> usize {
        self.meta.child_count as usize
    }

    /// True for `<a/>`-style elements.
    pub fn is_empty_element(&self) -> bool {
        self.meta.close_start as usize >= self.bytes.len()
    }

    /// Bytes of the opening tag.
    pub fn open_tag_range(&self) -> Range<usize> {
        0..self.meta.open_end as usize
    }

    /// Bytes between the open and close tag (empty for self-closing elements).
    pub fn content_range(&self) -> Range<usize> {
        self.meta.open_end as usize..self.meta.close_start as usize
    }

    /// True if the element itself declares the namespace of its own prefix (`xmlns=`
    /// for the usual unprefixed stanza), rather than inheriting the stream's.
    pub fn own_ns_declared(&self) -> bool {
        self.own_ns_declared
    }
}

impl ChildHead {
    fn parse(
        bytes: &Bytes,
        namespaces: &Arc<Namespaces>,
        range: Span,
        parent_attrs_start: usize,
    ) -> Result<ChildHead, HeadError> {
        let raw = &bytes[..];
        let (name, attrs_start) =
            tag_name(raw, range.start as usize).ok_or(HeadError::Malformed)?;
        let prefix = name.prefix.map(|p| p.of(raw));
        let own_decl = find_decl(raw, attrs_start, prefix);
        let ns = resolve(raw, &name, own_decl, Some(parent_attrs_start), namespaces)?;
        Ok(ChildHead {
            bytes: bytes.clone(),
            namespaces: namespaces.clone(),
            named: Named {
                name,
                ns,
                attrs_start: offset(attrs_start),
            },
            range,
        })
    }

    pub fn name(&self) -> &str {
        self.named.name.local.str_of(&self.bytes)
    }

    pub fn prefix(&self) -> Option<&str> {
        self.named.name.prefix.map(|p| p.str_of(&self.bytes))
    }

    /// Resolved namespace, considering the child's, the parent's and the stream's
    /// declarations in that order.
    pub fn ns(&self) -> Option<&str> {
        self.named.ns(&self.bytes, &self.namespaces)
    }

    pub fn attr(&self, name: &str) -> Option<Cow<'_, str>> {
        let span = find_attr(&self.bytes, &self.named, name)?;
        unescape(span.of(&self.bytes)).ok()
    }

    /// All attributes of the child's open tag in order, values unescaped.
    pub fn attrs(&self) -> impl Iterator<Item = (&str, Cow<'_, str>)> {
        attr_pairs(&self.bytes, &self.named)
    }

    /// The whole child element's bytes within the stanza.
    pub fn range(&self) -> Range<usize> {
        self.range.range()
    }
}

fn find_attr(bytes: &[u8], named: &Named, name: &str) -> Option<Span> {
    Attrs::new(bytes, named.attrs_start as usize)
        .find(|a| a.name.of(bytes) == name.as_bytes())
        .map(|a| a.value)
}

fn attr_pairs<'a>(bytes: &'a [u8], named: &Named) -> impl Iterator<Item = (&'a str, Cow<'a, str>)> {
    Attrs::new(bytes, named.attrs_start as usize).filter_map(move |a| {
        let value = unescape(a.value.of(bytes)).ok()?;
        Some((a.name.str_of(bytes), value))
    })
}

/// Resolves an element's namespace: its own declaration, then the parent's (for the
/// first child), then the stream header's.
fn resolve(
    raw: &[u8],
    name: &QName,
    own_decl: Option<Span>,
    parent_attrs_start: Option<usize>,
    namespaces: &Namespaces,
) -> Result<NsRef, HeadError> {
    let prefix = name.prefix.map(|p| p.of(raw));
    if prefix == Some(b"xml") {
        return Ok(NsRef::Xml);
    }
    let parent_decl = || parent_attrs_start.and_then(|start| find_decl(raw, start, prefix));
    if let Some(value) = own_decl.or_else(parent_decl) {
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

fn offset(pos: usize) -> u32 {
    u32::try_from(pos).unwrap_or(u32::MAX)
}
