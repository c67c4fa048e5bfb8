//! Hardening: both listeners bounded alike (connection cap under a low
//! open-file limit, idle and header limits, body timeout, early 413), refused
//! handshakes counted rather than logged one by one, and the dashboard's
//! refusals.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{eventually, http_request, plain_http, Scope, Server};

/// Reads until the server closes the connection (or resets it): what it
/// sent, or `None` if it was still open after `within`.
fn until_closed(stream: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let deadline = Instant::now() + within;
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    while Instant::now() < deadline {
        stream
            .set_read_timeout(Some(deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1))))
            .unwrap();
        match stream.read(&mut chunk) {
            Ok(0) => return Some(received),
            Ok(n) => received.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Some(received),
            Err(_) => return None,
        }
    }
    None
}

/// A completed mutual-TLS connection to the API, for raw HTTP.
async fn tls_connection(server: &Server) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let config = replicator::tls::client_config(&replicator::tls::TlsFiles::client_in(&server.certs)).unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", server.port)).await.unwrap();
    connector.connect("localhost".try_into().unwrap(), tcp).await.unwrap()
}

/// What the API answers within `within` (up to the end of its headers and a little body), as text.
async fn answer(tls: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>, within: Duration) -> String {
    let mut buf = vec![0u8; 4096];
    match tokio::time::timeout(within, tls.read(&mut buf)).await {
        Ok(Ok(n)) => String::from_utf8_lossy(&buf[..n]).into_owned(),
        Ok(Err(e)) => format!("read error: {e}"),
        Err(_) => "no answer".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hardening_an_admin_flood_beyond_the_fd_limit_leaves_the_api_and_the_engine_client_working() {
    let scope = Scope::new("adminflood");
    let server = Server::start_limited(&scope, 256, &[]);
    let admin = server.admin_port;
    let flood: Vec<TcpStream> = (0..400)
        .filter_map(|i| {
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], admin));
            let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
            if i % 2 == 0 {
                let _ = stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n");
            }
            Some(stream)
        })
        .collect();
    assert!(flood.len() > 256, "the flood outnumbers the descriptors: {}", flood.len());

    let started = Instant::now();
    let groups = tokio::time::timeout(Duration::from_secs(5), server.client().get("/v1/groups")).await;
    let groups = groups.expect("the API answers promptly").expect("the API answers");
    assert_eq!(groups.status, StatusCode::OK, "{} after {:?}", groups.text(), started.elapsed());

    drop(flood);
    eventually("/healthz after the flood", Duration::from_secs(20), || {
        plain_http(admin, "GET", "/healthz").filter(|(status, _)| *status == 200)
    });
    let logs = server.logs().join("\n");
    assert!(!logs.contains("Too many open files"), "{logs}");
    assert!(logs.contains("\"max_connections\":64"), "256 descriptors: a quarter kept, 64 per listener");
}

#[test]
fn hardening_idle_admin_connections_are_closed_and_a_70_kb_header_is_refused() {
    let scope = Scope::new("adminidle");
    let server = scope.server(&["--header-timeout", "1s"]);
    let admin = ("127.0.0.1", server.admin_port);

    let mut silent = TcpStream::connect(admin).unwrap();
    assert!(until_closed(&mut silent, Duration::from_secs(5)).is_some(), "a silent connection is closed");

    let mut kept_alive = TcpStream::connect(admin).unwrap();
    kept_alive.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let answered = until_closed(&mut kept_alive, Duration::from_secs(5)).expect("closed once idle");
    assert!(answered.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answered[..40.min(answered.len())]));

    let mut big = TcpStream::connect(admin).unwrap();
    let header = format!("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: {}\r\n\r\n", "a".repeat(70_000));
    let _ = big.write_all(header.as_bytes()); // the server may close before it is all sent
    let answer = until_closed(&mut big, Duration::from_secs(5)).unwrap_or_default();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 431"), "{answer}");
}

