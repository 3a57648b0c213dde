//! The namespace bindings in scope while walking the tags of an element (Namespaces in
//! XML 1.0): each open element's declarations, innermost last, above an outer context
//! (the stream header's declarations, or none when a subtree is looked at on its own).
//! Declarations are checked as their element is opened; qualified names are split and
//! checked here too, so every walker applies the same rules.

use std::borrow::Cow;
use std::collections::HashMap;

use super::escape::attr_value;
use super::namespaces::Namespaces;
use super::ns::{NS_XML, NS_XMLNS};
use super::ns_check::NsError;
use super::tags::StartTag;

/// One declaration: `prefix` `None` is the default namespace; an empty `uri` (only
/// possible for the default namespace) means "no namespace".
#[derive(Debug)]
struct Binding<'a> {
    prefix: Option<&'a [u8]>,
    uri: Cow<'a, str>,
    /// The binding of the same prefix this one shadows (index into the stack).
    shadows: Option<usize>,
}

/// What a prefix (or the default namespace) resolves to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lookup<'a> {
    Bound(&'a str),
    /// Declared as "no namespace" (`xmlns=''`, or an empty declaration on the header).
    NoNamespace,
    /// Declared nowhere: neither by an open element nor in the outer context.
    Undeclared,
}

impl<'a> Lookup<'a> {
    /// The namespace URI, if any.
    pub(crate) fn uri(self) -> Option<&'a str> {
        match self {
            Lookup::Bound(uri) => Some(uri),
            Lookup::NoNamespace | Lookup::Undeclared => None,
        }
    }
}

/// The stack of declarations of the open elements.
#[derive(Debug)]
pub(crate) struct Bindings<'a> {
    outer: Option<&'a Namespaces>,
    stack: Vec<Binding<'a>>,
    /// The innermost binding of each declared prefix (index into `stack`). Searching
    /// the stack instead would let a peer make every name cost a scan of thousands of
    /// declarations (64 levels of 64 each within the limits): a 256 KiB stanza would
    /// take a CPU-tenth of a second.
    innermost: HashMap<Option<&'a [u8]>, usize>,
    /// `stack` length before each open element's declarations.
    marks: Vec<usize>,
}

impl<'a> Bindings<'a> {
    pub(crate) fn new(outer: Option<&'a Namespaces>) -> Self {
        Bindings {
            outer,
            stack: Vec::new(),
            innermost: HashMap::new(),
            marks: Vec::new(),
        }
    }

    /// Opens the element `tag` of `bytes`: checks and pushes its declarations.
    pub(crate) fn open(&mut self, bytes: &'a [u8], tag: &StartTag) -> Result<(), NsError> {
        self.marks.push(self.stack.len());
        for attr in tag.attrs(bytes) {
            let Some(prefix) = declared(attr.name.of(bytes)) else {
                continue;
            };
            let uri = attr_value(attr.value.of(bytes)).map_err(|_| NsError::Malformed)?;
            check_declaration(attr.name.of(bytes), prefix, &uri)?;
            // `xml` is bound for good; declaring it (to its own namespace) changes nothing.
            if prefix != Some(b"xml") {
                let shadows = self.innermost.insert(prefix, self.stack.len());
                self.stack.push(Binding {
                    prefix,
                    uri,
                    shadows,
                });
            }
        }
        Ok(())
    }

    /// Closes the innermost open element.
    pub(crate) fn close(&mut self) {
        let mark = self.marks.pop().unwrap_or(0);
        while self.stack.len() > mark {
            let Some(binding) = self.stack.pop() else {
                break;
            };
            match binding.shadows {
                Some(shadowed) => self.innermost.insert(binding.prefix, shadowed),
                None => self.innermost.remove(&binding.prefix),
            };
        }
    }

    /// Number of open elements.
    pub(crate) fn depth(&self) -> usize {
        self.marks.len()
    }

    /// What `prefix` (`None`: the default namespace) resolves to here.
    pub(crate) fn lookup(&self, prefix: Option<&[u8]>) -> Lookup<'_> {
        if prefix == Some(b"xml") {
            return Lookup::Bound(NS_XML);
        }
        let innermost = self.innermost.get(&prefix).and_then(|&i| self.stack.get(i));
        if let Some(binding) = innermost {
            return match binding.uri.is_empty() {
                true => Lookup::NoNamespace,
                false => Lookup::Bound(&binding.uri),
            };
        }
        let Some(outer) = self.outer else {
            return Lookup::Undeclared;
        };
        match outer.index_of(prefix) {
            Some(i) => outer.uri_at(i).map_or(Lookup::NoNamespace, Lookup::Bound),
            None => Lookup::Undeclared,
        }
    }

    /// The URI a prefix used in a name is bound to; an error if it is not bound.
    pub(crate) fn require(&self, prefix: &[u8]) -> Result<&str, NsError> {
        match self.lookup(Some(prefix)) {
            Lookup::Bound(uri) => Ok(uri),
            _ => Err(NsError::UnboundPrefix(lossy(prefix))),
        }
    }
}

