//! The subcommands (clap), flattened into the `flyte-rs` binary's own command enum.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::client::Client;
use crate::config::{self, ConfigSources};
use crate::error::{CliError, CliResult};
use crate::output::Format;

/// Flags every client command takes, before or after its subcommand.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// Project
    #[arg(short, long, global = true, default_value = "flytesnacks")]
    pub project: String,
    /// Domain
    #[arg(short, long, global = true, default_value = "development")]
    pub domain: String,
    /// Output format (table: aligned columns; json/yaml: the API's objects)
    #[arg(short, long, global = true, value_enum, default_value_t = Format::Table)]
    pub output: Format,
    /// Client config file (flytekit's): default $FLYTECTL_CONFIG, else ~/.flyte/config.yaml
    #[arg(short = 'c', long = "config", global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[arg(long, env = "FLYTECTL_CONFIG", hide = true, global = true)]
    pub flytectl_config: Option<PathBuf>,
    #[arg(long, env = "FLYTE_PLATFORM_URL", hide = true, global = true)]
    pub platform_url: Option<String>,
    #[arg(long, env = "FLYTE_PLATFORM_INSECURE", hide = true, global = true)]
    pub platform_insecure: Option<String>,
    #[arg(long, env = "HOME", hide = true, global = true)]
    pub home: Option<PathBuf>,
    /// No colour even on a terminal (also: NO_COLOR set)
    #[arg(long, env = "NO_COLOR", global = true, value_parser = clap::builder::FalseyValueParser::new())]
    pub no_color: bool,
    #[arg(long, env = "TERM", hide = true, global = true)]
    pub term: Option<String>,
}

impl Common {
    pub fn colour(&self) -> bool {
        crate::output::colour_on_stdout(self.no_color, self.term.as_deref() == Some("dumb"))
    }

    async fn client(&self) -> CliResult<Client> {
        let config = config::load(&ConfigSources {
            explicit: self.config.clone(),
            flytectl_config: self.flytectl_config.clone(),
            home: self.home.clone(),
            platform_url: self.platform_url.clone(),
            platform_insecure: self.platform_insecure.clone(),
        })?;
        Client::connect(config, self.project.clone(), self.domain.clone()).await
    }
}

