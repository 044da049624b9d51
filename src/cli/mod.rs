//! The command line of CONTRACT.md §6. `main` only parses and calls [`execute`].

mod demo;
pub mod dlq;
pub mod review;

use crate::auth::{KeyRing, KEY_ID_HEADER, SIGNATURE_HEADER};
use crate::broker::{self, headers::long_string, topology, Publisher};
use crate::config::Settings;
use crate::shutdown;
use clap::{Parser, Subcommand};
use lapin::types::FieldTable;
use lapin::BasicProperties;
use secrecy::ExposeSecret;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "payout-worker",
    version,
    about = "Pays approved balance withdrawals, exactly once."
)]
pub struct Cli {
    /// An extra TOML file layered over config/default.toml (environment variables still win).
    #[arg(long, global = true, env = "PAYOUT_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Consume, pay, publish until SIGTERM/SIGINT, then drain in-flight work and exit 0.
    Run,
    /// The channel simulator (Alipay gateway, ledger at GET /sim/ledger).
    Sim {
        /// Listen address (default: sim.listen).
        #[arg(long)]
        listen: Option<String>,
        /// Fraction of calls that get a random fault.
        #[arg(long)]
        faults: Option<f64>,
        /// Only these fault kinds (comma-separated; default all): bad_gateway,
        /// unavailable, system_error, lost_answer, latency_spike.
        #[arg(long, value_delimiter = ',')]
        fault_kinds: Option<Vec<String>>,
        /// Seed for the fault draws.
        #[arg(long)]
        seed: Option<u64>,
        /// Latency added to every call.
        #[arg(long)]
        latency_ms: Option<u64>,
        /// Time after which asynchronous payouts settle.
        #[arg(long)]
        settle_ms: Option<u64>,
    },
    /// Sign and publish a withdrawal.approved JSON file.
    Publish {
        file: PathBuf,
        /// Sign with this key id instead of auth.publish_key_id.
        #[arg(long)]
        key_id: Option<String>,
        /// Set `approved_at` to now before signing (for demos: an example file's date
        /// soon passes `limits.max_age_secs`, and the worker holds it for review).
        #[arg(long)]
        now: bool,
    },
    /// Declare exchanges, queues and bindings.
    Topology,
    /// Print the JSON Schema of the command or an event (all of them by default).
    Schema {
        /// withdrawal.approved, withdrawal.processing, withdrawal.succeeded,
        /// withdrawal.failed or withdrawal.review_required.
        name: Option<String>,
    },
    /// Withdrawals in review: list them, or record an operator's decision on a leg.
    Review {
        #[command(subcommand)]
        action: review::ReviewAction,
    },
    /// Dead letters: list them, replay chosen ones after a fix, or purge them.
    Dlq {
        #[command(subcommand)]
        action: DlqAction,
    },
    /// A seeded storm of faults against real RabbitMQ, Redis, worker processes and the
    /// simulator; checks the invariants and reports (exit status 1 on any violation).
    Chaos(crate::chaos::ChaosArgs),
    /// Load generator and benchmark: a worker process against the simulator, measured
    /// against a minimal relay on the same broker (see BENCHMARKS.md).
    Load(crate::load::LoadArgs),
    /// The simulator, the worker and a stream of sample withdrawals, with their events printed.
    Demo {
        /// Withdrawals to publish (0: until Ctrl-C).
        #[arg(long, default_value_t = 0)]
        count: u64,
        /// Pause between withdrawals.
        #[arg(long, default_value_t = 1000)]
        interval_ms: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum DlqAction {
    /// Code, reason, withdrawal id (if readable) and age of each dead letter.
    List {
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Republish dead letters unchanged to the command exchange; each leaves the dead
    /// queue only after the broker confirmed its republish.
    Replay {
        /// Every dead letter.
        #[arg(long)]
        all: bool,
        /// Dead letters naming this withdrawal (repeatable).
        #[arg(long = "withdrawal")]
        withdrawal_ids: Vec<String>,
        /// Dead letters with this error code (repeatable).
        #[arg(long = "code")]
        codes: Vec<String>,
    },
    /// Delete every dead letter.
    Purge {
        /// Confirm without the interactive prompt.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Settings(#[from] crate::config::SettingsError),
    #[error(transparent)]
    Worker(#[from] crate::worker::WorkerError),
    #[error(transparent)]
    Broker(#[from] broker::BrokerError),
    #[error(transparent)]
    Publish(#[from] broker::PublishError),
    #[error("broker: {0}")]
    Amqp(#[from] lapin::Error),
    #[error("{0}")]
    Other(String),
}

pub async fn execute(cli: Cli) -> Result<(), CliError> {
    let mut settings = Settings::load(cli.config.as_deref())?;
    crate::telemetry::init(&settings.log);
    match cli.command {
        Command::Run => {
            let (trigger, shutdown) = shutdown::channel();
            tokio::spawn(async move {
                shutdown::os_signal().await;
                tracing::info!("signal received");
                trigger.trigger();
            });
            crate::worker::run(settings, shutdown).await?;
            Ok(())
        }
        Command::Sim {
            listen,
            faults,
            fault_kinds,
            seed,
            latency_ms,
            settle_ms,
        } => {
            let s = &mut settings.sim;
            s.listen = listen.unwrap_or(s.listen.clone());
            s.faults = faults.unwrap_or(s.faults);
            s.fault_kinds = fault_kinds.unwrap_or(s.fault_kinds.clone());
            s.seed = seed.unwrap_or(s.seed);
            s.latency_ms = latency_ms.unwrap_or(s.latency_ms);
            s.settle_ms = settle_ms.unwrap_or(s.settle_ms);
            settings.validate()?;
            run_sim(&settings, shutdown::os_signal()).await
        }
        Command::Publish { file, key_id, now } => {
            let mut body = std::fs::read(&file)
                .map_err(|e| CliError::Other(format!("cannot read {}: {e}", file.display())))?;
            if now {
                let mut v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
                    CliError::Other(format!(
                        "--now needs a JSON object in {}: {e}",
                        file.display()
                    ))
                })?;
                v["approved_at"] = serde_json::Value::from(chrono::Utc::now().to_rfc3339());
                body = v.to_string().into_bytes();
            }
            let key_id = key_id.unwrap_or_else(|| settings.auth.publish_key_id.clone());
            let conn = broker::connect(&settings.amqp, "payout-worker-publish").await?;
            let publisher = Publisher::open(&conn, Duration::from_secs(30)).await?;
            publish_command(&settings, &publisher, &key_id, &body).await?;
            println!(
                "published {} ({} bytes) signed with key {key_id:?}",
                file.display(),
                body.len()
            );
            let _ = conn.close(200, "done".into()).await;
            Ok(())
        }
        Command::Topology => {
            let conn = broker::connect(&settings.amqp, "payout-worker-topology").await?;
            let channel = conn.create_channel().await?;
            topology::declare(&conn, &channel, &settings.topology).await?;
            println!("topology declared");
            let _ = conn.close(200, "done".into()).await;
            Ok(())
        }
        Command::Dlq { action } => run_dlq(&settings, action).await,
        Command::Review { action } => review::run(&settings, action).await,
        Command::Schema { name } => {
            match name {
                Some(n) => println!(
                    "{}",
                    crate::schemas::get(&n)
                        .ok_or_else(|| CliError::Other(format!("no schema named {n:?}")))?
                ),
                None => {
                    let all: serde_json::Map<String, serde_json::Value> = crate::schemas::ALL
                        .iter()
                        .map(|(n, s)| {
                            (
                                (*n).to_owned(),
                                serde_json::from_str(s).expect("schemas are JSON"),
                            )
                        })
                        .collect();
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&all).expect("serialises")
                    );
                }
            }
            Ok(())
        }
        Command::Demo { count, interval_ms } => demo::run(settings, count, interval_ms).await,
        Command::Load(args) => crate::load::run(settings, args, cli.config)
            .await
            .map(|_| ())
            .map_err(|e| CliError::Other(format!("load: {e}"))),
        Command::Chaos(args) => {
            if crate::chaos::run(settings, args, cli.config)
                .await
                .map_err(|e| CliError::Other(format!("chaos: {e}")))?
            {
                Ok(())
            } else {
                Err(CliError::Other(
                    "chaos: invariants violated (see the report above)".into(),
                ))
            }
        }
    }
}

pub async fn run_sim(
    settings: &Settings,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), CliError> {
    let opts = crate::sim::SimOptions::from_settings(&settings.sim).map_err(CliError::Other)?;
    let listener = tokio::net::TcpListener::bind(&settings.sim.listen)
        .await
        .map_err(|e| {
            CliError::Other(format!(
                "sim: cannot listen on {}: {e}",
                settings.sim.listen
            ))
        })?;
    tracing::info!(listen = %settings.sim.listen, "channel simulator listening");
    crate::sim::serve(opts, listener, stop)
        .await
        .map_err(|e| CliError::Other(format!("sim: {e}")))
}

/// Signs `body` with `key_id` and publishes it as upstream billing would: persistent,
/// JSON, confirmed, mandatory.
pub async fn publish_command(
    settings: &Settings,
    publisher: &Publisher,
    key_id: &str,
    body: &[u8],
) -> Result<(), CliError> {
    let keys = KeyRing::parse(settings.auth.hmac_keys.expose_secret()).map_err(CliError::Other)?;
    let signature = keys
        .sign(key_id, body)
        .ok_or_else(|| CliError::Other(format!("no HMAC key with id {key_id:?} is configured")))?;
    let mut headers = FieldTable::default();
    headers.insert(KEY_ID_HEADER.into(), long_string(key_id));
    headers.insert(SIGNATURE_HEADER.into(), long_string(&signature));
    let props = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_delivery_mode(2)
        .with_headers(headers);
    publisher
        .publish(
            &settings.topology.commands_exchange,
            topology::APPROVED_ROUTING_KEY,
            body,
            props,
        )
        .await?;
    Ok(())
}

async fn run_dlq(settings: &Settings, action: DlqAction) -> Result<(), CliError> {
    match action {
        DlqAction::List { json } => {
            let letters = dlq::list(settings).await?;
            if json {
                for l in &letters {
                    println!("{}", serde_json::to_string(l).expect("letters serialise"));
                }
            } else {
                println!("{:<22} {:<40} {:>8}  reason", "code", "withdrawal", "age_s");
                for l in &letters {
                    println!(
                        "{:<22} {:<40} {:>8}  {}",
                        l.code.as_deref().unwrap_or("(broker)"),
                        l.withdrawal_id.as_deref().unwrap_or("-"),
                        l.age_secs
                            .map(|a| a.to_string())
                            .unwrap_or_else(|| "-".into()),
                        l.reason.as_deref().unwrap_or("-")
                    );
                }
                println!("{} dead letter(s)", letters.len());
            }
            Ok(())
        }
        DlqAction::Replay {
            all,
            withdrawal_ids,
            codes,
        } => {
            if !all && withdrawal_ids.is_empty() && codes.is_empty() {
                return Err(CliError::Other(
                    "choose what to replay: --all, --withdrawal ID or --code CODE".into(),
                ));
            }
            let n = dlq::replay(
                settings,
                &dlq::Selection {
                    all,
                    withdrawal_ids,
                    codes,
                },
            )
            .await?;
            println!("replayed {n} dead letter(s)");
            Ok(())
        }
        DlqAction::Purge { yes } => {
            if !yes {
                use std::io::{BufRead, IsTerminal, Write};
                if !std::io::stdin().is_terminal() {
                    return Err(CliError::Other("refusing to purge without --yes".into()));
                }
                print!(
                    "Delete every message in {}? Type PURGE to confirm: ",
                    settings.topology.dead_letter
                );
                let _ = std::io::stdout().flush();
                let mut answer = String::new();
                let _ = std::io::stdin().lock().read_line(&mut answer);
                if answer.trim() != "PURGE" {
                    return Err(CliError::Other("purge cancelled".into()));
                }
            }
            let n = dlq::purge(settings).await?;
            println!("purged {n} dead letter(s)");
            Ok(())
        }
    }
}
