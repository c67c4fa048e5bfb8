//! The command line: `serve`, `certs init`, and their wiring. Every flag
//! also reads a `REPLICATOR_*` environment variable; flags win.

mod agent;
mod balancer_file;
mod certs;
mod client;
mod config_file;
mod connection;
mod docs;
mod follow_server;
mod healthcheck;
pub mod plugin;
pub mod remote;
mod serve;
mod upstreams;
pub mod usage_report;
mod user_config;
mod watch;

use clap::{Parser, Subcommand};

use serve::{init_logging, LogFormat};
pub use serve::{prepare, ServeArgs};

/// The command line: one subcommand.
#[derive(Debug, Parser)]
#[command(name = "replicator", version, about = "Replicates Docker containers on demand, over mutual TLS")]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the HTTPS API (mutual TLS) against the local or configured engine.
    Serve(config_file::Serve),
    /// Certificates for development and for the docker CLI layout.
    #[command(subcommand)]
    Certs(certs::CertsCommand),
    /// List the groups (client of a running replicator).
    Groups(client::GroupsArgs),
    /// Scale a group to N members, original included (client).
    Scale(client::ScaleArgs),
    /// Replicate a container (client).
    Replicate(client::ReplicateArgs),
    /// Wake a group sleeping at zero (client).
    Wake(client::WakeArgs),
    /// Follow what replicator does: member changes and decisions (client).
    Events(watch::EventsArgs),
    /// One group in detail: members with readiness, standbys, schedule, last decisions (client).
    Group(watch::GroupArgs),
    /// Install this binary as the docker CLI plugin `docker replicator`.
    InstallPlugin(plugin::InstallPluginArgs),
    /// Report this Swarm node's task CPU and memory to the manager's replicator.
    Agent(agent::AgentArgs),
    /// Keep a load balancer's upstream list (nginx or JSON) in step with a group.
    Upstreams(upstreams::UpstreamsArgs),
    /// Exit 0 when a replicator's admin listener says it is healthy (the image's HEALTHCHECK).
    Healthcheck(healthcheck::HealthcheckArgs),
    /// Print the completion script for a shell (bash, zsh, fish, elvish, powershell).
    Completions(docs::CompletionsArgs),
    /// Print the man page replicator(1), or write every command's page with --out.
    Man(docs::ManArgs),
    /// Install the man pages and the bash, zsh and fish completions under a prefix.
    InstallDocs(docs::InstallDocsArgs),
}

/// `replicator serve ARGS...` parsed as the command line would be (for
/// callers that run the server in-process, such as the integration tests).
pub fn parse_serve<'a>(args: impl IntoIterator<Item = &'a str>) -> Result<ServeArgs, clap::Error> {
    let argv = ["replicator", "serve"].into_iter().chain(args);
    match Cli::try_parse_from(argv)?.command {
        Command::Serve(args) => Ok(*args.0),
        _ => unreachable!("the argument list starts with serve"),
    }
}

/// Runs the parsed command line; the exit code is the caller's business.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve::run(*args.0),
        Command::Certs(cmd) => certs::run(cmd),
        Command::Groups(args) => client::groups(args),
        Command::Scale(args) => client::scale(args),
        Command::Replicate(args) => client::replicate(args),
        Command::Wake(args) => client::wake(args),
        Command::Events(args) => watch::events(args),
        Command::Group(args) => watch::group(args),
        Command::InstallPlugin(args) => plugin::install(args),
        Command::Upstreams(args) => upstreams::run(args),
        Command::Agent(args) => agent::run(args),
        Command::Healthcheck(args) => healthcheck::run(args),
        Command::Completions(args) => docs::completions(args),
        Command::Man(args) => docs::man(args),
        Command::InstallDocs(args) => docs::install_docs(args),
    }
}
