//! `flyte-rs cache list|evict`: the task output cache's entries per task, per cache version or
//! per execution, straight from the metadata store the configuration names (the server may be
//! running: the next execution misses what was evicted).

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use flyte_cache::CacheScope;
use flyte_store::{CatalogPage, ExecutionKey};

#[derive(Subcommand)]
pub enum CacheCommand {
    /// List cached entries.
    List {
        #[command(flatten)]
        scope: ScopeArgs,
    },
    /// Evict cached entries: the next execution with the same inputs runs the task again.
    Evict {
        #[command(flatten)]
        scope: ScopeArgs,
    },
}

#[derive(Args)]
pub struct ScopeArgs {
    /// Project of the task or execution
    #[arg(long, short = 'p', default_value = "flytesnacks")]
    project: String,
    /// Domain of the task or execution
    #[arg(long, short = 'd', default_value = "development")]
    domain: String,
    /// Task name (e.g. examples.cached.square)
    #[arg(long, conflicts_with = "execution")]
    task: Option<String>,
    /// Only this cache version of the task (its `cache_version`)
    #[arg(long, requires = "task", alias = "cache-version")]
    version: Option<String>,
    /// The entries an execution produced
    #[arg(long)]
    execution: Option<String>,
}

impl ScopeArgs {
    fn scope(&self) -> anyhow::Result<CacheScope> {
        Ok(match (&self.task, &self.version, &self.execution) {
            (Some(name), None, None) => CacheScope::Task {
                project: self.project.clone(),
                domain: self.domain.clone(),
                name: name.clone(),
            },
            (Some(name), Some(v), None) => CacheScope::TaskVersion {
                project: self.project.clone(),
                domain: self.domain.clone(),
                name: name.clone(),
                cache_version: v.clone(),
            },
            (None, None, Some(e)) => CacheScope::Execution(ExecutionKey {
                project: self.project.clone(),
                domain: self.domain.clone(),
                name: e.clone(),
            }),
            _ => bail!("give --task [--version] or --execution"),
        })
    }
}

pub async fn run(metadata_url: &str, command: CacheCommand) -> anyhow::Result<()> {
    let store = flyte_store::open(metadata_url)
        .await
        .context("cannot open the metadata store")?;
    match command {
        CacheCommand::Evict { scope } => {
            let n = flyte_cache::evict(store.as_ref(), &scope.scope()?).await?;
            println!(
                "evicted {n} cached entr{}",
                if n == 1 { "y" } else { "ies" }
            );
        }
        CacheCommand::List { scope } => {
            let scope = scope.scope()?;
            let mut page = CatalogPage {
                limit: 500,
                token: String::new(),
                ascending: true,
            };
            println!("TASK\tCACHE_VERSION\tTAG\tOUTPUTS\tEXECUTION\tCREATED");
            loop {
                let p = flyte_cache::list_entries(store.as_ref(), &scope, &page).await?;
                for e in &p.items {
                    let d = &e.key.dataset;
                    let exec = e
                        .source_execution
                        .as_ref()
                        .map(|x| x.name.clone())
                        .unwrap_or_default();
                    println!(
                        "{}\t{}\t{}\t{}\t{}\t{}",
                        d.name,
                        d.version,
                        e.key.tag,
                        e.output_names.join(","),
                        exec,
                        e.created_at.to_rfc3339()
                    );
                }
                if p.next_token.is_empty() {
                    break;
                }
                page.token = p.next_token;
            }
        }
    }
    Ok(())
}
