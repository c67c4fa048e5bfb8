//! An iperf3 server image built here, with no registry (see
//! [`super::imported`]), for the TCP front's benchmark (bulk throughput
//! through the front against the member's own address).

use std::sync::OnceLock;

/// The image's tag.
pub const IPERF_IMAGE: &str = "replicator-test/iperf3:3";
/// The port the server listens on inside the container (the image's command).
pub const IPERF_PORT: u16 = 5201;

/// Builds the image once per run (kept while its tag exists); its tag. Its
/// command is `iperf3 -s -p 5201`.
pub fn iperf_image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    let port = IPERF_PORT.to_string();
    let command = ["/usr/bin/iperf3", "-s", "-p", port.as_str()];
    BUILT.get_or_init(|| super::imported::binary_image(IPERF_IMAGE, "/usr/bin/iperf3", &command, "iperf3"));
    IPERF_IMAGE
}
