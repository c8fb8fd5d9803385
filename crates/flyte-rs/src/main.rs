//! `flyte-rs`: parse flags, load the configuration, start the server, wait for a signal.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use flyte_rs::{Config, Environment, Overrides};

mod cache_cmd;

/// jemalloc rather than glibc's malloc: after a 40,000-leaf run glibc kept the peak resident
/// (its per-thread arenas fragment), jemalloc hands freed pages back (docs/adr-004-allocator.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Freed pages go back to the OS after ~1 s (dirty) and at once (muzzy), from jemalloc's own
/// background thread, so an idle server shrinks without an allocation to trigger it.
#[allow(non_upper_case_globals)]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static malloc_conf: &[u8] = b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

#[derive(Parser)]
#[command(
    name = "flyte-rs",
    version,
    about = "The Flyte v1 platform in one binary"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the platform: gRPC and HTTP on one port.
    Start {
        #[command(flatten)]
        flags: ConfigFlags,
        /// Print the effective configuration (TOML) and exit.
        #[arg(long)]
        dump_config: bool,
    },
    /// Configuration tools.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// The task output cache: list or evict entries per task, cache version or execution.
    Cache {
        #[command(subcommand)]
        command: cache_cmd::CacheCommand,
        #[command(flatten)]
        flags: ConfigFlags,
    },
    /// The everyday client commands (get, launch, watch, logs, ...): docs/cli.md.
    #[command(flatten)]
    Client(flyte_cli::Command),
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the effective configuration (defaults < file < FLYTE_RS_* env < flags) as TOML.
    Dump {
        #[command(flatten)]
        flags: ConfigFlags,
    },
}

#[derive(Args)]
struct ConfigFlags {
    /// Directory for the embedded stores [default: ~/.flyte-rs]
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:30080]
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// A TOML or YAML configuration file
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

impl ConfigFlags {
    fn load(self) -> anyhow::Result<Config> {
        let overrides = Overrides {
            config_file: self.config,
            data_dir: self.data_dir,
            listen: self.listen,
        };
        Config::load(&overrides, &Environment::process())
    }
}

fn main() -> ExitCode {
    // Before any HTTPS client exists (object stores, the CLI, OTLP): see its doc.
    flyte_blob::install_tls_provider();
    let cli = Cli::parse();
    // Client commands talk to a running server and choose their own exit code (watch).
    let cli = match cli.command {
        Command::Client(command) => return flyte_cli::run(command),
        command => Cli { command },
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("flyte-rs: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Client(_) => unreachable!("client commands are run by main"),
        Command::Cache { command, flags } => {
            let config = flags.load()?;
            let url = config
                .storage
                .metadata_url
                .clone()
                .context("no metadata store configured")?;
            let runtime =
                tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            runtime.block_on(cache_cmd::run(&url, command))
        }
        Command::Config {
            command: ConfigCommand::Dump { flags },
        } => dump(&flags.load()?),
        Command::Start {
            flags,
            dump_config: true,
        } => dump(&flags.load()?),
        Command::Start {
            flags,
            dump_config: false,
        } => {
            let config = flags.load()?;
            flyte_rs::telemetry::init(&config)?;
            let runtime =
                tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            let served = runtime.block_on(serve(config));
            flyte_rs::telemetry::shutdown();
            served
        }
    }
}

fn dump(config: &Config) -> anyhow::Result<()> {
    print!("{}", config.dump()?);
    Ok(())
}

async fn serve(config: Config) -> anyhow::Result<()> {
    // Listen for signals before announcing readiness, so none is missed.
    let mut signals = Signals::install()?;
    // A signal during start-up (migrations, resuming executions) stops it there: dropping
    // the start rolls back what it was doing and releases the data dir.
    let server = tokio::select! {
        started = flyte_rs::start(config) => started?,
        name = signals.next() => {
            tracing::warn!(signal = name, "stopped during start-up, before serving");
            return Ok(());
        }
    };
    println!("{}", server.ready_message());
    let handle = server.shutdown_handle();
    tokio::spawn(async move {
        let name = signals.next().await;
        tracing::info!(signal = name, "shutdown requested");
        handle.trigger();
        let name = signals.next().await;
        eprintln!("flyte-rs: second {name}, exiting immediately");
        std::process::exit(130);
    });
    server.wait().await?;
    tracing::info!("stopped");
    Ok(())
}

/// SIGINT and SIGTERM, registered up front.
struct Signals {
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
}

impl Signals {
    #[cfg(unix)]
    fn install() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            int: signal(SignalKind::interrupt()).context("cannot handle SIGINT")?,
            term: signal(SignalKind::terminate()).context("cannot handle SIGTERM")?,
        })
    }

    #[cfg(unix)]
    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.int.recv() => "SIGINT",
            _ = self.term.recv() => "SIGTERM",
        }
    }

    #[cfg(not(unix))]
    fn install() -> anyhow::Result<Self> {
        Ok(Self {})
    }

    #[cfg(not(unix))]
    async fn next(&mut self) -> &'static str {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}
