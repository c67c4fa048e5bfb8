//! The OpenAPI description is the contract: Schemathesis reads it from a
//! real server (`GET /v1/openapi.json`, over mutual TLS) and calls every
//! operation with what it describes and what it forbids (`--mode all`),
//! checks every answer against it (`--checks all`: statuses, content types,
//! schemas, 405 with `Allow` for undescribed methods, schema-valid input
//! accepted and schema-invalid input refused), and follows the links between
//! operations (the stateful phase). It must report nothing.
//!
//! Schemathesis calls the mutating routes too (replicate, scale, wake,
//! metrics, alerts): the server manages only this test's containers (the
//! scope's selector), and the scope removes them all, replicas included,
//! when the test ends. `scripts/prepare` installs Schemathesis.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::Scope;

/// Longest the run may take: it takes under a minute on two cores.
const DEADLINE: Duration = Duration::from_secs(600);

/// `schemathesis`, or its module when pip left its script off the PATH.
fn schemathesis() -> Command {
    let installed = |mut command: Command| {
        command.arg("--version").stdout(Stdio::null()).stderr(Stdio::null());
        command.status().is_ok_and(|s| s.success())
    };
    if installed(Command::new("schemathesis")) {
        return Command::new("schemathesis");
    }
    let module = || {
        let mut command = Command::new("python3");
        command.args(["-m", "schemathesis.cli"]);
        command
    };
    assert!(
        installed(module()),
        "Schemathesis is not installed: scripts/prepare installs it (pip install 'schemathesis==4.*')"
    );
    module()
}

/// What the run needs beyond its flags: the real names of this test's
/// containers and metric, so that pushes reach the autoscaler instead of
/// ending in 404s, and two operations whose nature the description cannot
/// state.
fn config(dir: &Path, containers: &[&str]) -> std::path::PathBuf {
    let names: Vec<String> = containers.iter().map(|c| format!("{c:?}")).collect();
    let text = format!(
        r#"# The listener refuses a body over 64 KiB with 413 before anything reads
# it, schema-valid or not: a limit in bytes that no JSON schema can state.
# Its 413 is described on every operation; it is a right answer to any body.
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "413", "429", "5xx"]

[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5xx"]

# Every warning fails the run, but two about test data rather than the
# contract: `missing_test_data` and `low_valid_rate` say that an operation's
# valid requests were (mostly) refused, which replications are once earlier
# calls filled a group to its maximum (409: `count` goes to 100, a group
# holds 3 here), or with made-up container ids (404).
[warnings]
display = ["missing_auth", "base_url_mismatch", "validation_mismatch", "missing_deserializer", "unused_openapi_auth", "unsupported_regex", "method_not_allowed", "constants_extraction", "unmatched_filter", "unresolvable_reference", "rate_limited", "dictionary_mismatch", "timeout_units"]
fail-on = true

[dictionaries.containers]
values = [{names}]

[dictionaries.metrics]
values = ["rps"]

# Real containers for the id in paths, half the time: replications that
# reach the engine rather than ending in 404s.
[parameters]
"path.id" = {{ dictionary = "containers", probability = 0.5 }}

# The original tool's `GET /` answers 400 `container id missing` to every
# request: there is no valid one, and 400 is its only answer.
[[operations]]
include-operation-id = "compat_missing_id"
checks.positive_data_acceptance.expected-statuses = ["400"]
warnings = false

# The event stream never ends: read its first event (the snapshot, sent at
# once), check it against the described events, and close it.
[[operations]]
include-operation-id = "events"
max-stream-events = 1

[[operations]]
include-operation-id = "push_metrics"
parameters = {{ "body.container" = {{ dictionary = "containers", probability = 0.5 }}, "body.[*].container" = {{ dictionary = "containers", probability = 0.5 }}, "body.metric" = {{ dictionary = "metrics", probability = 0.5 }}, "body.[*].metric" = {{ dictionary = "metrics", probability = 0.5 }} }}
"#,
        names = names.join(", ")
    );
    let path = dir.join("schemathesis.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn schemathesis_finds_nothing_between_the_server_and_its_description() {
    let scope = Scope::new("contract");
    // Two groups, so that paths have real data: a plain one, and one that
    // autoscales on a pushed metric and may sleep at zero.
    let web = scope.name("web");
    scope.web("web", &["--label", "replicator.max=3"]);
    let auto = scope.name("auto");
    let autoscaled = [
        "--label",
        "replicator.max=3",
        "--label",
        "replicator.min=0",
        "--label",
        "replicator.autoscale.metric=rps",
        "--label",
        "replicator.autoscale.target=10",
    ];
    scope.web("auto", &autoscaled);
    // Busybox's httpd ignores SIGTERM as PID 1: scale-downs stop it at once
    // rather than after 10 s, and wait for no follower Schemathesis opened.
    let server = scope.server(&["--stop-timeout", "1s", "--drain-timeout", "1s"]);
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &[&web, &auto]);
    let certs = &server.certs;
    let mut command = schemathesis();
    command
        .arg("--config-file")
        .arg(&config)
        .args(["run", &format!("{}/v1/openapi.json", server.url())])
        .arg("--request-cert")
        .arg(certs.join("cert.pem"))
        .arg("--request-cert-key")
        .arg(certs.join("key.pem"))
        .arg("--tls-verify")
        .arg(certs.join("ca.pem"))
        .args(["--checks", "all", "--mode", "all", "--phases", "examples,coverage,fuzzing,stateful"])
        .args(["--max-examples", "30", "--seed", "1", "--workers", "1"])
        .args(["--generation-database", "none", "--no-color", "--request-timeout", "30"])
        // Whatever it writes (reports, caches) stays in the temporary folder.
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = command.spawn().expect("schemathesis starts");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let output = format!("{}{}", out.join().unwrap(), err.join().unwrap());
    eprintln!("schemathesis ran for {:.0?}", started.elapsed());
    let Some(status) = status else { panic!("schemathesis did not finish within {DEADLINE:?}:\n{output}") };
    assert!(status.success(), "schemathesis reported something ({status}):\n{output}");
    assert!(output.contains("No issues found"), "schemathesis' summary:\n{output}");
}
