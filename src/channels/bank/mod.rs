//! Bank payout gateway transport. (Being built: answers `RetryLater` until the adapter lands.)

use super::{ChannelOutcome, ChannelSetupError, PayoutOrder};
use crate::config::BankSettings;

#[derive(Debug)]
pub struct BankClient {}

impl BankClient {
    pub fn from_settings(_s: &BankSettings) -> Result<Self, ChannelSetupError> {
        Ok(Self {})
    }

    pub async fn pay(&self, _order: &PayoutOrder) -> ChannelOutcome {
        ChannelOutcome::RetryLater { reason: "Bank payout gateway adapter not built yet".into() }
    }

    pub async fn query(&self, _order: &PayoutOrder) -> ChannelOutcome {
        ChannelOutcome::RetryLater { reason: "Bank payout gateway adapter not built yet".into() }
    }
}
