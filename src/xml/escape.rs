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

/// Escapes a value for use inside either `'` or `"` quoted attributes.
pub fn escape_attr(value: &str) -> Cow<'_, str> {
    escape(value, |c| matches!(c, '&' | '<' | '>' | '"' | '\''))
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
    fn round_trip() {
        for s in ["", "x", "<a href='x'>&\"</a>", "ü & ö"] {
            assert_eq!(unescape(escape_attr(s).as_bytes()).unwrap(), s);
            assert_eq!(unescape(escape_text(s).as_bytes()).unwrap(), s);
        }
    }
}
