//! The balancer's files, shared by both ways `replicator upstreams`
//! follows groups (the engine's events, or a replicator server's event
//! stream): render the members of every followed group, write each file
//! atomically when its text changed, run the reload once for all of them,
//! and remember the texts only once the balancer has them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use tracing::{info, warn};

use crate::rules::backends::{render, upstream_name, Backend, Format};

/// What `{group}` in `--out` stands for: one file per group.
pub(super) const GROUP_PLACEHOLDER: &str = "{group}";

/// The texts the balancer has, by file.
#[derive(Default)]
pub(super) struct Written {
    files: BTreeMap<PathBuf, String>,
    /// Files looked at already: only a file never seen is read from disk, so
    /// one whose reload failed is written (and reloaded) again.
    seen: std::collections::BTreeSet<PathBuf>,
}

impl Written {
    pub(super) fn new() -> Self {
        Self::default()
    }
}

/// Which groups are followed, and where and how their files are written.
pub(super) struct Output {
    /// Group names or patterns (`*` any run of characters, `?` one).
    pub(super) groups: Vec<String>,
    pub(super) format: Format,
    /// One file for every group, or a path with `{group}`: one file each.
    pub(super) out: PathBuf,
    pub(super) port: u16,
    pub(super) network: Option<String>,
    pub(super) reload: Option<String>,
    pub(super) certs: PathBuf,
    pub(super) follower: String,
    pub(super) once: bool,
    pub(super) wake: Option<std::net::SocketAddr>,
    /// Changes closer together than this are written, and reloaded, together.
    pub(super) debounce: std::time::Duration,
}

