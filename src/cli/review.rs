//! `payout-worker review list | resolve`: withdrawals waiting for a person.

use super::CliError;
use crate::broker::{self, Publisher};
use crate::config::Settings;
use crate::domain::{LegId, WithdrawalId};
use crate::ops::review::{self, Verdict};
use crate::store::Store;
use clap::{Subcommand, ValueEnum};
use std::time::Duration;

#[derive(Debug, Subcommand)]
pub enum ReviewAction {
    /// Withdrawals in review, with what is known of each leg.
    List,
    /// Record what the channel says happened to a leg (after checking it by hand).
    /// Refused, with the reason, unless the withdrawal is in review and the leg needs a
    /// person (`review`, `unknown` past its cap, or never sent), and unless the channel
    /// agrees when asked with the leg's key; `paid` is refused for a leg never sent.
    Resolve {
        withdrawal: String,
        #[arg(long)]
        leg: String,
        #[arg(long, value_enum)]
        outcome: Outcome,
        /// Why: logged with the decision and kept in the leg's record.
        #[arg(long)]
        reason: String,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Outcome {
    Paid,
    Failed,
}

fn err(e: impl std::fmt::Display) -> CliError {
    CliError::Other(e.to_string())
}

pub async fn run(settings: &Settings, action: ReviewAction) -> Result<(), CliError> {
    let store = Store::connect(&settings.redis).await.map_err(err)?;
    match action {
        ReviewAction::List => {
            let items = review::list(settings, &store).await.map_err(err)?;
            for item in &items {
                let amount = item
                    .withdrawal
                    .as_ref()
                    .map(|w| format!("{} {}", w.amount, w.currency.as_str()))
                    .unwrap_or_else(|| "?".into());
                println!(
                    "{}  {}  in review since {}",
                    item.id,
                    amount,
                    chrono::DateTime::from_timestamp(item.since, 0)
                        .map(|t| t.to_rfc3339())
                        .unwrap_or_default()
                );
                if let (Some(w), Some(r)) = (&item.withdrawal, &item.record) {
                    for leg in &w.legs {
                        match r.legs.get(leg.id.as_str()) {
                            Some((_, rec)) => println!(
                                "    leg {:<6} {:>10} {:<10} {:<10} sends={} {}",
                                leg.id.as_str(),
                                leg.amount.to_string(),
                                rec.channel.as_str(),
                                format!("{:?}", rec.state).to_lowercase(),
                                rec.sends,
                                rec.reason.as_deref().or(rec.code.as_deref()).unwrap_or("")
                            ),
                            None => println!(
                                "    leg {:<6} {:>10} not started",
                                leg.id.as_str(),
                                leg.amount.to_string()
                            ),
                        }
                    }
                }
            }
            println!("{} withdrawal(s) in review", items.len());
            Ok(())
        }
        ReviewAction::Resolve {
            withdrawal,
            leg,
            outcome,
            reason,
        } => {
            let id = WithdrawalId::parse(&withdrawal).ok_or_else(|| err("not a withdrawal id"))?;
            let leg = LegId::parse(&leg).ok_or_else(|| err("not a leg id"))?;
            if reason.trim().is_empty() {
                return Err(err("--reason must say why"));
            }
            let conn = broker::connect(&settings.amqp, "payout-worker-review").await?;
            let publisher = Publisher::open(&conn, Duration::from_secs(30)).await?;
            let verdict = match outcome {
                Outcome::Paid => Verdict::Paid,
                Outcome::Failed => Verdict::Failed,
            };
            let channels = crate::channels::Channels::from_settings(settings).map_err(err)?;
            let event = review::resolve(
                settings, &store, &publisher, &channels, &id, &leg, verdict, &reason,
            )
            .await
            .map_err(err)?;
            match event {
                Some(e) => println!("recorded; published {} ({})", e.kind, e.id),
                None => println!("recorded; the withdrawal still has legs to settle"),
            }
            let _ = conn.close(200, "review done".into()).await;
            Ok(())
        }
    }
}
