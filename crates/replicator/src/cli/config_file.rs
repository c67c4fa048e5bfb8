//! `serve --config FILE`: a TOML file of `serve`'s flags, each under its long
//! name (`max-replicas = 20`, `dashboard-actions = true`, a repeatable flag as
//! an array). A flag on the command line beats its environment variable,
//! which beats the file, which beats the default.
//!
//! clap does the work, in two passes. The first parses the command line and
//! the environment with every flag's own parser but none of the rules between
//! flags (requires, conflicts, required): a flag may need one the file gives.
//! The second parses, with every rule, the file's entries for the flags that
//! neither the command line nor the environment gave, ahead of the command
//! line's own (rebuilt from what clap kept of it, as `--flag=value`), and
//! reads the environment again. Every entry is checked first, alone, by its
//! flag's own parser, so a bad value is an error naming its key and the file;
//! an unknown key is one too.

use std::ffi::{OsStr, OsString};
use std::path::Path;

use clap::builder::Resettable;
use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Args, Command, FromArgMatches};

use super::ServeArgs;

/// The id (and long name) of the flag naming the file.
const CONFIG: &str = "config";

/// `serve`'s flags with its config file applied: what the `serve`
/// subcommand parses into.
#[derive(Debug)]
pub struct Serve(pub Box<ServeArgs>);

impl FromArgMatches for Serve {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let merged = second_pass(serve_command(), matches)?;
        Ok(Self(Box::new(ServeArgs::from_arg_matches(&merged)?)))
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

/// The first pass: `serve`'s flags without the rules between them, which
/// the second pass ([`serve_command`]) applies.
impl Args for Serve {
    fn augment_args(cmd: Command) -> Command {
        ServeArgs::augment_args(cmd).mut_args(without_rules)
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        ServeArgs::augment_args_for_update(cmd).mut_args(without_rules)
    }

    fn group_id() -> Option<clap::Id> {
        ServeArgs::group_id()
    }
}

/// A flag without what ties it to others: required, requires, conflicts.
fn without_rules(arg: Arg) -> Arg {
    arg.required(false)
        .requires(Resettable::Reset)
        .conflicts_with(Resettable::Reset)
        .required_unless_present(Resettable::Reset)
}

/// `serve` alone, with every rule, as the second pass parses it.
fn serve_command() -> Command {
    let mut cmd = ServeArgs::augment_args(Command::new("serve").bin_name("replicator serve").no_binary_name(true));
    cmd.build();
    cmd
}

fn error(kind: ErrorKind, message: String) -> clap::Error {
    clap::Error::raw(kind, format!("{message}\n"))
}

/// The second pass: `matches`, from the first, parsed again by `cmd` (built)
/// with the file named by `--config`, if any, ahead of them.
fn second_pass(mut cmd: Command, matches: &ArgMatches) -> Result<ArgMatches, clap::Error> {
    let mut argv = match matches.get_raw(CONFIG).and_then(|mut values| values.next()) {
        Some(path) => from_file(&cmd, Path::new(path), matches)?,
        None => Vec::new(),
    };
    argv.extend(command_line(&cmd, matches));
    cmd.try_get_matches_from_mut(argv)
}

/// Why a file others may write must not configure `serve` (it can set
/// `allow-all` and `unbound-clients`), as ssh refuses such a config: one
/// that group or others may write, or that neither this user nor root owns.
fn unsafe_to_trust(path: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    let mode = meta.mode() & 0o777;
    if mode & 0o022 != 0 {
        return Some(format!("group or others may write it (mode {mode:04o}): chmod go-w {}", path.display()));
    }
    let me = own_uid();
    (meta.uid() != me && meta.uid() != 0)
        .then(|| format!("it belongs to user {}, neither this user ({me}) nor root", meta.uid()))
}

/// This process's user id, as the file's owner is compared to it.
fn own_uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    // /proc/self belongs to the process's effective user: no libc call needed.
    std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(0)
}

