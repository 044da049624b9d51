//! `payout-worker`: parses the command line and hands over to the library.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = payout_worker::cli::Cli::parse();
    match payout_worker::cli::execute(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("payout-worker: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
