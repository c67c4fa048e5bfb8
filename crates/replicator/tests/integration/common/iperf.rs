//! An iperf3 server image built here, with no registry: Debian's `iperf3`
//! binary and the libraries it links, in a root imported with `docker
//! import`, as `redis.rs` builds Redis's. Used by the TCP front's benchmark
//! (bulk throughput through the front against the member's own address),
//! so it depends on std alone.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The image's tag.
pub const IPERF_IMAGE: &str = "replicator-test/iperf3:3";
/// The port the server listens on inside the container (the image's command).
pub const IPERF_PORT: u16 = 5201;

/// Builds the image once per run (kept while its tag exists); its tag. Its
/// command is `iperf3 -s -p 5201`.
pub fn iperf_image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let exists = Command::new("docker").args(["image", "inspect", IPERF_IMAGE]).output();
        if exists.is_ok_and(|o| o.status.success()) {
            return;
        }
        let binary = Path::new("/usr/bin/iperf3");
        assert!(binary.exists(), "/usr/bin/iperf3 is missing: apt-get install iperf3 (scripts/prepare does)");
        let root = std::env::temp_dir().join(format!("replicator-iperf-root-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let mut files: Vec<PathBuf> = vec![binary.to_owned()];
        let ldd = Command::new("ldd").arg(binary).output().expect("ldd runs");
        for line in String::from_utf8_lossy(&ldd.stdout).lines() {
            // `libiperf.so.0 => /lib/x86_64-linux-gnu/libiperf.so.0 (0x…)` or `/lib64/ld-linux-x86-64.so.2 (0x…)`.
            let path = line.split("=>").last().unwrap_or(line).split_whitespace().next().unwrap_or("");
            if path.starts_with('/') {
                files.push(path.into());
            }
        }
        for file in &files {
            let into = root.join(file.strip_prefix("/").unwrap());
            std::fs::create_dir_all(into.parent().unwrap()).unwrap();
            // Follows symlinks: the library's real bytes under the name the binary asks for.
            std::fs::copy(file, &into).unwrap_or_else(|e| panic!("copy {}: {e}", file.display()));
        }
        // iperf3 keeps each stream's buffer in a temporary file under /tmp.
        std::fs::create_dir_all(root.join("tmp")).unwrap();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/:/bin/false\n").unwrap();
        let mut tar = Command::new("tar");
        tar.arg("-C").arg(&root).args(["-c", "."]).stdout(Stdio::piped());
        let mut tar = tar.spawn().expect("tar runs");
        let command = format!("CMD [\"/usr/bin/iperf3\", \"-s\", \"-p\", \"{IPERF_PORT}\"]");
        let imported = Command::new("docker")
            .args(["import", "--change", &command, "-", IPERF_IMAGE])
            .stdin(tar.stdout.take().unwrap())
            .stdout(Stdio::null())
            .status()
            .expect("docker import runs");
        assert!(tar.wait().unwrap().success() && imported.success(), "building {IPERF_IMAGE} failed");
        let _ = std::fs::remove_dir_all(&root);
    });
    IPERF_IMAGE
}