/// The arguments the file at `path` stands for, but those of flags the
/// command line or the environment gave.
fn from_file(cmd: &Command, path: &Path, matches: &ArgMatches) -> Result<Vec<OsString>, clap::Error> {
    if let Some(why) = unsafe_to_trust(path) {
        return Err(error(ErrorKind::Io, format!("refusing the config file {}: {why}", path.display())));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| error(ErrorKind::Io, format!("cannot read the config file {}: {e}", path.display())))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| error(ErrorKind::InvalidValue, format!("the config file {} is not TOML: {e}", path.display())))?;
    let mut argv: Vec<OsString> = Vec::new();
    for (key, value) in &table {
        let Some(arg) = flag(cmd, key) else {
            return Err(error(ErrorKind::UnknownArgument, unknown_key(cmd, key, path)));
        };
        if arg.get_id() == CONFIG {
            return Err(error(
                ErrorKind::ArgumentConflict,
                format!("the config file {} sets `{CONFIG}`: a config file cannot name another", path.display()),
            ));
        }
        let tokens = entry(arg, key, value).map_err(|why| {
            error(ErrorKind::InvalidValue, format!("the config file {}, key `{key}`: {why}", path.display()))
        })?;
        let given = matches!(
            matches.value_source(arg.get_id().as_str()),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        );
        if !given {
            argv.extend(tokens);
        }
    }
    Ok(argv)
}

/// The flag `--key` of `cmd`, not `--help` nor `--version`.
fn flag<'a>(cmd: &'a Command, key: &str) -> Option<&'a Arg> {
    cmd.get_arguments()
        .filter(|a| !matches!(a.get_id().as_str(), "help" | "version"))
        .find(|a| a.get_long() == Some(key))
}

fn unknown_key(cmd: &Command, key: &str, path: &Path) -> String {
    let mut message = format!("the config file {} has an unknown key `{key}`: no flag --{key}", path.display());
    let near = key.trim_start_matches('-').replace('_', "-").to_ascii_lowercase();
    if near != key && flag(cmd, &near).is_some() {
        message.push_str(&format!(" (did you mean `{near}`?)"));
    }
    message
}

/// The arguments one entry of the file stands for, its value checked by the
/// flag's own parser.
fn entry(arg: &Arg, key: &str, value: &toml::Value) -> Result<Vec<OsString>, String> {
    let option = format!("--{key}");
    match arg.get_action() {
        ArgAction::SetTrue | ArgAction::SetFalse => match value {
            toml::Value::Boolean(true) => Ok(vec![option.into()]),
            toml::Value::Boolean(false) => Ok(Vec::new()),
            other => Err(format!("expected true or false, got {}", a(other))),
        },
        ArgAction::Count => match value {
            toml::Value::Integer(n @ 0..=255) => Ok(vec![option.into(); *n as usize]),
            other => Err(format!("expected a count from 0 to 255, got {}", a(other))),
        },
        ArgAction::Set => {
            let value = scalar(arg, value)?;
            check(arg, &option, &value)?;
            Ok(vec![format!("{option}={value}").into()])
        }
        ArgAction::Append => {
            let items = match value {
                toml::Value::Array(items) => items.iter().collect(),
                one => vec![one],
            };
            items
                .into_iter()
                .map(|item| {
                    let value = scalar(arg, item)?;
                    check(arg, &option, &value)?;
                    Ok(format!("{option}={value}").into())
                })
                .collect()
        }
        _ => Err("this flag cannot be set in a file".into()),
    }
}

/// "a string", "an array"...: a TOML value's type, for messages.
fn a(value: &toml::Value) -> String {
    let kind = value.type_str();
    let article = if kind.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" };
    format!("{article} {kind}")
}

/// A single value as the command line would spell it: strings as they are,
/// numbers in decimal, booleans only for a flag whose values are true and false.
fn scalar(arg: &Arg, value: &toml::Value) -> Result<String, String> {
    match value {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(n) => Ok(n.to_string()),
        toml::Value::Float(x) => Ok(x.to_string()),
        toml::Value::Datetime(d) => Ok(d.to_string()),
        toml::Value::Boolean(b) if arg.get_possible_values().iter().any(|p| p.matches("true", false)) => {
            Ok(b.to_string())
        }
        other => Err(format!("expected a string or a number, got {}", a(other))),
    }
}

/// Runs the flag's parser (and possible values) on one value, alone: a
/// command of that flag only, with nothing that names other flags.
fn check(arg: &Arg, option: &str, value: &str) -> Result<(), String> {
    let alone = arg
        .clone()
        .required(false)
        .env(None)
        .default_value(None)
        .requires(Resettable::Reset)
        .conflicts_with(Resettable::Reset)
        .overrides_with(Resettable::Reset)
        .required_unless_present(Resettable::Reset);
    let mut one = Command::new("config").no_binary_name(true).disable_help_flag(true).arg(alone);
    match one.try_get_matches_from_mut([format!("{option}={value}")]) {
        Ok(_) => Ok(()),
        Err(e) => {
            let text = e.render().to_string();
            let first = text.split("\n\n").next().unwrap_or_default();
            let first = first.strip_prefix("error: ").unwrap_or(first);
            Err(first.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" "))
        }
    }
}

