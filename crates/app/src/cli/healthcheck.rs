//! `outgrow healthcheck`: asks the local listener's `/healthz` and exits 0 on a 200 — the
//! container image's `HEALTHCHECK` (the runtime image has no shell and no curl) and an exec
//! probe for orchestrators that want one. One HTTP/1.1 request on a fresh connection to the
//! configured `listen` address (an unspecified address, `0.0.0.0` or `::`, is asked on
//! loopback), bounded by `--timeout`.

use std::{net::SocketAddr, process::ExitCode, time::Duration};

use anyhow::{Context, bail};
use outgrow_platform::config::Settings;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// Probes `path` on the configured listener; prints one line either way.
pub(super) async fn run(settings: &Settings, path: &str, timeout: Duration) -> anyhow::Result<ExitCode> {
    let address = probe_address(settings.listen);
    let url = format!("http://{address}{path}");
    match tokio::time::timeout(timeout, status_of(address, path)).await {
        Ok(Ok(200)) => {
            println!("healthy: GET {url} answered 200");
            Ok(ExitCode::SUCCESS)
        }
        Ok(Ok(status)) => {
            println!("unhealthy: GET {url} answered {status}");
            Ok(ExitCode::FAILURE)
        }
        Ok(Err(error)) => {
            println!("unhealthy: GET {url} failed: {error:#}");
            Ok(ExitCode::FAILURE)
        }
        Err(_) => {
            println!(
                "unhealthy: GET {url} got no answer within {}",
                humantime::format_duration(timeout)
            );
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Where to reach a listener bound to `listen`: loopback for an unspecified address.
fn probe_address(listen: SocketAddr) -> SocketAddr {
    let mut address = listen;
    if address.ip().is_unspecified() {
        address.set_ip(match address {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    address
}

/// The status code of `GET path`, read off the status line.
async fn status_of(address: SocketAddr, path: &str) -> anyhow::Result<u16> {
    let mut stream = TcpStream::connect(address)
        .await
        .with_context(|| format!("connecting to {address}"))?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nUser-Agent: outgrow-healthcheck\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .context("sending the request")?;
    let mut head = Vec::with_capacity(64);
    let mut buffer = [0u8; 64];
    while !head.windows(2).any(|pair| pair == b"\r\n") {
        let read = stream.read(&mut buffer).await.context("reading the answer")?;
        if read == 0 || head.len() > 1024 {
            bail!("the connection closed before a status line");
        }
        head.extend_from_slice(&buffer[..read]);
    }
    parse_status_line(&head)
}

/// `HTTP/1.1 200 OK\r\n…` → 200.
fn parse_status_line(head: &[u8]) -> anyhow::Result<u16> {
    let line = head.split(|&byte| byte == b'\r').next().unwrap_or_default();
    let line = std::str::from_utf8(line).context("a status line that is not text")?;
    let mut parts = line.split(' ');
    match (parts.next(), parts.next().map(str::parse::<u16>)) {
        (Some(version), Some(Ok(status))) if version.starts_with("HTTP/") => Ok(status),
        _ => bail!("not an HTTP status line: {line:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_are_read_and_garbage_is_refused() {
        assert_eq!(
            parse_status_line(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n").expect("200"),
            200
        );
        assert_eq!(
            parse_status_line(b"HTTP/1.1 503 Service Unavailable\r\n").expect("503"),
            503
        );
        assert!(parse_status_line(b"SSH-2.0-OpenSSH\r\n").is_err());
    }

    #[test]
    fn an_unspecified_listen_address_is_probed_on_loopback() {
        let any: SocketAddr = "0.0.0.0:8080".parse().expect("address");
        assert_eq!(
            probe_address(any),
            "127.0.0.1:8080".parse::<SocketAddr>().expect("address")
        );
        let any6: SocketAddr = "[::]:8080".parse().expect("address");
        assert_eq!(
            probe_address(any6),
            "[::1]:8080".parse::<SocketAddr>().expect("address")
        );
        let fixed: SocketAddr = "10.0.0.5:9000".parse().expect("address");
        assert_eq!(probe_address(fixed), fixed);
    }

    #[tokio::test]
    async fn a_listener_that_answers_200_is_healthy_and_none_is_not() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.expect("accept");
            let mut request = [0u8; 512];
            let _ = socket.read(&mut request).await;
            let _ = socket
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                .await;
        });
        let settings = Settings {
            listen: address,
            ..Settings::default()
        };
        let code = run(&settings, "/healthz", Duration::from_secs(2))
            .await
            .expect("run");
        assert_eq!(code, ExitCode::SUCCESS);
        // Nothing listens there any more.
        let code = run(&settings, "/healthz", Duration::from_secs(2))
            .await
            .expect("run");
        assert_eq!(code, ExitCode::FAILURE);
    }
}
