//! PROXY protocol (HAProxy, versions 1 and 2) on the client listeners: a load
//! balancer in `listen.proxy_protocol_from` must start each connection with a header
//! carrying the client's real address; a header from anywhere else, or none from a
//! listed source, closes the connection. The header is parsed with `ppp`, and read
//! byte-exactly so what follows it (a stream header, a TLS ClientHello) stays unread.
//!
//! It also writes the header the proxy sends toward the server
//! (`upstream.proxy_protocol`), so the server sees the client's address too.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::config::UpstreamProxyProtocol;

/// The longest v1 header (the PROXY protocol specification, §2.1: 107 bytes with CRLF).
const V1_MAX: usize = 107;
/// The v2 signature (spec §2.2).
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

#[derive(Debug, thiserror::Error)]
pub enum ProxyHeaderError {
    #[error("a PROXY protocol header from {0}, which is not in listen.proxy_protocol_from")]
    Untrusted(IpAddr),
    #[error("no PROXY protocol header from {0}, which listen.proxy_protocol_from lists")]
    Missing(IpAddr),
    #[error("malformed PROXY protocol header: {0}")]
    Malformed(String),
    #[error("the connection ended before its PROXY protocol header")]
    Closed,
    #[error("no PROXY protocol header in time")]
    Timeout,
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

impl ProxyHeaderError {
    /// As a metric label.
    pub fn label(&self) -> &'static str {
        match self {
            ProxyHeaderError::Untrusted(_) => "untrusted",
            ProxyHeaderError::Missing(_) => "missing",
            ProxyHeaderError::Malformed(_) => "malformed",
            ProxyHeaderError::Closed => "closed",
            ProxyHeaderError::Timeout => "timeout",
            ProxyHeaderError::Io(_) => "io",
        }
    }
}

/// The two ends of a client's connection as the client sees them: its own address
/// and the address it connected to (a balancer's, when one is in front).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoints {
    pub client: SocketAddr,
    pub server: SocketAddr,
}

/// The connection's real endpoints: from the header when `peer` is a listed source,
/// the socket's own otherwise (after checking that it sent no header).
pub async fn endpoints(
    tcp: &mut TcpStream,
    peer: SocketAddr,
    trusted: &[IpNet],
    deadline: Instant,
) -> Result<Endpoints, ProxyHeaderError> {
    let direct = Endpoints {
        client: peer,
        server: tcp.local_addr()?,
    };
    if trusted.is_empty() {
        // PROXY protocol is off: nothing to look at.
        return Ok(direct);
    }
    let listed = trusted.iter().any(|net| net.contains(&peer.ip()));
    tokio::time::timeout_at(deadline, async {
        // XMPP starts with `<` or whitespace and TLS with 0x16: a first byte of `P`
        // (v1) or `\r` (v2) is a PROXY header, decided without waiting for more.
        let first = first_byte(tcp).await?;
        let looks_like_header = first == b'P' || first == V2_SIGNATURE[0];
        match (listed, looks_like_header) {
            (false, false) => Ok(direct),
            (false, true) => Err(ProxyHeaderError::Untrusted(peer.ip())),
            (true, false) => Err(ProxyHeaderError::Missing(peer.ip())),
            (true, true) => read_header(tcp, first, direct).await,
        }
    })
    .await
    .map_err(|_| ProxyHeaderError::Timeout)?
}

/// Waits for the connection's first byte without consuming it.
async fn first_byte(tcp: &mut TcpStream) -> Result<u8, ProxyHeaderError> {
    let mut byte = [0u8; 1];
    match tcp.peek(&mut byte).await? {
        0 => Err(ProxyHeaderError::Closed),
        _ => Ok(byte[0]),
    }
}

async fn read_header(
    tcp: &mut TcpStream,
    first: u8,
    direct: Endpoints,
) -> Result<Endpoints, ProxyHeaderError> {
    let bytes = match first {
        b'P' => read_v1(tcp).await?,
        _ => read_v2(tcp).await?,
    };
    announced(&bytes, direct)
}

