//! Bank payout gateway transport: builds the JSON request, signs method, path and exact
//! body with our client key, sends it with a timeout, verifies the gateway's signature
//! on the answer and hands it to the classification table in `protocol.rs`.
//!
//! Payments are asynchronous (ISO 20022 style): `POST {base}/payments` is acknowledged
//! (`ACTC`), then `GET {base}/payments/{end_to_end_id}` reports progress until `ACSC`
//! (settled) or `RJCT`. The end_to_end_id is the leg's idempotency key, unchanged on
//! every attempt and query. One adapter serves both bank routes: a credit transfer to a
//! bank card and the return of an online-banking top-up to the account it came from.

pub mod protocol;
pub mod sign;

use super::rsa::{off_runtime, RsaSigner, RsaVerifier};
use super::{ChannelOutcome, ChannelSetupError, PayoutOrder};
use crate::channels::alipay::read_key_or_dev;
use crate::config::BankSettings;
use crate::domain::AccountNo;
use protocol::{Call, PaymentInitiation};
use reqwest::{Method, Url};

pub const DEV_CLIENT_PRIVATE_KEY: &str =
    include_str!("../../../config/dev-keys/bank_client_private.pem");
pub const DEV_CLIENT_PUBLIC_KEY: &str =
    include_str!("../../../config/dev-keys/bank_client_public.pem");
pub const DEV_GATEWAY_PRIVATE_KEY: &str =
    include_str!("../../../config/dev-keys/bank_gateway_private.pem");
pub const DEV_GATEWAY_PUBLIC_KEY: &str =
    include_str!("../../../config/dev-keys/bank_gateway_public.pem");

/// `Debug` shows no key material and only a masked debtor account.
#[derive(Debug)]
pub struct BankClient {
    http: reqwest::Client,
    /// `base_url`, parsed once: every request path is its path plus ours, and that full
    /// path is what gets signed.
    base: Url,
    debtor_account: AccountNo,
    key_id: String,
    client_key: RsaSigner,
    gateway_key: RsaVerifier,
}

impl BankClient {
    pub fn from_settings(s: &BankSettings) -> Result<Self, ChannelSetupError> {
        let bad = |message: String| ChannelSetupError::Invalid {
            channel: "bank",
            message,
        };
        super::http::check_endpoint(&s.base_url, "channels.bank.base_url").map_err(bad)?;
        let base = Url::parse(&s.base_url).map_err(|e| bad(format!("base_url: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") || base.query().is_some() {
            // A query string would sit outside the signed path.
            return Err(bad("base_url must be an http(s) URL without a query".into()));
        }
        let debtor_account = AccountNo::parse(&s.debtor_account)
            .ok_or_else(|| bad("debtor_account is not an account number".into()))?;
        if s.key_id.trim().is_empty() || reqwest::header::HeaderValue::from_str(&s.key_id).is_err()
        {
            return Err(bad("key_id must be a non-empty header value".into()));
        }
        let client_pem = read_key_or_dev(
            &s.client_private_key_file,
            DEV_CLIENT_PRIVATE_KEY,
            "bank client private key",
        )
        .map_err(bad)?;
        let gateway_pem = read_key_or_dev(
            &s.gateway_public_key_file,
            DEV_GATEWAY_PUBLIC_KEY,
            "bank gateway public key",
        )
        .map_err(bad)?;
        let http = super::http::client(
            s.timeout_ms,
            concat!("payout-worker/", env!("CARGO_PKG_VERSION")),
        )
        .map_err(|e| bad(e.to_string()))?;
        Ok(Self {
            http,
            base,
            debtor_account,
            key_id: s.key_id.clone(),
            client_key: RsaSigner::from_pem(&client_pem)
                .map_err(|e| bad(format!("client_private_key_file: {e}")))?,
            gateway_key: RsaVerifier::from_pem(&gateway_pem)
                .map_err(|e| bad(format!("gateway_public_key_file: {e}")))?,
        })
    }

    /// Initiates the payment (or repeats it, with the same end_to_end_id).
    pub async fn pay(&self, order: &PayoutOrder) -> ChannelOutcome {
        let request = PaymentInitiation::for_order(order, self.debtor_account.expose());
        let body = serde_json::to_vec(&request).expect("string fields always serialise");
        self.exchange(
            Method::POST,
            protocol::PAYMENTS_PATH,
            body,
            Call::Initiation,
            order,
        )
        .await
    }

    /// Reads the payment's status report.
    pub async fn query(&self, order: &PayoutOrder) -> ChannelOutcome {
        let path = protocol::status_path(order.key.as_str());
        self.exchange(Method::GET, &path, Vec::new(), Call::StatusQuery, order)
            .await
    }

    fn url(&self, path: &str) -> Url {
        let mut url = self.base.clone();
        url.set_path(&format!("{}{path}", self.base.path().trim_end_matches('/')));
        url
    }

    async fn exchange(
        &self,
        method: Method,
        path: &str,
        body: Vec<u8>,
        call: Call,
        order: &PayoutOrder,
    ) -> ChannelOutcome {
        let url = self.url(path);
        // Sign the path exactly as it goes on the wire (after any percent-encoding).
        let signed_path = url.path().to_owned();
        let signature = {
            let (key, verb, path, body) = (
                self.client_key.clone(),
                method.clone(),
                signed_path.clone(),
                body.clone(),
            );
            off_runtime(move || sign::sign_request(&key, verb.as_str(), &path, &body)).await
        };
        let mut request = self
            .http
            .request(method, url)
            .header(sign::KEY_ID_HEADER, &self.key_id)
            .header(sign::SIGNATURE_HEADER, signature);
        if !body.is_empty() {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        let (status, outcome) = match super::http::exchange("the bank gateway", request).await {
            Ok(answer) => {
                let signature = answer
                    .headers
                    .get(sign::SIGNATURE_HEADER)
                    .and_then(|v| v.to_str().ok());
                (
                    answer.status,
                    read_answer(
                        &self.gateway_key,
                        call,
                        order.key.as_str(),
                        &signed_path,
                        answer.status,
                        signature,
                        &answer.body,
                    ),
                )
            }
            Err(outcome) => (0, outcome),
        };
        // Key and status only: account data and signatures stay out of the log.
        tracing::debug!(channel = "bank", call = ?call, key = %order.key, http = status,
            outcome = ?outcome, "bank gateway answered");
        outcome
    }
}

/// Everything after the bytes arrived, with no I/O: the status, the gateway's signature
/// over status, request path and body, then the table. An answer we cannot verify tells
/// us nothing, so it is unknown (query again), never a failure.
pub fn read_answer(
    gateway_key: &RsaVerifier,
    call: Call,
    end_to_end_id: &str,
    path: &str,
    status: u16,
    signature: Option<&str>,
    body: &[u8],
) -> ChannelOutcome {
    // A 5xx (often from a proxy, unsigned) may come after the money moved.
    if (500..=599).contains(&status) {
        return ChannelOutcome::Unknown {
            reason: format!("bank gateway answered HTTP {status}"),
        };
    }
    let Some(signature) = signature else {
        return ChannelOutcome::Unknown {
            reason: format!("bank gateway answer (HTTP {status}) is not signed"),
        };
    };
    if !sign::verify_response(gateway_key, status, path, body, signature) {
        return ChannelOutcome::Unknown {
            reason: format!("bank gateway answer (HTTP {status}) signature does not verify"),
        };
    }
    protocol::classify(call, status, body, end_to_end_id)
}

#[cfg(test)]
mod tests;
