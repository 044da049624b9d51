//! UnionPay gateway transport. (Being built: answers `RetryLater` until the adapter lands.)

use super::{ChannelOutcome, ChannelSetupError, PayoutOrder};
use crate::config::UnionpaySettings;

#[derive(Debug)]
pub struct UnionpayClient {}

impl UnionpayClient {
    pub fn from_settings(_s: &UnionpaySettings) -> Result<Self, ChannelSetupError> {
        Ok(Self {})
    }

    pub async fn pay(&self, _order: &PayoutOrder) -> ChannelOutcome {
        ChannelOutcome::RetryLater { reason: "UnionPay gateway adapter not built yet".into() }
    }

    pub async fn query(&self, _order: &PayoutOrder) -> ChannelOutcome {
        ChannelOutcome::RetryLater { reason: "UnionPay gateway adapter not built yet".into() }
    }
}
