//! A Redis server image built here, with no registry (see
//! [`super::imported`]), for the TCP front's tests and its benchmark, and
//! the little of Redis's protocol they speak.

use std::sync::OnceLock;

/// The image's tag.
pub const REDIS_IMAGE: &str = "replicator-test/redis:7";
/// The port Redis listens on inside the container.
pub const REDIS_PORT: u16 = 6379;

/// Builds the image once per run (kept while its tag exists); its tag.
pub fn redis_image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    let command = ["/usr/bin/redis-server", "--protected-mode", "no", "--save", ""];
    BUILT.get_or_init(|| super::imported::binary_image(REDIS_IMAGE, "/usr/bin/redis-server", &command, "redis-server"));
    REDIS_IMAGE
}

/// Sends one inline Redis command on `stream` and reads one reply line.
pub fn command(stream: &mut std::net::TcpStream, line: &str) -> std::io::Result<String> {
    use std::io::{BufRead, Write};
    stream.write_all(format!("{line}\r\n").as_bytes())?;
    let mut reader = std::io::BufReader::new(stream.try_clone()?);
    let mut reply = String::new();
    reader.read_line(&mut reply)?;
    if reply.starts_with('$') && !reply.starts_with("$-1") {
        let mut value = String::new();
        reader.read_line(&mut value)?;
        return Ok(value.trim_end().to_owned());
    }
    Ok(reply.trim_end().to_owned())
}
