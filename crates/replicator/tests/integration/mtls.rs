//! Mutual TLS: no certificate, or one from another CA, never gets an HTTP answer.

use replicator::cli::remote::{anonymous_config, ApiClient};
use replicator::tls::{client_config, TlsFiles};

use crate::common::{certs, Server};

#[tokio::test]
async fn clients_without_a_certificate_get_no_http_answer() {
    let server = Server::start(&[]);
    let config = anonymous_config(&server.certs.join("ca.pem")).unwrap();
    let client = ApiClient::with_config(&server.url(), config, false).unwrap();
    let err = client.get("/").await.expect_err("no answer without a client certificate");
    assert!(err.to_string().contains("request to"), "{err}");
}

#[tokio::test]
async fn clients_with_a_certificate_from_another_ca_get_no_http_answer() {
    let server = Server::start(&[]);
    let foreign = certs();
    // Trust the server's CA, but present a client certificate from another CA.
    let files = TlsFiles {
        cert: foreign.path().join("cert.pem"),
        key: foreign.path().join("key.pem"),
        ca: server.certs.join("ca.pem"),
    };
    let client = ApiClient::with_config(&server.url(), client_config(&files).unwrap(), false).unwrap();
    assert!(client.get("/").await.is_err());

    let good = server.client().get("/").await.unwrap();
    assert_eq!(good.status, http::StatusCode::BAD_REQUEST, "the same request with the right certificate is answered");
}
