//! Alipay OpenAPI transport: builds the signed form, posts it with a timeout, verifies
//! the answer's signature and hands it to the classification table in `protocol.rs`.

pub mod protocol;
pub mod sign;

use super::rsa::{off_runtime, RsaSigner, RsaVerifier};
use super::{ChannelOutcome, ChannelSetupError, PayoutOrder, Target};
use crate::config::AlipaySettings;
use crate::domain::PayeeKind;
use protocol::{Call, GatewayResponse};
use secrecy::zeroize::Zeroizing;
use std::collections::BTreeMap;

pub const DEV_APP_PRIVATE_KEY: &str =
    include_str!("../../../config/dev-keys/alipay_app_private.pem");
pub const DEV_APP_PUBLIC_KEY: &str = include_str!("../../../config/dev-keys/alipay_app_public.pem");
pub const DEV_PLATFORM_PRIVATE_KEY: &str =
    include_str!("../../../config/dev-keys/alipay_platform_private.pem");
pub const DEV_PLATFORM_PUBLIC_KEY: &str =
    include_str!("../../../config/dev-keys/alipay_platform_public.pem");

#[derive(Debug)]
pub struct AlipayClient {
    http: reqwest::Client,
    gateway_url: String,
    app_id: String,
    app_key: RsaSigner,
    alipay_key: RsaVerifier,
}

/// Reads a PEM file, or the compiled-in development key when `path` is empty. The text
/// is wiped from memory when dropped (after parsing); `PAYOUT_ENV=production` refuses
/// the development keys before any adapter is built (`Settings::check_production`).
pub fn read_key_or_dev(
    path: &str,
    dev: &'static str,
    what: &str,
) -> Result<Zeroizing<String>, String> {
    if path.is_empty() {
        tracing::warn!(
            key = what,
            "using the DEVELOPMENT key compiled into the binary: never in production"
        );
        return Ok(Zeroizing::new(dev.to_owned()));
    }
    std::fs::read_to_string(path)
        .map(Zeroizing::new)
        .map_err(|e| format!("cannot read {what} from {path}: {e}"))
}

impl AlipayClient {
    pub fn from_settings(s: &AlipaySettings) -> Result<Self, ChannelSetupError> {
        let bad = |message: String| ChannelSetupError::Invalid {
            channel: "alipay",
            message,
        };
        super::http::check_endpoint(&s.gateway_url, "channels.alipay.gateway_url").map_err(bad)?;
        let app_pem = read_key_or_dev(
            &s.app_private_key_file,
            DEV_APP_PRIVATE_KEY,
            "alipay app private key",
        )
        .map_err(bad)?;
        let ali_pem = read_key_or_dev(
            &s.alipay_public_key_file,
            DEV_PLATFORM_PUBLIC_KEY,
            "alipay public key",
        )
        .map_err(bad)?;
        let http = super::http::client(
            s.timeout_ms,
            concat!("payout-worker/", env!("CARGO_PKG_VERSION")),
        )
        .map_err(|e| bad(e.to_string()))?;
        Ok(Self {
            http,
            gateway_url: s.gateway_url.clone(),
            app_id: s.app_id.clone(),
            app_key: RsaSigner::from_pem(&app_pem)
                .map_err(|e| bad(format!("app_private_key_file: {e}")))?,
            alipay_key: RsaVerifier::from_pem(&ali_pem)
                .map_err(|e| bad(format!("alipay_public_key_file: {e}")))?,
        })
    }

