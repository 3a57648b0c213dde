//! The stream open tag (with any XML declaration before it), decoded into owned
//! strings: headers are rare, and the proxy forwards or rewrites them field by field.

use std::sync::Arc;

use bytes::Bytes;

use super::attrs::{tag_name, Attrs};
use super::error::{not_well_formed, FrameError};
use super::escape::unescape;
use super::namespaces::Namespaces;
use super::stanza::invalid_text;

/// A parsed `<stream:stream ...>` open tag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamHeader {
    /// Exact bytes received, including any XML declaration.
    pub raw: Bytes,
    /// Qualified name of the stream element as written, e.g. `stream:stream`.
    pub name: String,
    pub to: Option<String>,
    pub from: Option<String>,
    pub id: Option<String>,
    pub version: Option<String>,
    /// `xml:lang`.
    pub lang: Option<String>,
    /// e.g. `jabber:client`, `jabber:component:accept`.
    pub default_ns: Option<String>,
    /// Prefix of the stream element (`stream` usually); `None` if it is unprefixed.
    pub stream_prefix: Option<String>,
    /// Every `xmlns` / `xmlns:p` declaration on the header, in order.
    pub namespaces: Arc<Namespaces>,
    /// All attributes, unescaped, in order.
    pub attributes: Vec<(String, String)>,
}

impl StreamHeader {
    /// Decodes a header frame whose open tag starts at `open_start`.
    pub(crate) fn parse(raw: Bytes, open_start: usize) -> Result<Self, FrameError> {
        let text = std::str::from_utf8(&raw).map_err(|_| invalid_text())?;
        // The scanner checked every part of the header but the XML declaration's bytes.
        if text.contains(['\u{fffe}', '\u{ffff}']) {
            return Err(invalid_text());
        }
        let (qname, attrs_start) = tag_name(&raw, open_start).ok_or_else(malformed)?;
        let mut header = StreamHeader {
            name: qname.full().str_of(&raw).to_owned(),
            stream_prefix: qname.prefix.map(|p| p.str_of(&raw).to_owned()),
            raw: raw.clone(),
            to: None,
            from: None,
            id: None,
            version: None,
            lang: None,
            default_ns: None,
            namespaces: Arc::default(),
            attributes: Vec::new(),
        };
        let mut namespaces = Namespaces::new();
        for attr in Attrs::new(text.as_bytes(), attrs_start) {
            let name = attr.name.str_of(&raw).to_owned();
            let value = unescape(attr.value.of(&raw))
                .map_err(|_| malformed())?
                .into_owned();
            header.take_attr(&mut namespaces, name, value);
        }
        header.default_ns = namespaces.default_ns().map(str::to_owned);
        header.namespaces = Arc::new(namespaces);
        Ok(header)
    }

    fn take_attr(&mut self, namespaces: &mut Namespaces, name: String, value: String) {
        let field = match name.as_str() {
            "to" => Some(&mut self.to),
            "from" => Some(&mut self.from),
            "id" => Some(&mut self.id),
            "version" => Some(&mut self.version),
            "xml:lang" => Some(&mut self.lang),
            _ => None,
        };
        if let Some(field) = field {
            *field = Some(value.clone());
        }
        if name == "xmlns" {
            namespaces.declare(None, &value);
        } else if let Some(prefix) = name.strip_prefix("xmlns:") {
            namespaces.declare(Some(prefix), &value);
        }
        self.attributes.push((name, value));
    }

    /// Namespace of the stream element itself; RFC 6120 requires
    /// [`NS_STREAMS`](super::ns::NS_STREAMS).
    pub fn element_ns(&self) -> Option<&str> {
        self.namespaces.lookup(self.stream_prefix.as_deref())
    }
}

fn malformed() -> FrameError {
    not_well_formed("malformed stream header")
}
