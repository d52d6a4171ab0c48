use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use hotline::config::Config;

/// Without `RUST_LOG`: our info, and only real trouble from the SIP and
/// WebRTC stacks (`webrtc` warns about every early ICE check and every DTLS
/// extension it skips, which is expected: see docs/browser-softphone.md).
const DEFAULT_LOG_FILTER: &str =
    "info,rsipstack=warn,webrtc=warn,rtc=error,rtc_ice=error,rtc_dtls=error,rtc_srtp=error";

/// hotline: SIP call-centre server for after-sales service hotlines.
#[derive(Parser)]
#[command(name = "hotline", version, about, propagate_version = true)]
struct Cli {
    /// Log output format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (SIP, media, HTTP API) until SIGINT/SIGTERM.
    Serve {
        /// Configuration file; without it the built-in example configuration is used.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Check a configuration file and print every error with its line; exit 1 on error.
    CheckConfig {
        /// The configuration file to check.
        file: PathBuf,
    },
    /// Import data from the ERP.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Check dialplan files (references, prompts, reachability, loops); exit 1 on error.
    CheckDialplan {
        /// Dialplan files to check together (numbers must not repeat across them).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ImportCommand {
    /// Completed work orders from a CSV export: customers, orders and their
    /// callback tasks. Exit 0 when every row landed, 2 when some rows were
    /// refused (the good ones still land), 1 when nothing could be done.
    WorkOrders {
        /// The CSV file (header row; columns order_no, type, phone, completed_at, ...).
        file: PathBuf,
        /// Configuration file (for the database); default: the built-in one.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

fn import_work_orders(file: PathBuf, config: Option<PathBuf>) -> ExitCode {
    let cfg = match config
        .as_deref()
        .map(Config::load)
        .unwrap_or_else(|| Ok(Config::builtin()))
    {
        Ok(mut c) => match c.apply_env(|k| std::env::var(k).ok()) {
            Ok(()) => c,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        },
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hotline: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let store = hotline::store::Store::connect(&cfg.database.url).await?;
        let rules = cfg.callback_rules();
        let now = chrono::Utc::now().timestamp_millis();
        hotline::import::import_work_orders(
            &store,
            &file,
            &rules,
            now,
            hotline::import::print_progress,
        )
        .await
    });
    match result {
        Ok(out) => {
            for e in &out.errors {
                eprintln!("{e}");
            }
            println!(
                "{} rows: {} orders created, {} updated, {} refused; {} callback tasks created, {} not due one or already planned",
                out.rows, out.created, out.updated, out.failed, out.tasks_created, out.tasks_skipped
            );
            if out.failed > 0 {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("hotline: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { file } => match Config::load(&file) {
            Ok(_) => {
                println!("{}: ok", file.display());
                ExitCode::SUCCESS
            }
            Err(errors) => {
                eprintln!("{errors}");
                ExitCode::FAILURE
            }
        },
        Command::Import(ImportCommand::WorkOrders { file, config }) => {
            import_work_orders(file, config)
        }
        Command::CheckDialplan { files } => match hotline::call::Routing::load(&files) {
            Ok(routing) => {
                for plan in routing.dialplans.plans() {
                    println!(
                        "{}: ok ({} nodes, numbers {})",
                        plan.path.display(),
                        plan.nodes.len(),
                        plan.numbers.join(", ")
                    );
                }
                ExitCode::SUCCESS
            }
            Err(errors) => {
                for e in errors {
                    eprintln!("{e}");
                }
                ExitCode::FAILURE
            }
        },
        Command::Serve { config } => {
            init_logging(cli.log_format);
            let loaded = match &config {
                Some(path) => Config::load(path),
                None => Ok(Config::builtin()),
            };
            let mut cfg = match loaded {
                Ok(c) => c,
                Err(errors) => {
                    eprintln!("{errors}");
                    return ExitCode::FAILURE;
                }
            };
            if let Err(errors) = cfg.apply_env(|k| std::env::var(k).ok()) {
                eprintln!("{errors}");
                return ExitCode::FAILURE;
            }
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("hotline: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(hotline::server::serve(cfg)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("hotline: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