/// `Some(prefix)` if the attribute `name` is a namespace declaration (`Some(None)` for
/// `xmlns`, `Some(Some(p))` for `xmlns:p`).
pub(crate) fn declared(name: &[u8]) -> Option<Option<&[u8]>> {
    match name.strip_prefix(b"xmlns") {
        Some([]) => Some(None),
        Some([b':', prefix @ ..]) => Some(Some(prefix)),
        _ => None,
    }
}

/// The rules of Namespaces in XML 1.0 §3 for one declaration of `prefix` to `uri`
/// (already unescaped and normalised); `name` is the attribute's name, for errors.
fn check_declaration(name: &[u8], prefix: Option<&[u8]>, uri: &str) -> Result<(), NsError> {
    let reserved = uri == NS_XML || uri == NS_XMLNS;
    match prefix {
        None if reserved => Err(NsError::ReservedBinding(lossy(name))),
        None => Ok(()),
        Some(p) if !is_ncname(p) => Err(NsError::BadQName(lossy(name))),
        Some(b"xmlns") => Err(NsError::XmlnsPrefix),
        Some(b"xml") if uri == NS_XML => Ok(()),
        Some(_) if reserved || prefix == Some(b"xml") => Err(NsError::ReservedBinding(lossy(name))),
        // Undeclaring a prefix is new in Namespaces 1.1; in 1.0 it is an error.
        Some(p) if uri.is_empty() => Err(NsError::EmptyPrefixDecl(lossy(p))),
        Some(_) => Ok(()),
    }
}

/// Splits a qualified name (Namespaces in XML 1.0 §4) into prefix and local part;
/// an error for more than one colon, an empty part, or a local part that does not
/// start like a name.
pub(crate) fn split_qname(name: &[u8]) -> Result<(Option<&[u8]>, &[u8]), NsError> {
    let mut parts = name.splitn(2, |&b| b == b':');
    let (first, second) = (parts.next().unwrap_or(&[]), parts.next());
    let (prefix, local) = match second {
        Some(local) => (Some(first), local),
        None => (None, first),
    };
    let valid = is_ncname(local) && prefix.is_none_or(is_ncname);
    match valid {
        true => Ok((prefix, local)),
        false => Err(NsError::BadQName(lossy(name))),
    }
}

/// An NCName: a non-empty name without colons. Only the start is checked beyond
/// the colon: the scanner already checked every byte of a name against `NameChar`.
fn is_ncname(name: &[u8]) -> bool {
    let start = std::str::from_utf8(name)
        .ok()
        .and_then(|s| s.chars().next())
        .is_some_and(super::chars::is_name_start_char);
    start && !name.contains(&b':')
}

