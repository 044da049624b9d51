//! One HTTP exchange with a channel, the same for every adapter: what a transport
//! failure means for the money is decided here, once.
//!
//! - refused before anything was sent (connect error, request never built): nothing
//!   happened, so `RetryLater` (a resend with the same key is safe);
//! - anything after the request may have left (timeout, reset, unreadable body):
//!   `Unknown`, so the leg is queried before anything else.

use super::ChannelOutcome;
use reqwest::header::HeaderMap;

/// The HTTP client every adapter uses: a whole-call timeout, a shorter connect timeout
/// (a refused connect is the one failure known to have sent nothing), and no redirects
/// (a redirect would carry a signed request somewhere it was not signed for).
pub fn client(timeout_ms: u64, user_agent: &str) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_millis(timeout_ms))
        .connect_timeout(std::time::Duration::from_millis(timeout_ms.min(3000)))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(user_agent)
        .build()
}

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