/// What the command line gave, as arguments again: `--flag` or
/// `--flag=value` per occurrence, positionals after `--`.
fn command_line(cmd: &Command, matches: &ArgMatches) -> Vec<OsString> {
    let mut argv = Vec::new();
    let mut positionals = Vec::new();
    for arg in cmd.get_arguments() {
        let id = arg.get_id().as_str();
        if matches.value_source(id) != Some(ValueSource::CommandLine) {
            continue;
        }
        let name = match (arg.get_long(), arg.get_short()) {
            (Some(long), _) => format!("--{long}"),
            (None, Some(short)) => format!("-{short}"),
            (None, None) => String::new(),
        };
        for occurrence in matches.get_raw_occurrences(id).into_iter().flatten() {
            let values: Vec<&OsStr> = occurrence.collect();
            if name.is_empty() {
                positionals.extend(values.into_iter().map(OsStr::to_owned));
            } else if !arg.get_action().takes_values() {
                argv.push(name.clone().into());
            } else if let ([value], true) = (values.as_slice(), name.starts_with("--")) {
                let mut one = OsString::from(format!("{name}="));
                one.push(value);
                argv.push(one);
            } else {
                argv.push(name.clone().into());
                argv.extend(values.into_iter().map(OsStr::to_owned));
            }
        }
    }
    if !positionals.is_empty() {
        argv.push("--".into());
        argv.extend(positionals);
    }
    argv
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::super::parse_serve;
    use super::*;

    /// The tests set `REPLICATOR_*` variables: one at a time.
    static ENV: Mutex<()> = Mutex::new(());

    /// The lock on the environment, for the length of a test.
    fn lock() -> std::sync::MutexGuard<'static, ()> {
        ENV.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A config file holding `toml`.
    fn write(toml: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().expect("a temporary file");
        std::fs::write(file.path(), toml).expect("written");
        file
    }

    fn serve(args: &[&str]) -> Result<ServeArgs, clap::Error> {
        parse_serve(args.iter().copied())
    }

    /// Sets an environment variable for the length of `body`.
    fn with_env<T>(name: &str, value: &str, body: impl FnOnce() -> T) -> T {
        std::env::set_var(name, value);
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body));
        std::env::remove_var(name);
        out.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }

    #[test]
    fn the_file_gives_values_the_command_line_does_not() {
        let _env = lock();
        let file = write(
            "listen = \"127.0.0.1:9443\"\nmax-replicas = 20\nselector = \"team=a\"\nstop-timeout = \"3s\"\nlog-format = \"json\"\n",
        );
        let args = serve(&["--config", file.path().to_str().unwrap()]).expect("parsed");
        assert_eq!(args.listen, "127.0.0.1:9443".parse().unwrap());
        assert_eq!(args.max_replicas, 20);
        assert!(args.selector.is_some());
        assert_eq!(args.stop_timeout, std::time::Duration::from_secs(3));
        assert_eq!(args.log_format, super::super::serve::LogFormat::Json);
        // What the file leaves out keeps its default.
        assert_eq!(args.max_containers, 500);
        assert_eq!(args.config.as_deref(), Some(file.path()));
    }

    #[test]
    fn the_file_is_read_from_the_environment_variable_too() {
        let _env = lock();
        let file = write("max-replicas = 7\n");
        let args = with_env("REPLICATOR_CONFIG", file.path().to_str().unwrap(), || serve(&[])).expect("parsed");
        assert_eq!(args.max_replicas, 7);
    }

    #[test]
    fn a_file_others_may_write_is_refused_by_name() {
        use std::os::unix::fs::PermissionsExt;
        let _env = lock();
        let file = write("allow-all = true\n");
        std::fs::set_permissions(file.path(), std::fs::Permissions::from_mode(0o666)).unwrap();
        let path = file.path().to_string_lossy().into_owned();
        let refused = serve(&["--config", &path]).unwrap_err().to_string();
        assert!(refused.contains("refusing the config file") && refused.contains("mode 0666"), "{refused}");
        std::fs::set_permissions(file.path(), std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(serve(&["--config", &path]).unwrap().allow_all, "readable by all is fine");
    }

    #[test]
    fn a_boolean_flag_from_the_file() {
        let _env = lock();
        let file = write("dashboard-actions = true\ndry-run = false\n");
        let args = serve(&["--config", file.path().to_str().unwrap()]).expect("parsed");
        assert!(args.dashboard_actions);
        assert!(!args.dry_run);
        assert!(!args.allow_all);
    }

    #[test]
    fn the_environment_beats_the_file() {
        let _env = lock();
        let file = write("max-replicas = 20\nmax-containers = 30\n");
        let args = with_env("REPLICATOR_MAX_REPLICAS", "5", || serve(&["--config", file.path().to_str().unwrap()]))
            .expect("parsed");
        assert_eq!(args.max_replicas, 5);
        assert_eq!(args.max_containers, 30);
    }

    #[test]
    fn a_flag_beats_the_environment_and_the_file() {
        let _env = lock();
        let file = write("max-replicas = 20\ndashboard-actions = false\nstop-timeout = \"3s\"\n");
        let args = with_env("REPLICATOR_MAX_REPLICAS", "5", || {
            serve(&[
                "--max-replicas",
                "9",
                "--dashboard-actions",
                "--config",
                file.path().to_str().unwrap(),
                "--selector=team=b",
            ])
        })
        .expect("parsed");
        assert_eq!(args.max_replicas, 9);
        assert!(args.dashboard_actions);
        assert_eq!(args.stop_timeout, std::time::Duration::from_secs(3));
        assert!(args.selector.is_some());
    }

    /// A value for every flag of serve that has no default of its own.
    fn sample(flag: &str) -> Option<&'static str> {
        Some(match flag {
            "certs" => "\"/etc/replicator/certs\"",
            "tls-cert" => "\"/etc/replicator/server-cert.pem\"",
            "tls-key" => "\"/etc/replicator/server-key.pem\"",
            "client-ca" => "\"/etc/replicator/ca.pem\"",
            "crl" => "\"/etc/replicator/crl.pem\"",
            "swarm-ca" => "\"/etc/replicator/swarm-ca.pem\"",
            "docker-host" => "\"unix:///var/run/docker.sock\"",
            "selector" => "\"team=a\"",
            "prometheus-url" => "\"http://127.0.0.1:9090\"",
            "metric-ttl" => "\"30s\"",
            "wake-listen" => "\"127.0.0.1:8081\"",
            "front-ports" => "\"7000-7999\"",
            "rate-limit" => "\"10/s\"",
            "max-connections" => "100",
            "max-connection-age" => "\"1h\"",
            "dashboard-actions-from" => "\"172.17.0.1/32\"",
            "control-socket" => "\"/run/replicator/control.sock\"",
            "lease" => "\"/run/replicator/lease\"",
            "peer-certs" => "\"/etc/replicator/peer\"",
            "peer-server-name" => "\"replicator\"",
            "wake-page" => "\"/etc/replicator/waiting.html\"",
            "advertise" => "\"https://replicator-1:8443\"",
            _ => return None,
        })
    }

    /// A file naming every flag of serve but those in `left_out`: its
    /// default (as the file would write it), a sample, or `true` for a switch.
    fn every_flag_but(left_out: &[&str]) -> String {
        let mut text = String::new();
        for arg in serve_command().get_arguments() {
            let Some(flag) = arg.get_long() else { continue };
            if ["config", "help", "version"].contains(&flag) || left_out.contains(&flag) {
                continue;
            }
            let value = match (arg.get_num_args().is_some_and(|n| n.takes_values()), arg.get_default_values().first()) {
                (false, _) => "true".to_owned(),
                (true, Some(default)) => format!("{:?}", default.to_string_lossy()),
                (true, None) => sample(flag).unwrap_or_else(|| panic!("give --{flag} a sample value")).to_owned(),
            };
            text.push_str(&format!("{flag} = {value}\n"));
        }
        text
    }

    #[test]
    fn a_file_with_every_flag_of_serve_is_accepted() {
        let _env = lock();
        // --certs and the explicit TLS files exclude each other: each file names one side.
        for left_out in [&["certs"][..], &["tls-cert", "tls-key", "client-ca"][..]] {
            let file = write(&every_flag_but(left_out));
            let parsed = serve(&["--config", file.path().to_str().unwrap()]);
            let args = parsed.unwrap_or_else(|e| panic!("{e}\n{}", every_flag_but(left_out)));
            assert!(args.dashboard_actions && args.allow_all && args.front_ports.is_some());
        }
    }

    #[test]
    fn an_unknown_key_is_an_error_naming_it_and_the_file() {
        let _env = lock();
        let file = write("listen = \"0.0.0.0:8443\"\nmax_replicas = 3\n");
        let path = file.path().to_str().unwrap();
        let e = serve(&["--config", path]).expect_err("refused").to_string();
        assert!(e.contains("`max_replicas`"), "{e}");
        assert!(e.contains(path), "{e}");
        assert!(e.contains("did you mean `max-replicas`"), "{e}");
        let file = write("[serve]\nlisten = \"0.0.0.0:1\"\n");
        let e = serve(&["--config", file.path().to_str().unwrap()]).expect_err("refused").to_string();
        assert!(e.contains("unknown key `serve`"), "{e}");
    }

    #[test]
    fn a_value_of_the_wrong_type_is_an_error_naming_its_key() {
        for (toml, key, why) in [
            ("dashboard-actions = \"yes\"\n", "dashboard-actions", "expected true or false, got a string"),
            ("max-replicas = [1, 2]\n", "max-replicas", "got an array"),
            ("max-replicas = \"many\"\n", "max-replicas", "invalid value 'many'"),
            ("max-replicas = 5000\n", "max-replicas", "5000"),
            ("listen = true\n", "listen", "got a boolean"),
            ("log-format = \"xml\"\n", "log-format", "possible values: text, json"),
            ("stop-timeout = \"soon\"\n", "stop-timeout", "invalid value 'soon'"),
        ] {
            let _env = lock();
            let file = write(toml);
            let path = file.path().to_str().unwrap();
            let e = serve(&["--config", path]).expect_err(toml).to_string();
            assert!(e.contains(&format!("key `{key}`")), "{toml}: {e}");
            assert!(e.contains(path), "{toml}: {e}");
            assert!(e.contains(why), "{toml}: {e}");
        }
    }

    #[test]
    fn a_file_that_is_missing_or_not_toml_is_an_error_naming_it() {
        let e = serve(&["--config", "/nonexistent/replicator.toml"]).expect_err("refused").to_string();
        assert!(e.contains("/nonexistent/replicator.toml"), "{e}");
        let _env = lock();
        let file = write("listen = \n");
        let e = serve(&["--config", file.path().to_str().unwrap()]).expect_err("refused").to_string();
        assert!(e.contains("not TOML"), "{e}");
    }

    #[test]
    fn the_file_cannot_name_another() {
        let _env = lock();
        let file = write("config = \"/etc/other.toml\"\n");
        let e = serve(&["--config", file.path().to_str().unwrap()]).expect_err("refused").to_string();
        assert!(e.contains("cannot name another"), "{e}");
    }

    #[test]
    fn without_a_file_nothing_changes() {
        let _env = lock();
        let args = serve(&["--max-replicas", "3"]).expect("parsed");
        assert_eq!(args.max_replicas, 3);
        assert!(args.config.is_none());
        // The rules between flags hold without a file too.
        let e = serve(&["--tls-cert", "/c/server.pem"]).expect_err("refused").to_string();
        assert!(e.contains("--tls-key"), "{e}");
        let e = serve(&["--certs", "/c", "--client-ca", "/c/ca.pem"]).expect_err("refused").to_string();
        assert!(e.contains("cannot be used with"), "{e}");
        let e = serve(&["--max-replicas", "0"]).expect_err("refused").to_string();
        assert!(e.contains("--max-replicas"), "{e}");
    }

    #[test]
    fn flags_related_across_the_file_and_the_command_line_are_checked_together() {
        let _env = lock();
        let file = write("tls-cert = \"/c/server.pem\"\n");
        let path = file.path().to_str().unwrap();
        let args = serve(&["--config", path, "--tls-key", "/c/key.pem", "--client-ca", "/c/ca.pem"]).expect("parsed");
        assert_eq!(args.tls_cert.as_deref(), Some(Path::new("/c/server.pem")));
        // --tls-cert alone still needs the other two.
        let e = serve(&["--config", path]).expect_err("refused").to_string();
        assert!(e.contains("--tls-key"), "{e}");
        let file = write("certs = \"/c\"\n");
        let e = serve(&["--config", file.path().to_str().unwrap(), "--tls-cert", "/c/server.pem"])
            .expect_err("refused")
            .to_string();
        assert!(e.contains("cannot be used with"), "{e}");
    }
}
