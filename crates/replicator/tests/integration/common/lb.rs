//! Real programs in front of a group, for the serving tests: nginx (Debian's)
//! fed by `replicator upstreams`, a reload command that returns only once
//! nginx no longer routes by the old file, and wrk (Debian's) as the load.
//! Every process started here is killed on drop.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{eventually, write_in, Owned, Server, BIN};

/// An nginx master (one worker) on 127.0.0.1:port proxying `/` to the
/// upstream `upstream` that `upstream_file` defines, with the settings that
/// matter for losing nothing: a connect error or timeout is retried on
/// another member (for any method), and a vanished address costs at most 1 s.
/// Its access log says, for each request, which member(s) it went to.
pub struct Nginx {
    pub config: PathBuf,
    pub dir: PathBuf,
    pub port: u16,
}

impl Nginx {
    pub fn start(dir: &Path, port: u16, upstream_file: &Path, upstream: &str) -> Self {
        Self::start_with(dir, port, upstream_file, upstream, "")
    }

    /// The same, with `directives` added to the proxying location.
    pub fn start_with(dir: &Path, port: u16, upstream_file: &Path, upstream: &str, directives: &str) -> Self {
        Self::start_with_locations(dir, port, upstream_file, upstream, directives, "")
    }

    /// The same, with more `locations` in the server block.
    pub fn start_with_locations(
        dir: &Path,
        port: u16,
        upstream_file: &Path,
        upstream: &str,
        directives: &str,
        locations: &str,
    ) -> Self {
        let http = format!(
            "  log_format members '$msec $status $request_method $upstream_addr';\n  \
             access_log {dir}/access.log members;\n  include {upstreams};\n  \
             server {{\n    listen 127.0.0.1:{port};\n    location / {{\n      proxy_pass http://{upstream};\n      \
             proxy_next_upstream error timeout;\n      proxy_connect_timeout 1s;\n      {directives}\n    }}\n    {locations}\n  }}\n",
            dir = dir.display(),
            upstreams = upstream_file.display(),
        );
        Self::launch(dir, port, &http)
    }

    /// nginx with one `server` block of the caller's (`server`, which
    /// listens on `port` itself): for what the proxying location above
    /// cannot say (`grpc_pass`).
    pub fn start_server(dir: &Path, port: u16, server: &str) -> Self {
        let http = format!("  access_log {}/access.log;\n  server {{\n{server}\n  }}\n", dir.display());
        Self::launch(dir, port, &http)
    }

    /// nginx run from a configuration of its own in `dir`, its `http` block's contents given.
    fn launch(dir: &Path, port: u16, http: &str) -> Self {
        let config = write_in(
            dir,
            "nginx.conf",
            &format!(
                "worker_processes 1;\npid {dir}/nginx.pid;\nerror_log {dir}/error.log;\n\
                 events {{ worker_connections 1024; }}\nhttp {{\n{http}}}\n",
                dir = dir.display(),
            ),
        );
        let status =
            Command::new("nginx").arg("-c").arg(&config).status().expect("nginx runs (apt-get install nginx-light)");
        let log = || std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
        assert!(status.success(), "nginx did not start: {}", log());
        Self { config, dir: dir.to_owned(), port }
    }

    /// A reload command for the follower that answers only once the old
    /// worker has exited: `nginx -s reload` merely signals the master, and
    /// until the master has started workers with the new file and the old
    /// one has finished the requests it holds, a member just taken out of
    /// the file can still be sent requests. Acknowledging before that would
    /// let replicator stop a member nginx still uses. `then` runs last.
    pub fn synchronous_reload(&self, then: &str) -> String {
        let script = write_in(
            &self.dir,
            "reload.sh",
            &format!(
                "#!/bin/sh\nset -e\nmaster=$(cat {dir}/nginx.pid)\nold=$(pgrep -P \"$master\" || true)\n\
                 nginx -c {config} -s reload\n\
                 for pid in $old; do\n  n=0\n  while kill -0 \"$pid\" 2>/dev/null; do\n    \
                 n=$((n+1)); [ $n -lt 500 ] || {{ echo \"old nginx worker $pid still runs\" >&2; exit 1; }}\n    \
                 sleep 0.02\n  done\ndone\n{then}\n",
                dir = self.dir.display(),
                config = self.config.display(),
            ),
        );
        format!("sh {}", script.display())
    }

    /// The access log: `msec status method upstream_addr` per line.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("access.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = Command::new("nginx").arg("-c").arg(&self.config).args(["-s", "stop"]).stderr(Stdio::null()).status();
    }
}

/// The `server` addresses of an nginx upstream file (not the `down` placeholder).
pub fn upstream_servers(file: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    text.lines()
        .map(str::trim)
        .filter(|l| l.starts_with("server ") && !l.contains(" down;"))
        .filter_map(|l| l["server ".len()..].split(';').next().map(str::to_owned))
        .collect()
}

/// The spec of a `replicator upstreams` run writing `group`'s members to
/// `out`: [`Upstreams::new`], what differs from it, then `once` or `follow`.
pub struct Upstreams<'a> {
    group: &'a str,
    out: &'a Path,
    /// `--format` (`None`: the command's default, nginx).
    format: Option<&'a str>,
    /// The members' port 8080 on this network (`--port`, `--network`).
    network: Option<&'a str>,
    /// Follow this server, reached at this URL, as follower `lb-1` (instead of the engine).
    server: Option<(&'a Server, String)>,
    /// `--reload`: the command run after each write.
    reload: Option<&'a str>,
    /// Anything else (`--wake ADDR`, `--resync 1s`...).
    extra: &'a [&'a str],
}

impl<'a> Upstreams<'a> {
    /// `group`, from the engine, to `out`, in the default format, reloading nothing.
    pub fn new(group: &'a str, out: &'a Path) -> Self {
        Self { group, out, format: None, network: None, server: None, reload: None, extra: &[] }
    }

