//! Escaping and unescaping of XML text and attribute values, restricted to what RFC 6120
//! permits: the five predefined entities and numeric character references.

use std::borrow::Cow;

use memchr::memchr;
use thiserror::Error;

use super::chars::is_xml_char;

/// Why a raw value could not be unescaped.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EscapeError {
    #[error("value is not valid UTF-8")]
    InvalidUtf8,
    #[error("entity reference '&{0};' is not one of the predefined entities")]
    UnknownEntity(String),
    #[error("invalid character reference '&{0};'")]
    BadCharRef(String),
    #[error("'&' without a terminating ';'")]
    Unterminated,
}

/// Escapes a value for use inside either `'` or `"` quoted attributes. Tab, newline
/// and carriage return become character references: written literally, a parser would
/// read them back as spaces (attribute-value normalisation).
pub fn escape_attr(value: &str) -> Cow<'_, str> {
    escape(value, |c| {
        matches!(c, '&' | '<' | '>' | '"' | '\'' | '\t' | '\n' | '\r')
    })
}

/// Escapes character data (element text).
pub fn escape_text(value: &str) -> Cow<'_, str> {
    escape(value, |c| matches!(c, '&' | '<' | '>'))
}

fn escape(value: &str, special: impl Fn(char) -> bool) -> Cow<'_, str> {
    let Some(first) = value.find(&special) else {
        return Cow::Borrowed(value);
    };
    let mut out = String::with_capacity(value.len() + 16);
    out.push_str(&value[..first]);
    for c in value[first..].chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' if special('>') => out.push_str("&gt;"),
            '"' if special('"') => out.push_str("&quot;"),
            '\'' if special('\'') => out.push_str("&apos;"),
            '\t' if special('\t') => out.push_str("&#9;"),
            '\n' if special('\n') => out.push_str("&#10;"),
            '\r' if special('\r') => out.push_str("&#13;"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Decodes raw (escaped) UTF-8 text; borrows when there is nothing to replace.
pub fn unescape(raw: &[u8]) -> Result<Cow<'_, str>, EscapeError> {
    let text = std::str::from_utf8(raw).map_err(|_| EscapeError::InvalidUtf8)?;
    if memchr(b'&', raw).is_none() {
        return Ok(Cow::Borrowed(text));
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let semi = after.find(';').ok_or(EscapeError::Unterminated)?;
        out.push(resolve(&after[..semi])?);
        rest = &after[semi + 1..];
    }
    out.push_str(rest);
    Ok(Cow::Owned(out))
}

/// The value of an attribute as an XML parser reports it: literal whitespace (tab,
/// newline, carriage return, a CR LF pair counting as one) normalised to spaces, then
/// references decoded (so a `&#9;` stays a tab). Namespace URIs are compared this way.
pub(crate) fn attr_value(raw: &[u8]) -> Result<Cow<'_, str>, EscapeError> {
    if !raw.iter().any(|b| matches!(b, b'\t' | b'\n' | b'\r')) {
        return unescape(raw);
    }
    let text = std::str::from_utf8(raw).map_err(|_| EscapeError::InvalidUtf8)?;
    let spaced = text.replace("\r\n", " ").replace(['\t', '\n', '\r'], " ");
    Ok(Cow::Owned(unescape(spaced.as_bytes())?.into_owned()))
}

fn resolve(name: &str) -> Result<char, EscapeError> {
    match name {
        "amp" => Ok('&'),
        "lt" => Ok('<'),
        "gt" => Ok('>'),
        "quot" => Ok('"'),
        "apos" => Ok('\''),
        _ => match name.strip_prefix('#') {
            Some(number) => char_ref(number).ok_or_else(|| EscapeError::BadCharRef(name.into())),
            None => Err(EscapeError::UnknownEntity(name.into())),
        },
    }
}

fn char_ref(number: &str) -> Option<char> {
    let (digits, radix) = match number.strip_prefix('x') {
        Some(hex) => (hex, 16),
        None => (number, 10),
    };
    // from_str_radix alone would also accept a leading '+'.
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let value = u32::from_str_radix(digits, radix).ok()?;
    if !is_xml_char(value) {
        return None;
    }
    char::from_u32(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert!(matches!(escape_attr("plain"), Cow::Borrowed("plain")));
        assert_eq!(escape_attr(r#"a&b<c>'d""#), "a&amp;b&lt;c&gt;&apos;d&quot;");
        assert_eq!(escape_text(r#"a&b<c>'d""#), "a&amp;b&lt;c&gt;'d\"");
        assert_eq!(escape_text("ünï<"), "ünï&lt;");
    }

    #[test]
    fn unescapes() {
        assert!(matches!(unescape(b"plain"), Ok(Cow::Borrowed("plain"))));
        let got = unescape(b"a&amp;b&lt;&gt;&quot;&apos;&#65;&#x42;&#x1F600;").unwrap();
        assert_eq!(got, "a&b<>\"'AB\u{1F600}");
    }

    #[test]
    fn unescape_errors() {
        assert_eq!(
            unescape(b"&foo;"),
            Err(EscapeError::UnknownEntity("foo".into()))
        );
        assert_eq!(unescape(b"a&amp"), Err(EscapeError::Unterminated));
        assert!(matches!(unescape(b"&#0;"), Err(EscapeError::BadCharRef(_))));
        assert!(matches!(
            unescape(b"&#+65;"),
            Err(EscapeError::BadCharRef(_))
        ));
        assert!(matches!(unescape(b"&#x;"), Err(EscapeError::BadCharRef(_))));
        assert!(matches!(
            unescape(b"&#xD800;"),
            Err(EscapeError::BadCharRef(_))
        ));
        assert_eq!(unescape(b"\xff"), Err(EscapeError::InvalidUtf8));
    }

    #[test]
    fn attribute_values_are_normalised() {
        assert!(matches!(attr_value(b"urn:x"), Ok(Cow::Borrowed("urn:x"))));
        assert_eq!(attr_value(b"a\tb\nc\rd\r\ne").unwrap(), "a b c d e");
        assert_eq!(attr_value(b"a&#9;b&#13;&#10;c\t").unwrap(), "a\tb\r\nc ");
        assert_eq!(
            attr_value(b"\t&foo;"),
            Err(EscapeError::UnknownEntity("foo".into()))
        );
        assert_eq!(escape_attr("a\tb\nc\rd"), "a&#9;b&#10;c&#13;d");
        assert_eq!(
            attr_value(escape_attr("a\tb\r\n").as_bytes()).unwrap(),
            "a\tb\r\n"
        );
    }

    #[test]
    fn round_trip() {
        for s in ["", "x", "<a href='x'>&\"</a>", "ü & ö", "tab\tnl\ncr\r"] {
            assert_eq!(unescape(escape_attr(s).as_bytes()).unwrap(), s);
            assert_eq!(unescape(escape_text(s).as_bytes()).unwrap(), s);
        }
    }
}
