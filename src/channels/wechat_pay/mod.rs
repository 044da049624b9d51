//! WeChat Pay API v3 transport. (Being built: answers `RetryLater` until the adapter lands.)

use super::{ChannelOutcome, ChannelSetupError, PayoutOrder};
use crate::config::WechatPaySettings;

#[derive(Debug)]
pub struct WechatPayClient {}

impl WechatPayClient {
    pub fn from_settings(_s: &WechatPaySettings) -> Result<Self, ChannelSetupError> {
        Ok(Self {})
    }

    pub async fn pay(&self, _order: &PayoutOrder) -> ChannelOutcome {
        ChannelOutcome::RetryLater { reason: "WeChat Pay API v3 adapter not built yet".into() }
    }

    pub async fn query(&self, _order: &PayoutOrder) -> ChannelOutcome {
        ChannelOutcome::RetryLater { reason: "WeChat Pay API v3 adapter not built yet".into() }
    }
}
