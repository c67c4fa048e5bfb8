use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = replicator::cli::Cli::parse();
    match replicator::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("replicator: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
