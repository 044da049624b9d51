//! One HTTP exchange with a channel, the same for every adapter: what a transport
//! failure means for the money is decided here, once.
//!
//! - refused before anything was sent (connect error, request never built): nothing
//!   happened, so `RetryLater` (a resend with the same key is safe);
//! - anything after the request may have left (timeout, reset, unreadable body):
//!   `Unknown`, so the leg is queried before anything else.

use super::ChannelOutcome;
use reqwest::header::HeaderMap;

/// What came back: the status, the headers and the exact body bytes (signatures cover
/// the bytes, so they are never re-read as text first).
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// Sends `request` and reads the whole answer; `Err` is the outcome of a failed exchange.
pub async fn exchange(
    channel: &str,
    request: reqwest::RequestBuilder,
) -> Result<Answer, ChannelOutcome> {
    let response = match request.send().await {
        Ok(r) => r,
        Err(e) if e.is_connect() || e.is_builder() => {
            return Err(ChannelOutcome::RetryLater {
                reason: format!("cannot connect to {channel}: {e}"),
            })
        }
        Err(e) => {
            return Err(ChannelOutcome::Unknown {
                reason: format!("{channel} call did not complete: {e}"),
            })
        }
    };
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    match response.bytes().await {
        Ok(body) => Ok(Answer {
            status,
            headers,
            body: body.to_vec(),
        }),
        Err(e) => Err(ChannelOutcome::Unknown {
            reason: format!("{channel} answer unreadable: {e}"),
        }),
    }
}
