//! Command line entry point: parse, start telemetry, run one deployment target.

use users_platform::config::Cli;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let config = match cli.into_config() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("users-platform: invalid configuration: {err}");
            return std::process::ExitCode::from(2);
        }
    };
    users_platform::telemetry::logging::init(&config.telemetry, config.target.service_name());
    match users_platform::startup::run(config) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "users-platform stopped with an error");
            std::process::ExitCode::FAILURE
        }
    }
}