pub(crate) fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A name, and the prefix and local part it splits into.
    type Split<'a> = (&'a [u8], Option<&'a [u8]>, &'a [u8]);

    #[test]
    fn qualified_names() {
        let ok: [Split<'_>; 4] = [
            (b"a", None, b"a"),
            (b"p:a", Some(b"p"), b"a"),
            (b"p-1._x:_b.2", Some(b"p-1._x"), b"_b.2"),
            ("p:\u{e9}".as_bytes(), Some(b"p"), "\u{e9}".as_bytes()),
        ];
        for (name, prefix, local) in ok {
            assert_eq!(split_qname(name), Ok((prefix, local)));
        }
        for bad in [
            &b"a:b:c"[..],
            b":a",
            b"a:",
            b"a:1",
            b"a:-b",
            b"a:.b",
            "a:\u{b7}".as_bytes(),
            b"",
        ] {
            assert!(
                matches!(split_qname(bad), Err(NsError::BadQName(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn declarations() {
        assert_eq!(declared(b"xmlns"), Some(None));
        assert_eq!(declared(b"xmlns:p"), Some(Some(&b"p"[..])));
        assert_eq!(declared(b"xmlns:"), Some(Some(&b""[..])));
        assert_eq!(declared(b"xmlnsx"), None);
        assert_eq!(declared(b"xml:lang"), None);
        let check = |name: &[u8], uri: &str| {
            let prefix = declared(name).unwrap();
            check_declaration(name, prefix, uri)
        };
        assert_eq!(check(b"xmlns", ""), Ok(()));
        assert_eq!(check(b"xmlns", "jabber:client"), Ok(()));
        assert_eq!(check(b"xmlns:xml", NS_XML), Ok(()));
        assert_eq!(check(b"xmlns:p", "urn:p"), Ok(()));
        for (name, uri) in [
            (&b"xmlns"[..], NS_XML),
            (b"xmlns", NS_XMLNS),
            (b"xmlns:xml", "urn:x"),
            (b"xmlns:xml", NS_XMLNS),
            (b"xmlns:p", NS_XML),
            (b"xmlns:p", NS_XMLNS),
        ] {
            assert!(matches!(check(name, uri), Err(NsError::ReservedBinding(_))));
        }
        assert_eq!(check(b"xmlns:xmlns", "urn:x"), Err(NsError::XmlnsPrefix));
        assert_eq!(check(b"xmlns:xmlns", NS_XMLNS), Err(NsError::XmlnsPrefix));
        assert_eq!(
            check(b"xmlns:p", ""),
            Err(NsError::EmptyPrefixDecl("p".into()))
        );
        for bad in [&b"xmlns:"[..], b"xmlns:a:b", b"xmlns:1"] {
            assert!(matches!(check(bad, "urn:x"), Err(NsError::BadQName(_))));
        }
    }

    #[test]
    fn lookups_shadow_and_fall_back_to_the_outer_context() {
        let mut header = Namespaces::new();
        header.declare(None, "jabber:client");
        header.declare(Some("h"), "urn:h");
        header.declare(Some("gone"), "");
        let bytes = b"<a xmlns='urn:a' xmlns:h='urn:h2'><b xmlns=''/></a>";
        let tags: Vec<_> = super::super::tags::Tags::new(bytes, 0).collect();
        let (super::super::tags::Tag::Start(a), super::super::tags::Tag::Start(b)) =
            (tags[0], tags[1])
        else {
            panic!("expected two start tags")
        };
        let mut bindings = Bindings::new(Some(&header));
        assert_eq!(bindings.lookup(None), Lookup::Bound("jabber:client"));
        assert_eq!(bindings.lookup(Some(b"gone")), Lookup::NoNamespace);
        assert_eq!(bindings.lookup(Some(b"nope")), Lookup::Undeclared);
        assert_eq!(bindings.lookup(Some(b"xml")), Lookup::Bound(NS_XML));
        bindings.open(bytes, &a).unwrap();
        assert_eq!(bindings.lookup(None), Lookup::Bound("urn:a"));
        assert_eq!(bindings.require(b"h"), Ok("urn:h2"));
        bindings.open(bytes, &b).unwrap();
        assert_eq!(bindings.depth(), 2);
        assert_eq!(bindings.lookup(None), Lookup::NoNamespace);
        bindings.close();
        assert_eq!(bindings.lookup(None), Lookup::Bound("urn:a"));
        assert_eq!(bindings.require(b"h"), Ok("urn:h2"));
        bindings.close();
        assert_eq!(bindings.lookup(None), Lookup::Bound("jabber:client"));
        assert_eq!(bindings.require(b"h"), Ok("urn:h"));
        assert_eq!(
            bindings.require(b"gone"),
            Err(NsError::UnboundPrefix("gone".into()))
        );
        let alone = Bindings::new(None);
        assert_eq!(alone.lookup(None), Lookup::Undeclared);
    }

    #[test]
    fn closing_restores_what_was_shadowed_at_every_depth() {
        let bytes = b"<a xmlns:p='1'><b xmlns:p='2' xmlns:q='x'><c xmlns:p='3'/></b></a>";
        let starts: Vec<_> = super::super::tags::Tags::new(bytes, 0)
            .filter_map(|t| match t {
                super::super::tags::Tag::Start(s) => Some(s),
                _ => None,
            })
            .collect();
        let mut bindings = Bindings::new(None);
        let mut seen = Vec::new();
        for tag in &starts {
            bindings.open(bytes, tag).unwrap();
            seen.push(bindings.require(b"p").unwrap().to_owned());
        }
        assert_eq!(seen, ["1", "2", "3"]);
        bindings.close();
        assert_eq!(bindings.require(b"p"), Ok("2"));
        assert_eq!(bindings.require(b"q"), Ok("x"));
        bindings.close();
        assert_eq!(bindings.require(b"p"), Ok("1"));
        assert_eq!(bindings.lookup(Some(b"q")), Lookup::Undeclared);
        bindings.close();
        assert_eq!(bindings.lookup(Some(b"p")), Lookup::Undeclared);
        // Closing more than was opened changes nothing.
        bindings.close();
        assert_eq!(bindings.depth(), 0);
    }
}
