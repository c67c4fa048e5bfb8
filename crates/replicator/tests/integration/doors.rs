//! Doors tried as an attacker would, against a running `serve` over real
//! TLS: HEAD on the original route, certificates whose identity cannot be
//! read or is written in capitals, Swarm node certificates from a second
//! root or through an intermediate, revocation reaching open connections
//! and event streams, a revocation list that breaks at reload, the
//! dashboard reached from a member container, and a flood on a TCP front
//! under a low open-file limit.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, Issuer, KeyPair};
use replicator::cli::remote::ApiClient;
use replicator::tls::TlsFiles;
use serde_json::json;

use crate::common::redis::redis_image;
use crate::common::{eventually, eventually_async, free_port, issue_bundle, labels, plain_http, Scope, Server, BIN};

/// A TLS connection to `server` presenting the bundle in `certs`, made by hand
/// so that the test holds the very connection (not a pool's).
async fn tls_connection(
    server: &Server,
    certs: &Path,
) -> std::io::Result<TokioIo<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>> {
    let config = replicator::tls::client_config(&TlsFiles::client_in(certs)).expect("the bundle loads");
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", server.port)).await?;
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    Ok(TokioIo::new(connector.connect(name, tcp).await?))
}

/// One HTTP/1.1 connection held open: its sender, and a task that ends when
/// the server closes it.
struct Held {
    sender: hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    closed: tokio::task::JoinHandle<()>,
}

async fn hold(server: &Server, certs: &Path) -> Held {
    let io = tls_connection(server, certs).await.expect("the handshake succeeds");
    let (sender, connection) = hyper::client::conn::http1::handshake(io).await.expect("HTTP/1.1");
    let closed = tokio::spawn(async move {
        let _ = connection.await;
    });
    Held { sender, closed }
}

impl Held {
    async fn send(&mut self, method: Method, path: &str, headers: &[(&str, &str)]) -> Option<StatusCode> {
        self.sender.ready().await.ok()?;
        let mut request = http::Request::builder().method(method).uri(path).header("host", "localhost");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = self.sender.send_request(request.body(Empty::new()).unwrap()).await.ok()?;
        let status = response.status();
        let _ = response.into_body().collect().await;
        Some(status)
    }
}

/// One request on a fresh connection of its own.
async fn once(server: &Server, certs: &Path, method: Method, path: &str, headers: &[(&str, &str)]) -> StatusCode {
    hold(server, certs).await.send(method.clone(), path, headers).await.unwrap_or_else(|| panic!("{method} {path}"))
}

fn ca_issuer(ca_dir: &Path) -> Issuer<'static, KeyPair> {
    let key = KeyPair::from_pem(&std::fs::read_to_string(ca_dir.join("ca-key.pem")).unwrap()).unwrap();
    Issuer::from_ca_cert_pem(&std::fs::read_to_string(ca_dir.join("ca.pem")).unwrap(), key).unwrap()
}

/// A client certificate for `params`, signed by `issuer` (with `chain`
/// after it in cert.pem), written as a bundle trusting the server's CA.
fn bundle_of(
    mut params: CertificateParams,
    issuer: &Issuer<'_, KeyPair>,
    chain: &[String],
    server_ca: &Path,
    out: &Path,
) -> PathBuf {
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    std::fs::create_dir_all(out).unwrap();
    std::fs::write(out.join("cert.pem"), [cert.pem()].iter().chain(chain).cloned().collect::<String>()).unwrap();
    std::fs::write(out.join("key.pem"), key.serialize_pem()).unwrap();
    std::fs::copy(server_ca.join("ca.pem"), out.join("ca.pem")).unwrap();
    out.to_owned()
}

fn client_params(common_name: &str, uris: &[&str]) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, common_name);
    for uri in uris {
        params.subject_alt_names.push(rcgen::SanType::URI((*uri).try_into().unwrap()));
    }
    params
}

fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
    params
}

fn node_params(role: &str, node: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, node);
    params.distinguished_name.push(DnType::OrganizationalUnitName, role);
    params.distinguished_name.push(DnType::OrganizationName, "swarm-cluster-id");
    params
}

