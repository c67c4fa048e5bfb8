//! A Redis server image built here, with no registry: Debian's
//! `redis-server` binary and the libraries it links, in a root imported
//! with `docker import`. Used by the TCP front's tests and its benchmark
//! (which includes this file by path), so it depends on std alone.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The image's tag.
pub const REDIS_IMAGE: &str = "replicator-test/redis:7";
/// The port Redis listens on inside the container.
pub const REDIS_PORT: u16 = 6379;

/// Builds the image once per run (kept while its tag exists); its tag.
pub fn redis_image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let exists = Command::new("docker").args(["image", "inspect", REDIS_IMAGE]).output();
        if exists.is_ok_and(|o| o.status.success()) {
            return;
        }
        let server = Path::new("/usr/bin/redis-server");
        assert!(
            server.exists(),
            "/usr/bin/redis-server is missing: apt-get install redis-server (scripts/prepare does)"
        );
        let root = tempfile_dir();
        let mut files = vec![server.to_owned()];
        let ldd = Command::new("ldd").arg(server).output().expect("ldd runs");
        for line in String::from_utf8_lossy(&ldd.stdout).lines() {
            // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)` or `/lib64/ld-linux-x86-64.so.2 (0x…)`.
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
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::create_dir_all(root.join("tmp")).unwrap();
        std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/:/bin/false\n").unwrap();
        let mut tar = Command::new("tar");
        tar.arg("-C").arg(&root).args(["-c", "."]).stdout(Stdio::piped());
        let mut tar = tar.spawn().expect("tar runs");
        let imported = Command::new("docker")
            .args([
                "import",
                "--change",
                "CMD [\"/usr/bin/redis-server\", \"--protected-mode\", \"no\", \"--save\", \"\"]",
            ])
            .args(["-", REDIS_IMAGE])
            .stdin(tar.stdout.take().unwrap())
            .stdout(Stdio::null())
            .status()
            .expect("docker import runs");
        assert!(tar.wait().unwrap().success() && imported.success(), "building {REDIS_IMAGE} failed");
        let _ = std::fs::remove_dir_all(&root);
    });
    REDIS_IMAGE
}

/// A fresh folder for the image's root.
fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("replicator-redis-root-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
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
