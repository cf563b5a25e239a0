//! The command line: `serve` (the default), `keygen`, `check-config`.

use crate::auth::{API_KEY_PREFIX, key_sha256_hex};
use crate::config::{ProcessEnv, Settings};
use crate::crypto::ServerSecret;
use crate::startup::Application;
use crate::telemetry;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clap::{Args, Parser, Subcommand};
use rand::TryRngCore;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "wsticket",
    version,
    about = "Single-use, origin-bound tickets for WebSocket handshakes"
)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service (the default).
    Serve(ServeArgs),
    /// Print a new API key with its key_sha256, and a new ticket secret.
    Keygen {
        /// Key id for the printed ticket secret.
        #[arg(long, default_value = "k1")]
        id: String,
    },
    /// Validate a configuration and exit non-zero with the reason.
    CheckConfig {
        #[arg(long, env = "WSTICKET_CONFIG")]
        config: Option<PathBuf>,
    },
}

#[derive(Args, Default)]
struct ServeArgs {
    /// TOML configuration file.
    #[arg(long, env = "WSTICKET_CONFIG")]
    config: Option<PathBuf>,
    /// Self-contained demo: in-memory store, generated secret, public demo
    /// keys, origin http://localhost:3000. Never for production.
    #[arg(long)]
    dev: bool,
}

pub fn run() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        None => serve(cli.serve),
        Some(Command::Serve(args)) => serve(args),
        Some(Command::Keygen { id }) => keygen(&id),
        Some(Command::CheckConfig { config }) => check_config(config),
    }
}

fn serve(args: ServeArgs) -> ExitCode {
    // Held to the end of this function: the last lines (why it stopped) are
    // written out when it is dropped.
    let _log = telemetry::init();
    let loaded = if args.dev {
        Settings::load_dev(args.config.as_deref(), &ProcessEnv)
    } else {
        Settings::load(args.config.as_deref(), &ProcessEnv)
    };
    let settings = match loaded {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("invalid configuration: {e}");
            eprintln!("wsticket: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("wsticket: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let app = Application::build(settings)
            .await
            .map_err(|e| e.to_string())?;
        app.run_until_stopped().await.map_err(|e| e.to_string())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("wsticket stopped: {e}");
            // stderr may be gone by now (see telemetry): never panic for it.
            let _ = writeln!(std::io::stderr(), "wsticket: {e}");
            ExitCode::FAILURE
        }
    }
}

fn keygen(id: &str) -> ExitCode {
    let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
    let secret = ServerSecret::generate(id);
    let (Ok(()), Ok(secret)) = (rand::rngs::OsRng.try_fill_bytes(bytes.as_mut()), secret) else {
        eprintln!(
            "wsticket keygen: the id must be 1-16 characters of a-z 0-9, and the OS random generator must work"
        );
        return ExitCode::from(2);
    };
    let key = format!("{API_KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes.as_ref()));
    println!("# API key: give it to the client (for example as a Kubernetes secret).");
    println!("api_key = \"{key}\"");
    println!("# Its hash, for a [[clients]] entry in the wsticket config:");
    println!("key_sha256 = \"{}\"", key_sha256_hex(&key));
    println!(
        "# A ticket secret, for [tickets] secrets (or WSTICKET_TICKET_SECRETS={}:<secret>):",
        secret.id().as_ref()
    );
    println!(
        "secrets = [{{ id = \"{}\", secret = \"{}\" }}]",
        secret.id().as_ref(),
        secret.expose_base64()
    );
    ExitCode::SUCCESS
}

fn check_config(path: Option<PathBuf>) -> ExitCode {
    match Settings::load(path.as_deref(), &ProcessEnv) {
        Ok(s) => {
            println!("configuration OK: {}", s.summary());
            for warning in s.warnings() {
                eprintln!("warning: {warning}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("configuration error: {e}");
            ExitCode::from(2)
        }
    }
}