/// A v1 header ends with CRLF within [`V1_MAX`] bytes; read a byte at a time so
/// nothing after it is consumed (only listed balancers get here).
async fn read_v1(tcp: &mut TcpStream) -> Result<Vec<u8>, ProxyHeaderError> {
    let mut bytes = Vec::with_capacity(V1_MAX);
    while !bytes.ends_with(b"\r\n") {
        if bytes.len() >= V1_MAX {
            return Err(ProxyHeaderError::Malformed("v1 header too long".into()));
        }
        let mut byte = [0u8; 1];
        if tcp.read(&mut byte).await? == 0 {
            return Err(ProxyHeaderError::Closed);
        }
        bytes.push(byte[0]);
    }
    Ok(bytes)
}

/// A v2 header: 16 fixed bytes, the last two giving the length of the rest.
async fn read_v2(tcp: &mut TcpStream) -> Result<Vec<u8>, ProxyHeaderError> {
    let mut fixed = [0u8; 16];
    tcp.read_exact(&mut fixed).await.map_err(eof_is_closed)?;
    if fixed[..12] != V2_SIGNATURE {
        return Err(ProxyHeaderError::Malformed("not a v2 signature".into()));
    }
    let len = usize::from(u16::from_be_bytes([fixed[14], fixed[15]]));
    let mut bytes = fixed.to_vec();
    bytes.resize(16 + len, 0);
    tcp.read_exact(&mut bytes[16..])
        .await
        .map_err(eof_is_closed)?;
    Ok(bytes)
}

fn eof_is_closed(error: std::io::Error) -> ProxyHeaderError {
    match error.kind() {
        std::io::ErrorKind::UnexpectedEof => ProxyHeaderError::Closed,
        _ => ProxyHeaderError::Io(error),
    }
}

/// The endpoints a complete header announces; `direct` (the socket's own) for headers
/// that announce none (v1 `UNKNOWN`, v2 `LOCAL`: the balancer's own health checks).
pub fn announced(bytes: &[u8], direct: Endpoints) -> Result<Endpoints, ProxyHeaderError> {
    use ppp::{v1, v2, HeaderResult};
    let malformed = |e: &dyn std::fmt::Display| ProxyHeaderError::Malformed(e.to_string());
    let pair = |client: SocketAddr, server: SocketAddr| Endpoints { client, server };
    match HeaderResult::parse(bytes) {
        HeaderResult::V1(Ok(header)) => Ok(match header.addresses {
            v1::Addresses::Tcp4(ip) => pair(
                (ip.source_address, ip.source_port).into(),
                (ip.destination_address, ip.destination_port).into(),
            ),
            v1::Addresses::Tcp6(ip) => pair(
                (ip.source_address, ip.source_port).into(),
                (ip.destination_address, ip.destination_port).into(),
            ),
            v1::Addresses::Unknown => direct,
        }),
        HeaderResult::V2(Ok(header)) => Ok(match (header.command, header.addresses) {
            (v2::Command::Local, _) => direct,
            (_, v2::Addresses::IPv4(ip)) => pair(
                (ip.source_address, ip.source_port).into(),
                (ip.destination_address, ip.destination_port).into(),
            ),
            (_, v2::Addresses::IPv6(ip)) => pair(
                (ip.source_address, ip.source_port).into(),
                (ip.destination_address, ip.destination_port).into(),
            ),
            (_, v2::Addresses::Unspecified | v2::Addresses::Unix(_)) => direct,
        }),
        HeaderResult::V1(Err(e)) => Err(malformed(&e)),
        HeaderResult::V2(Err(e)) => Err(malformed(&e)),
    }
}

/// The header announcing `endpoints` to the server, in the configured version.
/// Both addresses are put in one family (IPv4 in IPv6 when they differ), as the
/// header has room for one; `None` when the setting is off.
pub fn header_for(version: UpstreamProxyProtocol, endpoints: Endpoints) -> Option<Vec<u8>> {
    let (client, server) = same_family(endpoints.client, endpoints.server);
    match version {
        UpstreamProxyProtocol::None => None,
        UpstreamProxyProtocol::V1 => Some(
            ppp::v1::Addresses::from((client, server))
                .to_string()
                .into_bytes(),
        ),
        UpstreamProxyProtocol::V2 => {
            use ppp::v2::{Builder, Command, Protocol, Version};
            let builder = Builder::with_addresses(
                Version::Two | Command::Proxy,
                Protocol::Stream,
                (client, server),
            );
            // Building only fails on lengths beyond u16; two socket addresses fit.
            builder.build().ok()
        }
    }
}

