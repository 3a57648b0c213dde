//! The bench client: logs in the way a real client does (stream header, SASL PLAIN,
//! stream restart, resource binding) over any byte stream, then does closed-loop
//! message round trips.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::DOMAIN;

/// Size of the message each round trip sends (and gets echoed).
pub const MESSAGE_BYTES: usize = 250;

fn header() -> String {
    format!(
        "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
         xmlns:stream='http://etherx.jabber.org/streams' to='{DOMAIN}' version='1.0'>"
    )
}

/// A `<message>` of exactly [`MESSAGE_BYTES`] bytes addressed to `user`.
pub fn message(user: u64) -> Vec<u8> {
    let head = format!("<message to='user{user}@{DOMAIN}/r' type='chat' id='rt'><body>");
    let tail = "</body></message>";
    let fill = MESSAGE_BYTES.saturating_sub(head.len() + tail.len());
    let body: String = "wherefore art thou romeo "
        .chars()
        .cycle()
        .take(fill)
        .collect();
    let message = format!("{head}{body}{tail}");
    assert_eq!(message.len(), MESSAGE_BYTES, "message size");
    message.into_bytes()
}

/// Reads until `buf` contains `marker`, then forgets everything read.
async fn expect<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    marker: &[u8],
) -> io::Result<()> {
    loop {
        if memchr::memmem::find(buf, marker).is_some() {
            buf.clear();
            return Ok(());
        }
        let mut chunk = [0u8; 2048];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "closed while waiting for {:?}; got {:?}",
                    String::from_utf8_lossy(marker),
                    String::from_utf8_lossy(buf)
                ),
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Full login through resource binding as `user<n>`.
pub async fn login<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, user: u64) -> io::Result<()> {
    login_as(stream, &format!("user{user}")).await
}

/// Full login through resource binding as `user`.
pub async fn login_as<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    user: &str,
) -> io::Result<()> {
    use base64::Engine as _;
    let mut buf = Vec::with_capacity(1024);
    stream.write_all(header().as_bytes()).await?;
    expect(stream, &mut buf, b"</stream:features>").await?;
    let creds = base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0secret"));
    let auth =
        format!("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{creds}</auth>");
    stream.write_all(auth.as_bytes()).await?;
    expect(stream, &mut buf, b"<success").await?;
    stream.write_all(header().as_bytes()).await?;
    expect(stream, &mut buf, b"</stream:features>").await?;
    stream
        .write_all(
            b"<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
              <resource>r</resource></bind></iq>",
        )
        .await?;
    expect(stream, &mut buf, b"</iq>").await?;
    Ok(())
}

/// Sends `message` and waits for its echo (exactly as many bytes back).
pub async fn round_trip<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    message: &[u8],
    echo: &mut [u8],
) -> io::Result<()> {
    stream.write_all(message).await?;
    stream.read_exact(echo).await?;
    if !echo.ends_with(b"</message>") {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "echo is not the message sent",
        ));
    }
    Ok(())
}
