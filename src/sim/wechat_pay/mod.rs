//! The simulator's WeChat Pay API v3 side. (Being built.)

use super::Sim;
use crate::config::SimSettings;
use axum::Router;
use std::sync::Arc;

#[derive(Debug)]
pub struct WechatSim {}

impl WechatSim {
    pub fn from_settings(_s: &SimSettings) -> Result<Self, String> {
        Ok(Self {})
    }
}

/// This channel's HTTP routes.
pub fn routes() -> Router<Arc<Sim>> {
    Router::new()
}