    /// An nginx file of `group`'s members on `network` that follows `server`
    /// (at its own URL) and reloads nginx with `reload`.
    pub fn nginx_following(
        server: &'a Server,
        group: &'a str,
        out: &'a Path,
        network: &'a str,
        reload: &'a str,
    ) -> Self {
        Self::new(group, out).format("nginx").network(network).server(server, server.url()).reload(reload)
    }

    pub fn format(self, format: &'a str) -> Self {
        Self { format: Some(format), ..self }
    }

    /// The members' port 8080 on `network`.
    pub fn network(self, network: &'a str) -> Self {
        Self { network: Some(network), ..self }
    }

    /// Follows `server` through `url` (the server's own, or a proxy's in front of it).
    pub fn server(self, server: &'a Server, url: String) -> Self {
        Self { server: Some((server, url)), ..self }
    }

    pub fn reload(self, command: &'a str) -> Self {
        Self { reload: Some(command), ..self }
    }

    pub fn extra(self, args: &'a [&'a str]) -> Self {
        Self { extra: args, ..self }
    }

    fn command(&self) -> Command {
        let mut command = Command::new(BIN);
        command.args(["upstreams", "--group", self.group]);
        if let Some(format) = self.format {
            command.args(["--format", format]);
        }
        command.arg("--out").arg(self.out);
        if let Some(network) = self.network {
            command.args(["--port", "8080", "--network", network]);
        }
        if let Some((server, url)) = &self.server {
            command.args(["--server", url, "--certs"]).arg(&server.certs).args(["--follower", "lb-1"]);
        }
        if let Some(reload) = self.reload {
            command.args(["--reload", reload]);
        }
        command.args(self.extra).env("REPLICATOR_LOG", "info");
        command
    }

    /// `--once`: writes the file (a balancer needs one to start) and returns.
    pub fn once(&self) {
        let done = self.command().arg("--once").output().unwrap();
        assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    }

    /// Follows in the background, logging to `follower.log` beside `out`; killed on drop.
    pub fn follow(&self) -> Owned {
        let log = std::fs::File::create(self.out.with_file_name("follower.log")).unwrap();
        Owned(self.command().stdout(Stdio::null()).stderr(log).spawn().expect("replicator upstreams starts"))
    }
}

/// A wrk run in the background; `finish` interrupts it (wrk then prints its
/// summary, as at the end of its `-d`) and parses what it counted.
pub struct Wrk {
    child: Owned,
    out: PathBuf,
}

/// What wrk counted.
#[derive(Debug)]
pub struct WrkSummary {
    pub requests: u64,
    /// The `Non-2xx or 3xx responses` and `Socket errors` lines, when present.
    pub failures: Vec<String>,
    pub text: String,
}

impl Wrk {
    /// `wrk -t1 -c{connections} -d{upper_bound} -H 'Connection: close' [-s script] url`:
    /// each request on its own connection, so that a reload closing idle
    /// keep-alive connections is not counted as an error.
    pub fn start(dir: &Path, label: &str, url: &str, connections: u32, script: Option<&str>) -> Self {
        let out = dir.join(format!("wrk-{label}.out"));
        let mut command = Command::new("wrk");
        command.args(["-t1", &format!("-c{connections}"), "-d120s", "--timeout", "5s", "-H", "Connection: close"]);
        if let Some(lua) = script {
            command.arg("-s").arg(write_in(dir, &format!("{label}.lua"), lua));
        }
        let child = command
            .arg(url)
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("wrk runs (apt-get install wrk; scripts/prepare does)");
        Self { child: Owned(child), out }
    }

    /// Still generating load (its `-d` has not run out).
    pub fn running(&mut self) -> bool {
        self.child.0.try_wait().unwrap().is_none()
    }

    pub fn finish(mut self) -> WrkSummary {
        assert!(self.running(), "wrk ended before it was stopped: the load did not cover the whole test");
        let status = Command::new("kill").args(["-INT", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
        let child = &mut self.child.0;
        let exited = eventually("wrk to print its summary", Duration::from_secs(15), || child.try_wait().unwrap());
        assert!(exited.success(), "wrk failed: {exited}");
        let text = std::fs::read_to_string(&self.out).unwrap();
        let requests = text
            .lines()
            .find_map(|l| l.trim().split_once(" requests in ").and_then(|(n, _)| n.parse::<u64>().ok()))
            .unwrap_or_else(|| panic!("no request count in wrk's summary:\n{text}"));
        let failures = text
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("Non-2xx or 3xx responses") || l.starts_with("Socket errors"))
            .map(str::to_owned)
            .collect();
        WrkSummary { requests, failures, text }
    }
}

/// The guide's nginx snippet (docs/guide/scale-to-zero.md) for `group`, the wake listener at `wake`:
/// the group's header, no client-supplied X-Replicator-*, and the mirror
/// that tells replicator of each request.
pub fn readme_snippet(group: &str, wake: &str) -> (String, String) {
    let directives = format!(
        "proxy_set_header X-Replicator-Group {group}; proxy_set_header X-Replicator-Port \"\"; \
         proxy_set_header X-Replicator-Network \"\"; proxy_set_header X-Replicator-Activity \"\"; \
         proxy_read_timeout 90s; \
         mirror /_replicator_activity; mirror_request_body off;"
    );
    let locations = format!(
        "location = /_replicator_activity {{ internal; proxy_pass http://{wake}$request_uri; \
         proxy_pass_request_body off; proxy_set_header Content-Length \"\"; \
         proxy_set_header X-Replicator-Activity {group}; proxy_set_header X-Replicator-Group \"\"; }}"
    );
    (directives, locations)
}
