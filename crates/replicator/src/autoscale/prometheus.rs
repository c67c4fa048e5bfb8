//! Reading a group's metric from Prometheus: one instant query that must come
//! back as one finite number. Anything else is "no fresh value", never zero.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// A Prometheus server's HTTP API.
#[derive(Clone)]
pub struct PrometheusClient {
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
    timeout: Duration,
}

impl PrometheusClient {
    /// `url` is the server's base, e.g. `http://127.0.0.1:9090` (plain HTTP).
    pub fn new(url: &str, timeout: Duration) -> Result<Self, String> {
        let base = url.trim_end_matches('/').to_owned();
        let uri: http::Uri = base.parse().map_err(|_| format!("{url:?} is not a URL"))?;
        if uri.scheme_str() != Some("http") || uri.host().is_none() {
            return Err(format!("{url:?}: --prometheus-url must be http://HOST:PORT[/PATH]"));
        }
        let client = Client::builder(TokioExecutor::new()).build_http();
        Ok(Self { base, client, timeout })
    }

    /// The query's single value.
    pub async fn query(&self, promql: &str) -> Result<f64, String> {
        let query: String = form_urlencoded::Serializer::new(String::new()).append_pair("query", promql).finish();
        let uri = format!("{}/api/v1/query?{query}", self.base);
        let request = http::Request::get(&uri).body(Full::new(Bytes::new())).map_err(|e| e.to_string())?;
        let call = async {
            let response = self.client.request(request).await.map_err(|e| format!("Prometheus unreachable: {e}"))?;
            // An instant query's answer is a few hundred bytes: a larger one is not read whole.
            let limited = http_body_util::Limited::new(response.into_body(), MAX_ANSWER);
            let body = limited
                .collect()
                .await
                .map_err(|e| format!("Prometheus's answer was not read (at most {MAX_ANSWER} bytes): {e}"))?
                .to_bytes();
            parse_response(&body)
        };
        tokio::time::timeout(self.timeout, call).await.map_err(|_| "Prometheus did not answer in time".to_owned())?
    }
}

/// Largest answer of Prometheus read.
const MAX_ANSWER: usize = 1024 * 1024;

/// The value of a `/api/v1/query` answer with exactly one sample.
pub fn parse_response(body: &[u8]) -> Result<f64, String> {
    let v: Value =
        serde_json::from_slice(body).map_err(|_| "Prometheus answered something other than JSON".to_owned())?;
    if v["status"] != "success" {
        let error = v["error"].as_str().unwrap_or("unknown error");
        return Err(format!("the query failed: {error}"));
    }
    let sample = match v["data"]["resultType"].as_str() {
        Some("scalar") => &v["data"]["result"],
        Some("vector") => match v["data"]["result"].as_array().map(Vec::as_slice) {
            Some([one]) => &one["value"],
            Some([]) => return Err("the query returned no series".into()),
            Some(many) => return Err(format!("the query returned {} series; it must return one", many.len())),
            None => return Err("malformed vector result".into()),
        },
        other => {
            return Err(format!("the query returned a {} result; it must return one number", other.unwrap_or("?")))
        }
    };
    let text = sample[1].as_str().ok_or("malformed sample")?;
    let value: f64 = text.parse().map_err(|_| format!("{text:?} is not a number"))?;
    if value.is_finite() {
        Ok(value)
    } else {
        Err(format!("the query returned {text}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_one_sample_of_a_vector_or_a_scalar() {
        let vector = br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000.1,"42.5"]}]}}"#;
        assert_eq!(parse_response(vector), Ok(42.5));
        let scalar = br#"{"status":"success","data":{"resultType":"scalar","result":[1700000000.1,"7"]}}"#;
        assert_eq!(parse_response(scalar), Ok(7.0));
    }

    #[test]
    fn empty_many_nan_and_errors_are_no_value() {
        for body in [
            &br#"{"status":"success","data":{"resultType":"vector","result":[]}}"#[..],
            br#"{"status":"success","data":{"resultType":"vector","result":[{"value":[1,"1"]},{"value":[1,"2"]}]}}"#,
            br#"{"status":"success","data":{"resultType":"vector","result":[{"value":[1,"NaN"]}]}}"#,
            br#"{"status":"success","data":{"resultType":"scalar","result":[1,"+Inf"]}}"#,
            br#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#,
            br#"{"status":"error","errorType":"bad_data","error":"parse error"}"#,
            b"<html>",
        ] {
            assert!(parse_response(body).is_err(), "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn only_plain_http_urls() {
        assert!(PrometheusClient::new("http://127.0.0.1:9090", Duration::from_secs(1)).is_ok());
        assert!(PrometheusClient::new("https://prom", Duration::from_secs(1)).is_err());
        assert!(PrometheusClient::new("prom:9090", Duration::from_secs(1)).is_err());
    }
}