fn revoke(certs: &Path, crl: &Path, bundle: &Path) {
    let done = std::process::Command::new(BIN)
        .args(["certs", "revoke", "--ca"])
        .arg(certs)
        .arg("--crl")
        .arg(crl)
        .arg(bundle.join("cert.pem"))
        .output()
        .unwrap();
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
}

fn metric(server: &Server, line_start: &str) -> f64 {
    let (_, metrics) = server.admin_get("/metrics");
    metrics
        .lines()
        .filter(|l| l.starts_with(line_start))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn doors_head_replicates_for_no_one_the_get_would_refuse_and_never_cross_site() {
    let scope = Scope::new("doorhead");
    let (web, name) = scope.web_group(&["--label", "replicator.max=5"]);
    let server = scope.server(&[]);
    let dir = tempfile::tempdir().unwrap();
    let balancer = issue_bundle(&server.certs, "balancer:lb1", dir.path());
    let path = format!("/{web}");

    assert_eq!(once(&server, &balancer, Method::HEAD, &path, &[]).await, StatusCode::FORBIDDEN, "a balancer's HEAD");
    assert_eq!(once(&server, &balancer, Method::GET, &path, &[]).await, StatusCode::FORBIDDEN, "and its GET");
    let cross = [("sec-fetch-site", "cross-site")];
    assert_eq!(
        once(&server, &server.certs, Method::HEAD, &path, &cross).await,
        StatusCode::FORBIDDEN,
        "cross-site HEAD"
    );
    assert_eq!(once(&server, &server.certs, Method::OPTIONS, &path, &[]).await, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(scope.replicas_of(&name).len(), 0, "no door made a replica");
    assert_eq!(once(&server, &server.certs, Method::HEAD, &path, &[]).await, StatusCode::OK, "the operator's HEAD");
    assert_eq!(scope.replicas_of(&name).len(), 1, "which is its GET");
}

#[tokio::test]
async fn doors_an_identity_that_cannot_be_read_is_refused_and_an_upper_case_urn_is_its_identity() {
    let scope = Scope::new("doorsan");
    scope.web("a", &["--label", "replicator.max=5"]);
    scope.web("b", &["--label", "replicator.max=5"]);
    let (a, b) = (scope.name("a"), scope.name("b"));
    // The original tool's policy: a certificate without an identity may do everything.
    let server = scope.server(&["--unbound-clients", "operator"]);
    let dir = tempfile::tempdir().unwrap();
    let issuer = ca_issuer(&server.certs);
    let upper = format!("URN:REPLICATOR:app:{a}");
    let capitals =
        bundle_of(client_params("capitals", &[&upper]), &issuer, &[], &server.certs, &dir.path().join("caps"));
    let mut garbled = client_params("garbled", &[]);
    // A subject alternative name whose DNS entry is not text: it does not parse.
    garbled.custom_extensions.push(rcgen::CustomExtension::from_oid_content(
        &[2, 5, 29, 17],
        vec![0x30, 0x06, 0x82, 0x04, b'b', b'a', b'd', 0xff],
    ));
    let garbled = bundle_of(garbled, &issuer, &[], &server.certs, &dir.path().join("garbled"));

    let caps = ApiClient::new(&server.url(), &capitals).unwrap();
    let other =
        caps.request(Method::PUT, &format!("/v1/groups/{b}/replicas"), Some(&json!({"replicas": 2}))).await.unwrap();
    assert_eq!(other.status, StatusCode::FORBIDDEN, "an app in capitals is still only its group's: {}", other.text());
    assert_eq!(other.json()["error"]["identity"], format!("app:{a}"));
    let own =
        caps.request(Method::PUT, &format!("/v1/groups/{a}/replicas"), Some(&json!({"replicas": 2}))).await.unwrap();
    assert_eq!(own.status, StatusCode::OK, "its own group: {}", own.text());

    let bad = ApiClient::new(&server.url(), &garbled).unwrap();
    for (method, path) in [(Method::GET, "/v1/groups".to_owned()), (Method::PUT, format!("/v1/groups/{b}/replicas"))] {
        let r = bad.request(method.clone(), &path, Some(&json!({"replicas": 3}))).await.unwrap();
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{method} {path}: {}", r.text());
        assert!(r.text().contains("cannot be read"), "the reason is given: {}", r.text());
    }
    assert_eq!(scope.replicas_of(&b).len(), 0, "group b never grew");
}

#[tokio::test]
async fn doors_swarm_node_certificates_are_agents_from_any_swarm_root_and_survive_a_revocation_list() {
    let scope = Scope::new("doorswarm");
    let certs = crate::common::certs();
    let dir = tempfile::tempdir().unwrap();
    let (root1_key, root2_key, mid_key) =
        (KeyPair::generate().unwrap(), KeyPair::generate().unwrap(), KeyPair::generate().unwrap());
    let root1 = CertifiedIssuer::self_signed(ca_params("swarm-ca"), root1_key).unwrap();
    let root2 = CertifiedIssuer::self_signed(ca_params("swarm-ca"), root2_key).unwrap();
    let intermediate = CertifiedIssuer::signed_by(ca_params("swarm-intermediate"), mid_key, &root1).unwrap();
    let swarm_ca = dir.path().join("swarm-root-ca.crt");
    std::fs::write(&swarm_ca, format!("{}{}", root1.pem(), root2.pem())).unwrap();
    let out = |name: &str| dir.path().join(name);
    let by_second = bundle_of(node_params("swarm-worker", "nodeaaa"), &root2, &[], certs.path(), &out("second"));
    let through = bundle_of(
        node_params("swarm-manager", "nodebbb"),
        &intermediate,
        &[intermediate.pem()],
        certs.path(),
        &out("mid"),
    );
    // Claims an operator identity, but the Swarm's root vouches for it: it is a node's or nothing.
    let mut stranger = node_params("not-a-node", "nodeccc");
    stranger.subject_alt_names.push(rcgen::SanType::URI("urn:replicator:operator".try_into().unwrap()));
    let stranger = bundle_of(stranger, &root1, &[], certs.path(), &out("stranger"));

    let revoked = issue_bundle(certs.path(), "balancer:gone", dir.path());
    let crl = dir.path().join("crl.pem");
    revoke(certs.path(), &crl, &revoked);
    let args = [
        "--selector",
        &scope.label(),
        "--swarm-ca",
        swarm_ca.to_str().unwrap(),
        "--crl",
        crl.to_str().unwrap(),
        "--unbound-clients",
        "operator",
    ];
    let server = Server::in_process(certs.path(), &args);

    for (bundle, node) in [(&by_second, "nodeaaa"), (&through, "nodebbb")] {
        let agent = ApiClient::new(&server.url(), bundle).unwrap();
        let r = agent.get("/v1/groups").await.expect("a node's certificate connects beside a revocation list");
        assert_eq!(r.status, StatusCode::FORBIDDEN, "an agent reads no groups: {}", r.text());
        assert_eq!(r.json()["error"]["identity"], format!("agent:{node}"), "{}", r.text());
        let usage = json!({"hostname": node, "containers": []});
        let own = agent.request(Method::PUT, &format!("/v1/nodes/{node}/usage"), Some(&usage)).await.unwrap();
        // Whether the node is known depends on the engine's Swarm; the gate let it through.
        assert_ne!(own.json()["error"]["code"], "denied", "it reports for its own node: {}", own.text());
        let other = agent.request(Method::PUT, "/v1/nodes/nodezzz/usage", Some(&usage)).await.unwrap();
        assert_eq!(other.json()["error"]["code"], "denied", "and no other: {}", other.text());
    }
    let r = ApiClient::new(&server.url(), &stranger).unwrap().get("/v1/groups").await.unwrap();
    assert_eq!(r.status, StatusCode::FORBIDDEN, "a Swarm certificate that is no node's: {}", r.text());
    assert!(ApiClient::new(&server.url(), &revoked).unwrap().get("/v1/groups").await.is_err(), "the list still holds");
    assert_eq!(server.client().get("/v1/groups").await.unwrap().status, StatusCode::OK, "the operator unaffected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doors_a_revoked_certificate_loses_its_open_connection_and_event_stream_at_reload() {
    let scope = Scope::new("doorrevoke");
    scope.web_group(&[]);
    let certs = crate::common::certs();
    let dir = tempfile::tempdir().unwrap();
    let (leaked, kept, spare) = (
        issue_bundle(certs.path(), "balancer:leaked", dir.path()),
        issue_bundle(certs.path(), "balancer:kept", dir.path()),
        issue_bundle(certs.path(), "balancer:spare", dir.path()),
    );
    let crl = dir.path().join("crl.pem");
    revoke(certs.path(), &crl, &spare);
    let server = Server::start_with(certs.path(), &["--selector", &scope.label(), "--crl", crl.to_str().unwrap()], &[]);

    let mut leaked_conn = hold(&server, &leaked).await;
    let mut kept_conn = hold(&server, &kept).await;
    assert_eq!(leaked_conn.send(Method::GET, "/v1/groups", &[]).await, Some(StatusCode::OK));
    let stream =
        ApiClient::new(&server.url(), &leaked).unwrap().stream("/v1/events?follower=leaked", &[]).await.unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    let stream_ended = tokio::spawn(async move {
        let mut body = stream.into_body();
        while let Some(Ok(_)) = body.frame().await {}
    });

    revoke(certs.path(), &crl, &leaked);
    server.signal("HUP");
    let revoked_at = Instant::now();
    eventually_async("the revoked client's keep-alive connection closed", Duration::from_secs(10), async || {
        leaked_conn.closed.is_finished().then_some(())
    })
    .await;
    eventually_async("its event stream ended", Duration::from_secs(10), async || {
        stream_ended.is_finished().then_some(())
    })
    .await;
    assert!(revoked_at.elapsed() < Duration::from_secs(5), "closed within a few seconds: {:?}", revoked_at.elapsed());
    assert_eq!(kept_conn.send(Method::GET, "/v1/groups", &[]).await, Some(StatusCode::OK), "the others keep theirs");
    assert!(metric(&server, "replicator_tls_connections_closed_total{reason=\"revoked\"}") >= 2.0);
}

#[tokio::test]
async fn doors_a_revocation_list_that_breaks_at_reload_makes_health_fail_and_certs_revoke_never_drops_one() {
    let scope = Scope::new("doorcrl");
    let certs = crate::common::certs();
    let dir = tempfile::tempdir().unwrap();
    let spare = issue_bundle(certs.path(), "balancer:spare", dir.path());
    let crl = dir.path().join("crl.pem");
    revoke(certs.path(), &crl, &spare);
    let good = std::fs::read(&crl).unwrap();
    let server = Server::start_with(certs.path(), &["--selector", &scope.label(), "--crl", crl.to_str().unwrap()], &[]);
    assert_eq!(server.admin_get("/healthz").0, 200);

    std::fs::write(&crl, "not a revocation list\n").unwrap();
    server.signal("HUP");
    let body = eventually("/healthz degraded", Duration::from_secs(10), || {
        let (status, body) = server.admin_get("/healthz");
        (status == 503).then_some(body)
    });
    assert!(body.contains("revocation list") && body.contains("stale"), "{body}");
    assert!(metric(&server, "replicator_tls_reload_failures_total") >= 1.0);
    assert_eq!(server.client().get("/v1/groups").await.unwrap().status, StatusCode::OK, "the last good list serves");
    assert!(ApiClient::new(&server.url(), &spare).unwrap().get("/v1/groups").await.is_err(), "and still refuses");
    std::fs::write(&crl, &good).unwrap();
    server.signal("HUP");
    eventually("/healthz healthy again", Duration::from_secs(10), || {
        (server.admin_get("/healthz").0 == 200).then_some(())
    });

    // A list that another user may not read: revoking as that user refuses to write a shorter one.
    let shared = tempfile::tempdir().unwrap();
    let ca = shared.path().join("ca");
    std::fs::create_dir(&ca).unwrap();
    for file in ["ca.pem", "ca-key.pem"] {
        std::fs::copy(certs.path().join(file), ca.join(file)).unwrap();
    }
    let listed = shared.path().join("crl.pem");
    std::fs::write(&listed, &good).unwrap();
    let victim = issue_bundle(certs.path(), "balancer:victim", shared.path());
    use std::os::unix::fs::PermissionsExt;
    for (path, mode) in [
        (shared.path(), 0o777),
        (&ca, 0o755),
        (&ca.join("ca.pem"), 0o644),
        (&ca.join("ca-key.pem"), 0o644),
        (&listed, 0o000),
    ] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    for path in [victim.as_path(), &victim.join("cert.pem")] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let out = std::process::Command::new("setpriv")
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups", BIN, "certs", "revoke", "--ca"])
        .arg(&ca)
        .arg("--crl")
        .arg(&listed)
        .arg(victim.join("cert.pem"))
        .output()
        .expect("setpriv runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "revoking over an unreadable list must fail");
    assert!(stderr.contains("cannot read the revocation list"), "{stderr}");
    assert_eq!(std::fs::read(&listed).unwrap(), good, "the list is unchanged");
}

#[tokio::test]
async fn doors_the_dashboard_acts_from_loopback_and_never_for_a_member_container_even_with_its_token() {
    let scope = Scope::new("doordash");
    let network = scope.network("net");
    let gateway = scope.docker(&["network", "inspect", &network, "-f", "{{(index .IPAM.Config 0).Gateway}}"]);
    let gateway = gateway.trim().to_owned();
    let (_, name) = scope.web_group(&["--label", "replicator.max=5", "--network", &network]);
    let admin_port = free_port();
    let listen = format!("0.0.0.0:{admin_port}");
    let _server = scope.server(&["--dashboard-actions", "--metrics-listen", &listen]);

    // A member: it fetches the page (no token is shown to it), then posts with the token a loopback page shows.
    let token_of =
        |page: &str| page.split("name=token value=\"").nth(1).and_then(|r| r.split('"').next()).map(str::to_owned);
    let (status, local_page) = crate::common::http_request(admin_port, "GET", "/", &[], "").unwrap();
    assert_eq!(status, 200);
    let token = token_of(&local_page).expect("a loopback page carries the token");
    let origin = format!("http://{gateway}:{admin_port}");
    let script = format!(
        "wget -q -O /tmp/page http://{gateway}:{admin_port}/ && grep -c 'name=token' /tmp/page; \
         wget -q -S -O - --header 'Origin: {origin}' --post-data 'replicas=3&token={token}' \
         http://{gateway}:{admin_port}/groups/{name}/scale 2>&1; echo exit=$?"
    );
    let member = scope.docker(&[
        "run",
        "--rm",
        "--network",
        &network,
        "--label",
        &scope.label(),
        crate::common::image(),
        "sh",
        "-c",
        &script,
    ]);
    assert!(member.starts_with('0'), "the member's page shows no token: {member}");
    assert!(member.contains("403"), "the member's POST is refused: {member}");
    assert_eq!(scope.replicas_of(&name).len(), 0, "nothing scaled");

    let form = format!("replicas=2&token={token}");
    let headers =
        [("Origin", &*format!("http://127.0.0.1:{admin_port}")), ("Content-Type", "application/x-www-form-urlencoded")];
    let (status, body) =
        crate::common::http_request(admin_port, "POST", &format!("/groups/{name}/scale"), &headers, &form).unwrap();
    assert_eq!(status, 303, "the same form from loopback acts: {body}");
    eventually("the group at 2", Duration::from_secs(30), || (scope.replicas_of(&name).len() == 1).then_some(()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doors_a_flood_on_a_front_under_512_descriptors_leaves_the_api_answering() {
    let scope = Scope::new("doorflood");
    replicator::http::listener::raise_fd_limit();
    let port = free_port();
    let network = scope.network("net");
    let mut args = labels(&["replicator.enable=true", "replicator.max=2", "replicator.front.target=6379"]);
    let (front, on) = (format!("replicator.front.port={port}"), format!("replicator.front.network={network}"));
    args.extend(["--label", &front, "--label", &on, "--label", "replicator.ready=tcp:6379,period=500ms"]);
    args.extend(["--network", &network, redis_image()]);
    scope.run("cache", &args);
    let server =
        Server::start_limited(&scope, 512, &["--front-ports", &port.to_string(), "--front-address", "127.0.0.1"]);
    let answers = crate::common::wait::poll_until(Duration::from_secs(30), || {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        crate::common::redis::command(&mut s, "PING").ok().filter(|p| p == "+PONG")
    });
    assert!(answers.is_ok(), "the front answers PING");
    let before = Instant::now();
    assert_eq!(server.client().get("/v1/groups").await.unwrap().status, StatusCode::OK);
    let usual = before.elapsed();

    let flood: Vec<std::net::TcpStream> = (0..2000)
        .filter_map(|_| {
            std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(1)).ok()
        })
        .collect();
    assert!(flood.len() > 1000, "the flood connected: {}", flood.len());
    let mut slowest = Duration::ZERO;
    for _ in 0..10 {
        let started = Instant::now();
        let answer = tokio::time::timeout(Duration::from_secs(5), server.client().get("/v1/groups")).await;
        let answer = answer.expect("the API answers during the flood").expect("the API answers");
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        slowest = slowest.max(started.elapsed());
    }
    assert!(slowest < usual.max(Duration::from_millis(200)) * 10, "slowest {slowest:?}, usual {usual:?}");
    let (_, metrics) = server.admin_get("/metrics");
    let refused: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("replicator_front_connections_total") && l.contains("event=\"refused\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(refused >= 1000.0, "most of the flood refused and counted: {refused}");
    assert!(!server.logs().join("\n").contains("Too many open files"));
    drop(flood);
    assert_eq!(plain_http(server.admin_port, "GET", "/healthz").map(|(s, _)| s), Some(200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doors_max_connection_age_ends_a_kept_alive_connection_after_its_request() {
    let scope = Scope::new("doorage");
    let server = scope.server(&["--max-connection-age", "1s"]);
    let mut held = hold(&server, &server.certs).await;
    let opened = Instant::now();
    assert_eq!(held.send(Method::GET, "/v1/groups", &[]).await, Some(StatusCode::OK));
    eventually_async("the connection closed by its age", Duration::from_secs(10), async || {
        held.closed.is_finished().then_some(())
    })
    .await;
    // An idle keep-alive connection lives 10 s (--header-timeout): closing sooner is the age's doing.
    assert!(opened.elapsed() < Duration::from_secs(5), "closed after {:?}", opened.elapsed());
    assert!(metric(&server, "replicator_tls_connections_closed_total{reason=\"max_age\"}") >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doors_a_front_carries_no_more_than_front_max_connections() {
    let scope = Scope::new("doorcap");
    let port = free_port();
    let network = scope.network("net");
    let mut args = labels(&["replicator.enable=true", "replicator.front.target=6379"]);
    let (front, on) = (format!("replicator.front.port={port}"), format!("replicator.front.network={network}"));
    args.extend(["--label", &front, "--label", &on, "--label", "replicator.ready=tcp:6379,period=500ms"]);
    args.extend(["--network", &network, redis_image()]);
    scope.run("cache", &args);
    let ports = port.to_string();
    let flags = ["--front-ports", &ports, "--front-address", "127.0.0.1", "--front-max-connections", "2"];
    let server = scope.server(&flags);
    let ping = |s: &mut std::net::TcpStream| crate::common::redis::command(s, "PING").ok().filter(|p| p == "+PONG");
    let connect = || {
        let s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        Some(s)
    };
    let mut first = eventually("the front answers", Duration::from_secs(30), || {
        let mut s = connect()?;
        ping(&mut s).map(|_| s)
    });
    let mut second = connect().expect("a second connection");
    assert!(ping(&mut second).is_some(), "two connections are carried");
    let mut third = connect().expect("the kernel accepts the third");
    assert!(ping(&mut third).is_none(), "the third is closed at once");
    assert!(ping(&mut first).is_some() && ping(&mut second).is_some(), "the two carried are untouched");
    let (_, metrics) = server.admin_get("/metrics");
    assert!(
        metrics.lines().any(|l| l.starts_with("replicator_front_connections_total") && l.contains("event=\"refused\"")),
        "{metrics}"
    );
    drop((first, second));
    let mut again = eventually("a place again once one closes", Duration::from_secs(10), || {
        let mut s = connect()?;
        ping(&mut s).map(|_| s)
    });
    assert!(ping(&mut again).is_some());
}
