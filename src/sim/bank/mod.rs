//! The simulator's Bank payout gateway side. (Being built.)

use super::Sim;
use crate::config::SimSettings;
use axum::Router;
use std::sync::Arc;

#[derive(Debug)]
pub struct BankSim {}

impl BankSim {
    pub fn from_settings(_s: &SimSettings) -> Result<Self, String> {
        Ok(Self {})
    }
}

/// This channel's HTTP routes.
pub fn routes() -> Router<Arc<Sim>> {
    Router::new()
}
