//! Errors on one line. hyper says "client error (Connect)" and keeps the
//! reason (refused, TLS...) further down the chain; a log line or an answer
//! needs all of it. A leaf, so the engine adapter and the clients can use it
//! without importing the library's error type.

/// An error and its causes, joined with `: `, each said once.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.ends_with(&next) {
            text = format!("{text}: {next}");
        }
        source = s.source();
    }
    text
}