    pub async fn pay(&self, order: &PayoutOrder) -> ChannelOutcome {
        match &order.target {
            Target::Refund { channel_txn_id, .. } => {
                let biz = protocol::RefundBiz {
                    trade_no: channel_txn_id.clone(),
                    refund_amount: order.amount.to_yuan_string(),
                    out_request_no: order.key.to_string(),
                    refund_reason: order.memo.clone(),
                };
                self.call(protocol::REFUND, Call::Refund, &biz).await
            }
            Target::Account(payee) => {
                let biz = protocol::TransferBiz {
                    out_biz_no: order.key.to_string(),
                    trans_amount: order.amount.to_yuan_string(),
                    product_code: protocol::PRODUCT_CODE.into(),
                    biz_scene: protocol::BIZ_SCENE.into(),
                    order_title: order.memo.clone(),
                    payee_info: protocol::PayeeInfo {
                        identity: payee.account_no.expose().to_owned(),
                        identity_type: match payee.kind {
                            PayeeKind::Alipay => "ALIPAY_LOGON_ID".into(),
                            PayeeKind::BankCard => "BANKCARD_ACCOUNT".into(),
                        },
                        name: payee.name.expose().to_owned(),
                    },
                };
                self.call(protocol::TRANSFER, Call::Transfer, &biz).await
            }
        }
    }

    pub async fn query(&self, order: &PayoutOrder) -> ChannelOutcome {
        match &order.target {
            Target::Refund { channel_txn_id, .. } => {
                let biz = protocol::RefundQueryBiz {
                    trade_no: channel_txn_id.clone(),
                    out_request_no: order.key.to_string(),
                };
                self.call(protocol::REFUND_QUERY, Call::RefundQuery, &biz)
                    .await
            }
            Target::Account(_) => {
                let biz = protocol::TransferQueryBiz {
                    out_biz_no: order.key.to_string(),
                    product_code: protocol::PRODUCT_CODE.into(),
                    biz_scene: protocol::BIZ_SCENE.into(),
                };
                self.call(protocol::TRANSFER_QUERY, Call::TransferQuery, &biz)
                    .await
            }
        }
    }

    async fn signed_params(
        &self,
        method: &str,
        biz: &impl serde::Serialize,
    ) -> BTreeMap<String, String> {
        let mut params: BTreeMap<String, String> = [
            ("app_id", self.app_id.clone()),
            ("method", method.to_owned()),
            ("format", "JSON".to_owned()),
            ("charset", "utf-8".to_owned()),
            ("sign_type", "RSA2".to_owned()),
            (
                "timestamp",
                chrono::Utc::now()
                    .with_timezone(
                        &chrono::FixedOffset::east_opt(8 * 3600).expect("UTC+8 is valid"),
                    )
                    .format("%Y-%m-%d %H:%M:%S")
                    .to_string(),
            ),
            ("version", "1.0".to_owned()),
            (
                "biz_content",
                serde_json::to_string(biz).expect("biz content serialises"),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let key = self.app_key.clone();
        off_runtime(move || {
            sign::sign_request(&mut params, &key);
            params
        })
        .await
    }

    async fn call(&self, method: &str, call: Call, biz: &impl serde::Serialize) -> ChannelOutcome {
        let params = self.signed_params(method, biz).await;
        let form = serde_urlencoded::to_string(&params).expect("string pairs always encode");
        let request = self
            .http
            .post(&self.gateway_url)
            .header(
                "content-type",
                "application/x-www-form-urlencoded;charset=utf-8",
            )
            .body(form);
        let answer = match super::http::exchange("Alipay", request).await {
            Ok(a) => a,
            Err(outcome) => return outcome,
        };
        if !(200..300).contains(&answer.status) {
            return ChannelOutcome::Unknown {
                reason: format!("Alipay answered HTTP {}", answer.status),
            };
        }
        let Ok(body) = String::from_utf8(answer.body) else {
            return ChannelOutcome::Unknown {
                reason: "Alipay response is not UTF-8".into(),
            };
        };
        let verified = match sign::verify_response(&body, method, &self.alipay_key) {
            Ok(v) => v,
            Err(e) => {
                return ChannelOutcome::Unknown {
                    reason: format!("Alipay response rejected: {e}"),
                }
            }
        };
        match serde_json::from_str::<GatewayResponse>(&verified.inner) {
            Ok(r) => protocol::classify(call, &r),
            Err(e) => ChannelOutcome::Unknown {
                reason: format!("Alipay response has an unexpected shape: {e}"),
            },
        }
    }
}
