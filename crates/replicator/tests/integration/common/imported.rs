//! Test images of one of the host's binaries, with no registry: the binary
//! (from Debian's package) and every library `ldd` says it links, in a root
//! imported with `docker import`. Redis and iperf3 are made this way.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Imports `binary` and its libraries as `tag` (unless the engine has it
/// already), with `command` as the image's `CMD`.
pub fn binary_image(tag: &str, binary: &str, command: &[&str], package: &str) {
    let exists = Command::new("docker").args(["image", "inspect", tag]).output();
    if exists.is_ok_and(|o| o.status.success()) {
        return;
    }
    let binary = Path::new(binary);
    assert!(binary.exists(), "{} is missing: apt-get install {package} (scripts/prepare does)", binary.display());
    let root = std::env::temp_dir().join(format!(
        "replicator-image-root-{}-{}",
        std::process::id(),
        tag.replace(['/', ':'], "-")
    ));
    let _ = std::fs::remove_dir_all(&root);
    let mut files: Vec<PathBuf> = vec![binary.to_owned()];
    let ldd = Command::new("ldd").arg(binary).output().expect("ldd runs");
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
    // Both keep files under /tmp (iperf3 its streams' buffers).
    std::fs::create_dir_all(root.join("tmp")).unwrap();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/:/bin/false\n").unwrap();
    // nginx looks its user's group up by name.
    std::fs::write(root.join("etc/group"), "root:x:0:\n").unwrap();
    let mut tar = Command::new("tar");
    tar.arg("-C").arg(&root).args(["-c", "."]).stdout(Stdio::piped());
    let mut tar = tar.spawn().expect("tar runs");
    let cmd = format!("CMD {}", serde_json::to_string(command).expect("strings serialize"));
    let imported = Command::new("docker")
        .args(["import", "--change", &cmd, "-", tag])
        .stdin(tar.stdout.take().unwrap())
        .stdout(Stdio::null())
        .status()
        .expect("docker import runs");
    assert!(tar.wait().unwrap().success() && imported.success(), "building {tag} failed");
    let _ = std::fs::remove_dir_all(&root);
}
