//! Why a call to replicator failed: the one error type of the client, below
//! the client and its event stream, which both report it.

use http::StatusCode;

use crate::bundle::BundleError;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The certificate bundle could not be loaded.
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// The server URL is not `https://HOST:PORT`.
    #[error("invalid server URL {0:?}: expected https://HOST:PORT")]
    BadUrl(String),
    /// The name a server's certificate must carry is not a DNS name or IP address.
    #[error("invalid TLS server name {0:?}: expected a DNS name or an IP address")]
    BadTlsName(String),
    /// The request could not be built or sent, or its body could not be read.
    #[error("request to {url} failed: {reason}")]
    Request {
        /// The full URL requested.
        url: String,
        /// The cause, with every error of its chain spelled out.
        reason: String,
    },
    /// The server refused: its status, code (`denied`, `limit_reached`...) and message.
    #[error("{message} (HTTP {}, {code})", status.as_u16())]
    Status {
        /// The answer's status.
        status: StatusCode,
        /// The machine-readable code of `{"error": {"code"}}`, or `error`.
        code: String,
        /// The server's message, or the body when it sent no JSON error.
        message: String,
    },
    /// The answer is not the JSON the route describes.
    #[error("unexpected answer from {url}: {reason}")]
    Answer {
        /// The full URL requested.
        url: String,
        /// What did not parse.
        reason: String,
    },
}