/// Paging of list commands.
#[derive(Debug, Clone, Args)]
pub struct Paging {
    /// At most this many rows
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
    /// Continue a previous listing (the token it printed)
    #[arg(long, default_value = "", hide_default_value = true)]
    pub token: String,
    /// An admin filter, e.g. "eq(phase,SUCCEEDED)" (several joined with +)
    #[arg(long, default_value = "", hide_default_value = true)]
    pub filter: String,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List or show projects, workflows, tasks, launch plans and executions
    Get {
        #[command(subcommand)]
        what: GetCommand,
        #[command(flatten)]
        common: Common,
    },
    /// Start an execution of a launch plan or a task
    Launch {
        #[command(subcommand)]
        what: LaunchCommand,
        #[command(flatten)]
        common: Common,
    },
    /// Follow an execution until it ends (exit code: 0 succeeded, 1 failed, 3 aborted, 4 timed out)
    Watch {
        /// Execution name
        execution: String,
        #[command(flatten)]
        common: Common,
    },
    /// Print the logs of an execution's task attempts
    Logs {
        /// Execution name
        execution: String,
        /// Only this node (as listed by `get execution NAME`)
        #[arg(short, long)]
        node: Option<String>,
        /// Only this attempt (0 is the first)
        #[arg(long)]
        attempt: Option<u32>,
        /// Keep printing while the execution runs
        #[arg(short, long)]
        follow: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Stop running executions
    Terminate {
        /// Execution names
        #[arg(required = true)]
        executions: Vec<String>,
        /// Why (recorded on the execution)
        #[arg(long, default_value = "terminated with flyte-rs terminate")]
        cause: String,
        #[command(flatten)]
        common: Common,
    },
    /// Run an execution again from the start, with the same inputs
    Relaunch {
        execution: String,
        /// Name of the new execution [default: generated]
        #[arg(long)]
        name: Option<String>,
        /// Watch the new execution
        #[arg(short, long)]
        watch: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Run a failed execution again, reusing the outputs of the nodes that succeeded
    Recover {
        execution: String,
        /// Name of the new execution [default: generated]
        #[arg(long)]
        name: Option<String>,
        /// Watch the new execution
        #[arg(short, long)]
        watch: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Gates of an execution: list, approve, reject, or give a waiting input its value
    Gate {
        #[command(subcommand)]
        what: GateCommand,
        #[command(flatten)]
        common: Common,
    },
    /// Activate or deactivate a launch plan version
    #[command(name = "launchplan")]
    LaunchPlan {
        #[command(subcommand)]
        what: LaunchPlanCommand,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Debug, Subcommand)]
pub enum GetCommand {
    /// Projects and their domains
    #[command(visible_alias = "projects")]
    Project,
    /// Workflow names; with a NAME its versions; with --version or --latest its interface
    #[command(visible_alias = "workflows")]
    Workflow(EntityArgs),
    /// Task names; with a NAME its versions; with --version or --latest its interface
    #[command(visible_alias = "tasks")]
    Task(EntityArgs),
    /// Launch plan names; with a NAME its versions and state; with --version or --latest its inputs
    #[command(visible_alias = "launchplans", visible_alias = "lp")]
    Launchplan(EntityArgs),
    /// Active launch-plan schedules and their next ticks; with a NAME that launch plan's
    #[command(visible_alias = "schedules")]
    Schedule { name: Option<String> },
    /// Executions, newest first; with a NAME one execution, its nodes, inputs and outputs
    #[command(visible_alias = "executions")]
    Execution {
        name: Option<String>,
        /// Only executions in this phase (e.g. RUNNING, SUCCEEDED, FAILED)
        #[arg(long)]
        phase: Option<String>,
        /// Only executions of this launch plan
        #[arg(long)]
        launchplan: Option<String>,
        #[command(flatten)]
        paging: Paging,
    },
}

#[derive(Debug, Clone, Args)]
pub struct EntityArgs {
    pub name: Option<String>,
    /// Show this version
    #[arg(short, long)]
    pub version: Option<String>,
    /// Show the newest version
    #[arg(long, conflicts_with = "version")]
    pub latest: bool,
    #[command(flatten)]
    pub paging: Paging,
}

#[derive(Debug, Subcommand)]
pub enum LaunchCommand {
    /// Launch a launch plan (a workflow's default launch plan has the workflow's name)
    #[command(visible_alias = "lp")]
    Launchplan(LaunchArgs),
    /// Launch a single task
    Task(LaunchArgs),
}

#[derive(Debug, Clone, Args)]
pub struct LaunchArgs {
    pub name: String,
    /// Version [default: the newest]
    #[arg(short, long)]
    pub version: Option<String>,
    /// An input, NAME=VALUE (repeatable); lists and maps as YAML, e.g. -i 'xs=[1,2]'
    #[arg(short, long = "input", value_name = "NAME=VALUE")]
    pub inputs: Vec<String>,
    /// A YAML or JSON file mapping input names to values (flags win)
    #[arg(short = 'f', long, value_name = "FILE")]
    pub inputs_file: Option<PathBuf>,
    /// Execution name [default: generated]
    #[arg(long = "name", id = "execution_name", value_name = "NAME")]
    pub execution_name: Option<String>,
    /// Watch the execution after launching it (exit code by outcome)
    #[arg(short, long)]
    pub watch: bool,
}

#[derive(Debug, Subcommand)]
pub enum GateCommand {
    /// The gates (signals) of an execution and their values
    List { execution: String },
    /// Approve an `approve` gate
    Approve {
        execution: String,
        /// Signal id [default: the one gate waiting]
        signal: Option<String>,
    },
    /// Reject an `approve` gate (the node fails)
    Reject {
        execution: String,
        /// Signal id [default: the one gate waiting]
        signal: Option<String>,
    },
    /// Give a `wait_for_input` gate its value (parsed by the gate's type)
    Set {
        execution: String,
        signal: String,
        value: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum LaunchPlanCommand {
    /// Make a version the active one (deactivates the others of the same name)
    Activate {
        name: String,
        #[arg(short, long)]
        version: Option<String>,
    },
    /// Deactivate a version
    Deactivate {
        name: String,
        #[arg(short, long)]
        version: Option<String>,
    },
}

/// Runs a client command; the exit code follows docs/cli.md.
pub fn run(command: Command) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("flyte-rs: error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(command)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("flyte-rs: error: {err}");
            err.exit_code()
        }
    }
}

async fn dispatch(command: Command) -> CliResult<ExitCode> {
    match command {
        Command::Get { what, common } => {
            let mut client = common.client().await?;
            crate::get::run(&mut client, what, &common).await?;
        }
        Command::Launch { what, common } => {
            let mut client = common.client().await?;
            return crate::launch::launch(&mut client, what, &common).await;
        }
        Command::Watch { execution, common } => {
            let mut client = common.client().await?;
            return crate::watch::watch(&mut client, &execution, &common).await;
        }
        Command::Logs {
            execution,
            node,
            attempt,
            follow,
            common,
        } => {
            let mut client = common.client().await?;
            crate::logs::logs(&mut client, &execution, node.as_deref(), attempt, follow).await?;
        }
        Command::Terminate {
            executions,
            cause,
            common,
        } => {
            let mut client = common.client().await?;
            crate::launch::terminate(&mut client, &executions, &cause, &common).await?;
        }
        Command::Relaunch {
            execution,
            name,
            watch,
            common,
        } => {
            let mut client = common.client().await?;
            return crate::launch::relaunch(
                &mut client,
                &execution,
                name.as_deref().unwrap_or_default(),
                watch,
                false,
                &common,
            )
            .await;
        }
        Command::Recover {
            execution,
            name,
            watch,
            common,
        } => {
            let mut client = common.client().await?;
            return crate::launch::relaunch(
                &mut client,
                &execution,
                name.as_deref().unwrap_or_default(),
                watch,
                true,
                &common,
            )
            .await;
        }
        Command::Gate { what, common } => {
            let mut client = common.client().await?;
            crate::gate::run(&mut client, what, &common).await?;
        }
        Command::LaunchPlan { what, common } => {
            let mut client = common.client().await?;
            crate::launch::launch_plan_state(&mut client, what, &common).await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A usage error for a value given on the command line.
pub fn usage(message: impl Into<String>) -> CliError {
    CliError::Usage(message.into())
}
