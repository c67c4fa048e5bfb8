use clap::{CommandFactory, FromArgMatches};
use replicator::cli::plugin::{invocation, metadata, Invocation};
use replicator::cli::Cli;

fn main() -> std::process::ExitCode {
    // The same binary runs as `replicator` and as the docker CLI plugin `docker-replicator`.
    let (argv, bin_name) = match invocation(std::env::args_os().collect()) {
        Invocation::Metadata => {
            println!("{}", metadata());
            return std::process::ExitCode::SUCCESS;
        }
        Invocation::Plugin(argv) => (argv, "docker replicator"),
        Invocation::Direct(argv) => (argv, "replicator"),
    };
    let matches = Cli::command().bin_name(bin_name).get_matches_from(argv);
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    match replicator::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{bin_name}: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