/// Whether `name` matches `pattern` (`*`: any run of characters, `?`: one).
pub(super) fn matches(pattern: &str, name: &str) -> bool {
    fn go(p: &[u8], n: &[u8]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], n) || (!n.is_empty() && go(p, &n[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &n[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), name.as_bytes())
}

impl Output {
    /// Whether the group is one this follower writes.
    pub(super) fn follows(&self, group: &str) -> bool {
        self.groups.iter().any(|p| matches(p, group))
    }

    /// Groups named exactly (no pattern): they have a file even before they exist.
    fn named(&self) -> impl Iterator<Item = &str> {
        self.groups.iter().map(String::as_str).filter(|p| !p.contains(['*', '?']))
    }

    /// The text of every file, from each followed group's ready members
    /// (the waker for a group with none, when there is one).
    fn files(&self, members: &BTreeMap<String, Vec<Backend>>) -> BTreeMap<PathBuf, String> {
        let mut groups: BTreeMap<&str, Vec<Backend>> =
            members.iter().filter(|(g, _)| self.follows(g)).map(|(g, b)| (g.as_str(), b.clone())).collect();
        for name in self.named() {
            groups.entry(name).or_default();
        }
        for servers in groups.values_mut().filter(|s| s.is_empty()) {
            if let Some(address) = self.wake {
                servers.push(Backend {
                    id: String::new(),
                    name: "replicator's waker: the group has no ready member".into(),
                    address: address.to_string(),
                });
            }
        }
        let template = self.out.to_string_lossy();
        if template.contains(GROUP_PLACEHOLDER) {
            let path = |g: &str| PathBuf::from(template.replace(GROUP_PLACEHOLDER, &upstream_name(g)));
            return groups.iter().map(|(g, servers)| (path(g), render(self.format, g, servers))).collect();
        }
        let text = if self.format != Format::Json || groups.len() == 1 {
            groups.iter().map(|(g, servers)| render(self.format, g, servers)).collect::<String>()
        } else {
            let all: Vec<serde_json::Value> =
                groups.iter().map(|(g, servers)| serde_json::json!({ "group": g, "servers": servers })).collect();
            let doc = serde_json::json!({ "groups": all });
            format!("{}\n", serde_json::to_string_pretty(&doc).expect("plain data serializes"))
        };
        BTreeMap::from([(self.out.clone(), text)])
    }

    /// Writes the files whose text changed, then reloads once; true once the
    /// balancer has what `members` says (a failed write or reload is
    /// retried at the next change).
    pub(super) async fn apply(&self, members: &BTreeMap<String, Vec<Backend>>, written: &mut Written) -> bool {
        let mut changed = Vec::new();
        for (path, text) in self.files(members) {
            if written.seen.insert(path.clone()) {
                // What a previous run left: not rewritten (nor reloaded) if it is right.
                if let Ok(current) = tokio::fs::read_to_string(&path).await {
                    written.files.insert(path.clone(), current);
                }
            }
            if written.files.get(&path) == Some(&text) {
                continue;
            }
            if let Err(e) = write_atomically(&path, &text).await {
                warn!(error = %format!("{e:#}"), file = %path.display(), "cannot write the upstreams file");
                return false;
            }
            changed.push((path, text));
        }
        if changed.is_empty() {
            return true;
        }
        let files: Vec<String> = changed.iter().map(|(p, _)| p.display().to_string()).collect();
        info!(files = %files.join(" "), "upstreams written");
        if !self.reload().await {
            for (path, _) in &changed {
                written.files.remove(path);
            }
            return false;
        }
        written.files.extend(changed);
        true
    }

    /// Runs the reload command; whether the balancer has the new files.
    async fn reload(&self) -> bool {
        let Some(command) = &self.reload else { return true };
        match tokio::process::Command::new("sh").arg("-c").arg(command).status().await {
            Ok(status) if status.success() => {
                info!(command, "reloaded");
                true
            }
            Ok(status) => {
                warn!(command, %status, "reload command failed; will retry");
                false
            }
            Err(e) => {
                warn!(command, error = %e, "reload command could not run; will retry");
                false
            }
        }
    }
}

/// A name no other follower has: each balancer must acknowledge for itself.
pub(super) fn unique_follower_name() -> String {
    let nanos = crate::base::clock::unix_nanos_now();
    format!("upstreams-{}-{:x}", std::process::id(), nanos & 0xffff_ffff_ffff)
}

/// Write beside, then rename: a reader never sees half a file.
/// The temporary file is created exclusively under a name nobody can
/// guess: nothing already there (a symlink planted to redirect the write)
/// is followed or overwritten.
async fn write_atomically(path: &Path, text: &str) -> anyhow::Result<()> {
    use tokio::io::AsyncWriteExt;
    let name = path.file_name().context("the output path has no file name")?.to_string_lossy();
    let unique = format!("{:x}{:x}", std::process::id(), crate::base::clock::unix_nanos_now());
    let tmp = path.with_file_name(format!(".{name}.{unique}.tmp"));
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&tmp)
        .await
        .with_context(|| format!("cannot create {}", tmp.display()))?;
    let written = async {
        file.write_all(text.as_bytes()).await?;
        file.flush().await
    };
    if let Err(e) = written.await {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(e).with_context(|| format!("cannot write {}", tmp.display()));
    }
    tokio::fs::rename(&tmp, path).await.with_context(|| format!("cannot replace {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(groups: &[&str], out: &str, format: Format) -> Output {
        Output {
            groups: groups.iter().map(|g| g.to_string()).collect(),
            format,
            out: out.into(),
            port: 80,
            network: None,
            reload: None,
            certs: "c".into(),
            follower: "f".into(),
            once: false,
            wake: Some("127.0.0.1:8081".parse().unwrap()),
            debounce: std::time::Duration::ZERO,
        }
    }

    fn member(address: &str) -> Vec<Backend> {
        vec![Backend { id: "i".into(), name: "n".into(), address: address.into() }]
    }

    #[test]
    fn patterns_match_whole_names() {
        assert!(matches("web-*", "web-1") && matches("*", "anything") && matches("a?c", "abc"));
        assert!(!matches("web-*", "api") && !matches("a?c", "ac") && !matches("web", "web-1"));
    }

    #[test]
    fn a_template_writes_one_file_per_followed_group() {
        let members = BTreeMap::from([("web-1".to_owned(), member("10.0.0.1:80")), ("api".to_owned(), vec![])]);
        let files = output(&["web-*", "db"], "/x/{group}.conf", Format::Nginx).files(&members);
        let paths: Vec<String> = files.keys().map(|p| p.display().to_string()).collect();
        assert_eq!(paths, ["/x/db.conf", "/x/web-1.conf"], "followed groups only; a named one even before it exists");
        assert!(files[&PathBuf::from("/x/web-1.conf")].contains("server 10.0.0.1:80"));
        assert!(files[&PathBuf::from("/x/db.conf")].contains("127.0.0.1:8081"), "no member: the waker");
    }

    #[test]
    fn one_file_holds_every_block_and_json_a_list_of_groups() {
        let members =
            BTreeMap::from([("a".to_owned(), member("10.0.0.1:80")), ("b".to_owned(), member("10.0.0.2:80"))]);
        let nginx = output(&["*"], "/x/all.conf", Format::Nginx).files(&members);
        let text = &nginx[&PathBuf::from("/x/all.conf")];
        assert!(text.contains("upstream a {") && text.contains("upstream b {"));
        let json = output(&["*"], "/x/all.json", Format::Json).files(&members);
        let doc: serde_json::Value = serde_json::from_str(&json[&PathBuf::from("/x/all.json")]).unwrap();
        assert_eq!(doc["groups"].as_array().unwrap().len(), 2);
        let one = output(&["a"], "/x/a.json", Format::Json).files(&members);
        let doc: serde_json::Value = serde_json::from_str(&one[&PathBuf::from("/x/a.json")]).unwrap();
        assert_eq!(doc["group"], "a", "one group: the document it always was");
    }
}
