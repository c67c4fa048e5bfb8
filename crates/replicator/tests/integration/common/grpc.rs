//! A gRPC client at the wire's level (hyper's HTTP/2 client with prior
//! knowledge, as gRPC clients speak it): one call with an empty request
//! message, its messages and its `grpc-status` trailer.

/// What a gRPC call got: its messages' protobuf bytes, its `grpc-status` trailer.
#[derive(Debug, PartialEq)]
pub struct Answer {
    pub messages: Vec<Vec<u8>>,
    pub status: Option<String>,
}

/// One gRPC call with an empty request message, over HTTP/2 with prior
/// knowledge to `127.0.0.1:port` (hyper's client, as gRPC clients speak it),
/// naming `group` to the wake listener when given.
pub async fn call(port: u16, path: &str, group: Option<&str>) -> Result<Answer, String> {
    call_at(&format!("127.0.0.1:{port}"), path, group).await
}

/// The same, to `addr` (`IP:PORT`).
pub async fn call_at(addr: &str, path: &str, group: Option<&str>) -> Result<Answer, String> {
    use http_body_util::BodyExt;
    let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| format!("connect: {e}"))?;
    let io = hyper_util::rt::TokioIo::new(tcp);
    let (mut sender, connection) = hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
        .await
        .map_err(|e| format!("HTTP/2 handshake: {e}"))?;
    tokio::spawn(connection);
    let mut request = http::Request::post(format!("http://{addr}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    if let Some(group) = group {
        request = request.header("x-replicator-group", group);
    }
    let empty_message = bytes::Bytes::from_static(&[0, 0, 0, 0, 0]);
    let request = request.body(http_body_util::Full::new(empty_message)).unwrap();
    let answer = sender.send_request(request).await.map_err(|e| format!("send: {e}"))?;
    if answer.status() != http::StatusCode::OK {
        return Err(format!("HTTP {}", answer.status()));
    }
    let (mut data, mut status) = (Vec::new(), None);
    let mut body = answer.into_body();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("body: {e}"))?;
        if let Some(trailers) = frame.trailers_ref() {
            status = trailers.get("grpc-status").map(|v| v.to_str().unwrap_or_default().to_owned());
        } else if let Some(chunk) = frame.data_ref() {
            data.extend_from_slice(chunk);
        }
    }
    let mut messages = Vec::new();
    let mut rest = data.as_slice();
    while rest.len() >= 5 {
        let length = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
        if rest.len() < 5 + length {
            return Err(format!("a message of {length} bytes cut short: {data:?}"));
        }
        messages.push(rest[5..5 + length].to_vec());
        rest = &rest[5 + length..];
    }
    Ok(Answer { messages, status })
}
