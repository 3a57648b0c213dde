//! Well-known XMPP element names and attribute values as `&'static str`: the router
//! reads names and types on every stanza, and returning a static string skips the
//! UTF-8 re-validation that turning stanza bytes into `&str` costs otherwise.

/// The static twin of `bytes`, if it is a well-known name or value.
#[inline]
pub(crate) fn lookup(bytes: &[u8]) -> Option<&'static str> {
    Some(match bytes {
        b"iq" => "iq",
        b"message" => "message",
        b"presence" => "presence",
        b"a" => "a",
        b"r" => "r",
        b"body" => "body",
        b"query" => "query",
        b"bind" => "bind",
        b"features" => "features",
        b"error" => "error",
        b"enable" => "enable",
        b"enabled" => "enabled",
        b"resume" => "resume",
        b"resumed" => "resumed",
        b"failed" => "failed",
        b"auth" => "auth",
        b"challenge" => "challenge",
        b"response" => "response",
        b"success" => "success",
        b"failure" => "failure",
        b"starttls" => "starttls",
        b"proceed" => "proceed",
        b"handshake" => "handshake",
        b"result" => "result",
        b"verify" => "verify",
        b"get" => "get",
        b"set" => "set",
        b"chat" => "chat",
        b"groupchat" => "groupchat",
        b"normal" => "normal",
        b"headline" => "headline",
        b"unavailable" => "unavailable",
        b"subscribe" => "subscribe",
        b"subscribed" => "subscribed",
        b"unsubscribe" => "unsubscribe",
        b"unsubscribed" => "unsubscribed",
        b"probe" => "probe",
        b"valid" => "valid",
        b"invalid" => "invalid",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_twins_are_equal() {
        for name in [
            "iq",
            "message",
            "presence",
            "groupchat",
            "a",
            "unsubscribed",
        ] {
            assert_eq!(lookup(name.as_bytes()), Some(name));
        }
        assert_eq!(lookup(b"messages"), None);
        assert_eq!(lookup(b""), None);
    }
}
