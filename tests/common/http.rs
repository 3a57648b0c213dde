//! A minimal HTTP/1.1 client over a raw socket, for the admin endpoints and the test
//! web app (no client library: the tests see exactly what was sent back).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One request with `Connection: close`: (status, body).
pub async fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let mut text = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    text.push_str(body);
    tcp.write_all(text.as_bytes()).await.expect("send request");
    let mut response = String::new();
    tokio::time::timeout(Duration::from_secs(30), tcp.read_to_string(&mut response))
        .await
        .expect("HTTP answer in time")
        .expect("read answer");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

pub async fn get(port: u16, path: &str) -> (u16, String) {
    request(port, "GET", path, &[], "").await
}

/// The value of one sample in the proxy's `/metrics` (`""` when absent).
pub async fn metric(port: u16, name: &str) -> String {
    let (_, body) = get(port, "/metrics").await;
    body.lines()
        .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_owned()))
        .unwrap_or_default()
}

/// Waits until the sample `name` reads `value` (bounded: 15 s, then the test fails
/// saying what it read).
pub async fn await_metric(port: u16, name: &str, value: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let now = metric(port, name).await;
        if now == value {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{name} is {now:?}, not {value}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
