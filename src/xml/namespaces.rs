//! The namespace declarations in scope for a stream's top-level elements: those made on
//! the stream header, shared by every stanza of the stream. The usual header
//! declarations are interned as statics, so stanzas of ordinary streams refer to them
//! without any reference counting; other streams share theirs through an `Arc`.

use super::ns::{NS_STREAMS, NS_XML};
use std::ops::Deref;
use std::sync::{Arc, LazyLock};

/// Namespace declarations (`xmlns` / `xmlns:p`) in declaration order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Namespaces {
    decls: Vec<(Option<String>, String)>,
}

impl Namespaces {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a declaration; `prefix` `None` is the default namespace. A later
    /// declaration of the same prefix replaces the earlier one.
    pub fn declare(&mut self, prefix: Option<&str>, uri: &str) {
        match self.index_of(prefix.map(str::as_bytes)) {
            Some(i) => self.decls[i].1 = uri.to_owned(),
            None => self.decls.push((prefix.map(str::to_owned), uri.to_owned())),
        }
    }

    /// The URI bound to `prefix` (`None`: the default namespace). An empty default
    /// declaration (`xmlns=''`) means "no namespace" and yields `None`.
    pub fn lookup(&self, prefix: Option<&str>) -> Option<&str> {
        if prefix == Some("xml") {
            return Some(NS_XML);
        }
        let i = self.index_of(prefix.map(str::as_bytes))?;
        self.uri_at(i)
    }

    /// The default namespace, e.g. `jabber:client`.
    pub fn default_ns(&self) -> Option<&str> {
        self.lookup(None)
    }

    /// Declarations in order: `(prefix, uri)`.
    pub fn iter(&self) -> impl Iterator<Item = (Option<&str>, &str)> {
        self.decls.iter().map(|(p, u)| (p.as_deref(), u.as_str()))
    }

    pub fn len(&self) -> usize {
        self.decls.len()
    }

    pub fn is_empty(&self) -> bool {
        self.decls.is_empty()
    }

    /// Index of the declaration for a raw prefix; lets heads store an index instead
    /// of a borrowed string.
    pub(crate) fn index_of(&self, prefix: Option<&[u8]>) -> Option<usize> {
        self.decls
            .iter()
            .position(|(p, _)| p.as_deref().map(str::as_bytes) == prefix)
    }

    pub(crate) fn uri_at(&self, index: usize) -> Option<&str> {
        let uri = self.decls.get(index)?.1.as_str();
        (!uri.is_empty()).then_some(uri)
    }
}

/// Default namespaces of the stream kinds the proxy speaks.
const COMMON_DEFAULTS: [&str; 3] = ["jabber:client", "jabber:server", "jabber:component:accept"];

/// The declarations of ordinary stream headers (`xmlns` and `xmlns:stream`, in either
/// order), plus no declarations at all.
static COMMON: LazyLock<Vec<Namespaces>> = LazyLock::new(|| {
    let mut common = vec![Namespaces::new()];
    for default in COMMON_DEFAULTS {
        let mut ns = Namespaces::new();
        ns.declare(None, default);
        ns.declare(Some("stream"), NS_STREAMS);
        common.push(ns);
        let mut ns = Namespaces::new();
        ns.declare(Some("stream"), NS_STREAMS);
        ns.declare(None, default);
        common.push(ns);
    }
    common
});

/// A stream's namespace declarations as held by each of its stanzas: a static for the
/// common headers (cloning and dropping it costs no atomic operations), else shared.
#[derive(Clone, Debug)]
pub(crate) enum NsHandle {
    Common(&'static Namespaces),
    Shared(Arc<Namespaces>),
}

impl NsHandle {
    /// Interns `namespaces` if they are one of the common sets.
    pub(crate) fn new(namespaces: Arc<Namespaces>) -> Self {
        match COMMON.iter().find(|common| **common == *namespaces) {
            Some(common) => NsHandle::Common(common),
            None => NsHandle::Shared(namespaces),
        }
    }
}

impl Default for NsHandle {
    fn default() -> Self {
        NsHandle::new(Arc::default())
    }
}

impl Deref for NsHandle {
    type Target = Namespaces;

    #[inline]
    fn deref(&self) -> &Namespaces {
        match self {
            NsHandle::Common(ns) => ns,
            NsHandle::Shared(ns) => ns,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_sets_are_interned() {
        let mut ns = Namespaces::new();
        ns.declare(Some("stream"), NS_STREAMS);
        ns.declare(None, "jabber:component:accept");
        let handle = NsHandle::new(Arc::new(ns.clone()));
        assert!(matches!(handle, NsHandle::Common(_)));
        assert_eq!(*handle, ns);
        assert_eq!(handle.index_of(None), Some(1));
        ns.declare(Some("db"), "jabber:server:dialback");
        let handle = NsHandle::new(Arc::new(ns.clone()));
        assert!(matches!(handle, NsHandle::Shared(_)));
        assert_eq!(*handle, ns);
        assert!(matches!(NsHandle::default(), NsHandle::Common(_)));
    }

    #[test]
    fn lookup_and_override() {
        let mut ns = Namespaces::new();
        ns.declare(None, "jabber:client");
        ns.declare(Some("stream"), NS_STREAMS);
        assert_eq!(ns.default_ns(), Some("jabber:client"));
        assert_eq!(ns.lookup(Some("stream")), Some(NS_STREAMS));
        assert_eq!(ns.lookup(Some("xml")), Some(NS_XML));
        assert_eq!(ns.lookup(Some("db")), None);
        ns.declare(None, "");
        assert_eq!(ns.default_ns(), None);
        assert_eq!(ns.len(), 2);
    }
}
