//! Command line: `serve`, `check-config`, `gen-secret`, `hash-password`, `migrate` (SPEC §7).

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use base64::Engine;
use clap::{Parser, Subcommand};
use rand::RngCore;

use crate::config::{Environment, Settings, Source};
use crate::passwords::PasswordHasher;
use crate::startup::{Application, StartupError};

/// Exit code for configuration errors: the server did not start.
pub const EXIT_CONFIG: u8 = 2;

/// Palisade: a protected HTTP API with JWT authentication and rate limiting.
#[derive(Debug, Parser)]
#[command(name = "palisade", version, about)]
pub struct Cli {
    /// A TOML file with settings (same names as the environment variables); by default
    /// `./palisade.toml` when it exists. The environment and `.env` take precedence over it.
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (migrations are applied first).
    Serve,
    /// Print the effective configuration (secrets masked) and every production warning.
    CheckConfig,
    /// Print a new random secret suitable for SECRET_KEY.
    GenSecret,
    /// Read a password from standard input and print its Argon2id hash.
    HashPassword,
    /// Apply the database migrations and exit.
    Migrate,
}

/// A new random secret: 48 bytes from the OS generator, base64url (64 characters).
pub fn generate_secret() -> String {
    let mut bytes = [0u8; 48];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Parses the command line and runs the command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::GenSecret => {
            println!("{}", generate_secret());
            ExitCode::SUCCESS
        }
        Command::HashPassword => hash_password(),
        Command::CheckConfig => check_config(&cli),
        Command::Serve | Command::Migrate => run_async(&cli),
    }
}

fn load_settings(cli: &Cli) -> Result<Settings, ExitCode> {
    let source =
        Source::from_process(cli.config.as_deref()).map_err(|e| config_failure(&e.into()))?;
    Settings::from_source(&source).map_err(|e| config_failure(&e))
}

fn config_failure(errors: &crate::config::ConfigErrors) -> ExitCode {
    eprint!("palisade: {errors}");
    ExitCode::from(EXIT_CONFIG)
}

fn check_config(cli: &Cli) -> ExitCode {
    let settings = match load_settings(cli) {
        Ok(s) => s,
        Err(code) => return code,
    };
    print!("{}", settings.describe());
    let problems = settings.production_problems();
    if problems.is_empty() {
        println!("\nNo production warnings.");
    } else {
        let label = match settings.environment {
            Environment::Production => "error",
            Environment::Development => "warning (refused when ENVIRONMENT=production)",
        };
        println!();
        for p in problems {
            println!("{label}: {p}");
        }
    }
    ExitCode::SUCCESS
}

fn hash_password() -> ExitCode {
    let mut input = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut input) {
        eprintln!("palisade: cannot read the password from standard input: {e}");
        return ExitCode::FAILURE;
    }
    let password = input
        .strip_suffix('\n')
        .map(|p| p.strip_suffix('\r').unwrap_or(p))
        .unwrap_or(&input);
    if password.is_empty() {
        eprintln!("palisade: the password on standard input is empty");
        return ExitCode::FAILURE;
    }
    match PasswordHasher::hash_blocking(password) {
        Ok(hash) => {
            println!("{hash}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("palisade: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_async(cli: &Cli) -> ExitCode {
    let settings = match load_settings(cli) {
        Ok(s) => s,
        Err(code) => return code,
    };
    crate::telemetry::init(&settings);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("palisade: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Migrate => {
                crate::store::connect(&settings).await?;
                tracing::info!("migrations applied");
                Ok(())
            }
            _ => {
                let app = Application::build(settings).await?;
                app.run_until_stopped(crate::startup::shutdown_signal())
                    .await
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e @ StartupError::Config(_)) => {
            eprintln!("palisade: {e}");
            ExitCode::from(EXIT_CONFIG)
        }
        Err(e) => {
            eprintln!("palisade: {e}");
            ExitCode::FAILURE
        }
    }
}
