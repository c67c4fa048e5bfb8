//! The one rule, on both listeners, for state-changing requests a browser
//! marks as coming from another site: refused when `Sec-Fetch-Site` is
//! `cross-site` or `same-site`, or when an `Origin` is present and is not the
//! listener's own (its scheme and the `Host` the request was sent to).
//! Requests with neither header come from programs, not from a page a
//! browser was steered to, and are allowed.

use http::{header, HeaderMap};

use crate::base::quote::clip;

/// Why a state-changing request must be refused as cross-site, or `None`.
/// `scheme` is the listener's own (`https` for the API, `http` for the admin listener).
pub fn cross_site(headers: &HeaderMap, scheme: &str) -> Option<String> {
    let text = |name| headers.get(name).map(|v| v.to_str().unwrap_or("<not text>"));
    if let Some(site) = text(header::HeaderName::from_static("sec-fetch-site")) {
        if site.eq_ignore_ascii_case("cross-site") || site.eq_ignore_ascii_case("same-site") {
            return Some(format!("the browser marks this request {}", clip(site)));
        }
    }
    let origin = text(header::ORIGIN)?;
    let own = text(header::HOST).map(|host| format!("{scheme}://{}", without_default_port(host, scheme)));
    match own {
        Some(own) if origin.eq_ignore_ascii_case(&own) => None,
        Some(own) => Some(format!("origin {} is not this listener ({own})", clip(origin))),
        None => Some(format!("origin {} and no Host", clip(origin))),
    }
}

/// `host:443` is `host` for https (and `:80` for http), as browsers write origins.
fn without_default_port<'a>(host: &'a str, scheme: &str) -> &'a str {
    let default = if scheme == "https" { ":443" } else { ":80" };
    host.strip_suffix(default).unwrap_or(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (header::HeaderName::from_static(k), v.parse().unwrap())).collect()
    }

    #[test]
    fn programs_and_the_listeners_own_pages_pass() {
        assert_eq!(cross_site(&headers(&[("host", "localhost:8443")]), "https"), None, "curl");
        let own = headers(&[("host", "localhost:8443"), ("origin", "https://localhost:8443")]);
        assert_eq!(cross_site(&own, "https"), None);
        let default_port = headers(&[("host", "example.org:443"), ("origin", "https://example.org")]);
        assert_eq!(cross_site(&default_port, "https"), None);
        let same_origin = headers(&[("host", "127.0.0.1:9090"), ("sec-fetch-site", "same-origin")]);
        assert_eq!(cross_site(&same_origin, "http"), None);
        assert_eq!(cross_site(&headers(&[("sec-fetch-site", "none")]), "http"), None, "typed by the user");
    }

    #[test]
    fn other_sites_are_refused() {
        for refused in [
            headers(&[("host", "localhost:8443"), ("sec-fetch-site", "cross-site")]),
            headers(&[("host", "localhost:8443"), ("sec-fetch-site", "same-site")]),
            headers(&[("host", "localhost:8443"), ("origin", "https://evil.example")]),
            headers(&[("host", "localhost:8443"), ("origin", "http://localhost:8443")]),
            headers(&[("host", "localhost:8443"), ("origin", "null")]),
            headers(&[("origin", "https://localhost:8443")]),
        ] {
            assert!(cross_site(&refused, "https").is_some(), "{refused:?}");
        }
        let long = format!("https://{}", "a".repeat(5000));
        let why = cross_site(&headers(&[("host", "h"), ("origin", &long)]), "https").unwrap();
        assert!(why.len() < 200, "the origin is clipped: {why}");
    }
}