/// `a` and `b` in one address family: IPv4-mapped IPv6 addresses are unmapped, and a
/// remaining mix is written as IPv6.
fn same_family(a: SocketAddr, b: SocketAddr) -> (SocketAddr, SocketAddr) {
    let unmap = |s: SocketAddr| match s {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::from((v4, v6.port())),
            None => s,
        },
        v4 => v4,
    };
    let widen = |s: SocketAddr| match s {
        SocketAddr::V4(v4) => SocketAddr::from((v4.ip().to_ipv6_mapped(), v4.port())),
        v6 => v6,
    };
    match (unmap(a), unmap(b)) {
        (a @ SocketAddr::V4(_), b @ SocketAddr::V4(_)) => (a, b),
        (a, b) => (widen(a), widen(b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn direct() -> Endpoints {
        Endpoints {
            client: "127.0.0.1:9".parse().unwrap(),
            server: "127.0.0.1:5222".parse().unwrap(),
        }
    }

    fn source_of(bytes: &[u8]) -> Result<SocketAddr, ProxyHeaderError> {
        announced(bytes, direct()).map(|e| e.client)
    }

    #[test]
    fn v1_headers() {
        let tcp4 = b"PROXY TCP4 203.0.113.7 192.0.2.1 40000 5222\r\n";
        assert_eq!(
            source_of(tcp4).unwrap(),
            "203.0.113.7:40000".parse().unwrap()
        );
        let tcp6 = b"PROXY TCP6 2001:db8::7 2001:db8::1 40000 5222\r\n";
        assert_eq!(
            source_of(tcp6).unwrap(),
            "[2001:db8::7]:40000".parse().unwrap()
        );
        assert_eq!(source_of(b"PROXY UNKNOWN\r\n").unwrap(), direct().client);
        assert!(source_of(b"PROXY TCP4 nonsense\r\n").is_err());
    }

    #[test]
    fn v2_headers() {
        let mut header = V2_SIGNATURE.to_vec();
        header.extend_from_slice(&[0x21, 0x11, 0, 12]); // PROXY, TCP over IPv4, 12 bytes
        header.extend_from_slice(&[198, 51, 100, 9, 192, 0, 2, 1]);
        header.extend_from_slice(&41000u16.to_be_bytes());
        header.extend_from_slice(&5222u16.to_be_bytes());
        assert_eq!(
            source_of(&header).unwrap(),
            "198.51.100.9:41000".parse().unwrap()
        );
        let mut local = V2_SIGNATURE.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0, 0]);
        assert_eq!(source_of(&local).unwrap(), direct().client);
    }

    /// What the proxy writes toward the server reads back, with both versions, as
    /// the endpoints it announces; mixed families are written as IPv6.
    #[test]
    fn written_headers_round_trip() {
        let endpoints = Endpoints {
            client: "203.0.113.7:40000".parse().unwrap(),
            server: "192.0.2.1:5222".parse().unwrap(),
        };
        let v1 = header_for(UpstreamProxyProtocol::V1, endpoints).unwrap();
        assert_eq!(v1, b"PROXY TCP4 203.0.113.7 192.0.2.1 40000 5222\r\n");
        let v2 = header_for(UpstreamProxyProtocol::V2, endpoints).unwrap();
        assert_eq!(v2[..12], V2_SIGNATURE);
        assert_eq!(announced(&v2, direct()).unwrap(), endpoints);
        assert_eq!(header_for(UpstreamProxyProtocol::None, endpoints), None);

        let mixed = Endpoints {
            client: "[2001:db8::7]:40000".parse().unwrap(),
            server: "192.0.2.1:5222".parse().unwrap(),
        };
        let v1 = header_for(UpstreamProxyProtocol::V1, mixed).unwrap();
        let text = String::from_utf8(v1).unwrap();
        assert_eq!(
            text,
            "PROXY TCP6 2001:db8::7 ::ffff:192.0.2.1 40000 5222\r\n"
        );
        let mapped = Endpoints {
            client: "[::ffff:198.51.100.9]:1".parse().unwrap(),
            server: "192.0.2.1:5222".parse().unwrap(),
        };
        let v2 = header_for(UpstreamProxyProtocol::V2, mapped).unwrap();
        let read = announced(&v2, direct()).unwrap();
        assert_eq!(read.client, "198.51.100.9:1".parse().unwrap());
    }
}