#[tokio::test]
async fn hardening_a_trickled_body_is_cut_off_and_an_oversized_length_refused_at_once() {
    let scope = Scope::new("bodies");
    let server = scope.server(&["--body-timeout", "1s"]);

    let mut tls = tls_connection(&server).await;
    let head = "PUT /v1/groups/web/replicas HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n";
    tls.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let (mut reader, mut writer) = tokio::io::split(tls);
    let trickle = tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_millis(300));
        for _ in 0..100 {
            every.tick().await;
            if writer.write_all(b" ").await.is_err() {
                break;
            }
        }
    });
    let mut buf = vec![0u8; 4096];
    let read = tokio::time::timeout(Duration::from_secs(5), reader.read(&mut buf)).await;
    let text = match read {
        Ok(Ok(n)) => String::from_utf8_lossy(&buf[..n]).into_owned(),
        other => format!("{other:?}"),
    };
    assert!(text.starts_with("HTTP/1.1 408") && text.contains("request_timeout"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());
    trickle.abort();

    let mut tls = tls_connection(&server).await;
    let head = "POST /v1/metrics HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 10000000\r\n\r\n";
    tls.write_all(head.as_bytes()).await.unwrap();
    let text = answer(&mut tls, Duration::from_secs(2)).await;
    assert!(text.starts_with("HTTP/1.1 413") && text.contains("payload_too_large"), "{text}");

    let mut admin = TcpStream::connect(("127.0.0.1", server.admin_port)).unwrap();
    admin.write_all(b"POST /groups/web/scale HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10000000\r\n\r\n").unwrap();
    let text = until_closed(&mut admin, Duration::from_secs(2)).unwrap_or_default();
    assert!(text.starts_with(b"HTTP/1.1 413"), "{}", String::from_utf8_lossy(&text));
}

#[tokio::test]
async fn hardening_garbage_handshakes_are_counted_and_summed_up_not_logged_each() {
    let scope = Scope::new("garbage");
    let server = scope.process_server(&[]);
    for _ in 0..30 {
        let mut garbage = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        garbage.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
        assert!(until_closed(&mut garbage, Duration::from_secs(5)).is_some(), "refused");
    }
    let counted = |metrics: &str| -> u64 {
        let prefix = "replicator_tls_handshake_failures_total{reason=\"malformed\"} ";
        metrics.lines().find_map(|l| l.strip_prefix(prefix)).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
    };
    eventually("30 refusals counted", Duration::from_secs(5), || {
        (counted(&server.admin_get("/metrics").1) >= 30).then_some(())
    });
    let info_lines = server.logs().iter().filter(|l| l.contains("\"INFO\"") && l.contains("TLS handshake")).count();
    assert!(info_lines <= 1, "at most one summary so far, not one line per refusal: {info_lines}");
}

#[test]
fn hardening_dashboard_refusals_are_pages_and_follow_the_cross_site_rule() {
    let scope = Scope::new("dashrefuse");
    let form = ("Content-Type", "application/x-www-form-urlencoded");
    let only_shows = scope.server(&[]);
    let (status, page) =
        http_request(only_shows.admin_port, "POST", "/groups/web/scale", &[form], "replicas=1").unwrap();
    assert_eq!(status, 403, "the dashboard only shows unless serve --dashboard-actions: {page}");
    assert!(page.contains("--dashboard-actions"), "{page}");

    let server = scope.server(&["--dashboard-actions"]);
    let origin = format!("http://127.0.0.1:{}", server.admin_port);
    let same_origin = ("Origin", origin.as_str());
    let (status, page) =
        http_request(server.admin_port, "POST", "/groups/web/scale", &[form, same_origin], "replicas=lots").unwrap();
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("<p class=error>"), "the dashboard's own page: {page}");

    let cross = ("Sec-Fetch-Site", "cross-site");
    let (status, page) =
        http_request(server.admin_port, "POST", "/groups/web/scale", &[form, cross], "replicas=1").unwrap();
    assert_eq!(status, 403, "{page}");
}

#[test]
fn hardening_healthcheck_passes_with_the_server_and_fails_without_it() {
    let scope = Scope::new("healthcheck");
    let server = scope.server(&[]);
    let url = format!("http://127.0.0.1:{}/healthz", server.admin_port);
    let check =
        || std::process::Command::new(crate::common::BIN).args(["healthcheck", "--url", &url]).output().unwrap();
    let passed = check();
    assert!(passed.status.success(), "{}", String::from_utf8_lossy(&passed.stderr));
    drop(server);
    let failed = check();
    assert!(!failed.status.success(), "no server, no health");
    assert!(String::from_utf8_lossy(&failed.stderr).contains("127.0.0.1"), "the error names the URL");
}
