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

/// Hosts besides loopback that may be reached over plain HTTP (comma-separated), for a
/// simulator in another container (`docker-compose.yml`); ignored in production.
pub const PLAIN_HTTP_HOSTS_VAR: &str = "PAYOUT_PLAIN_HTTP_HOSTS";

/// Checks a channel endpoint: HTTPS (certificates verified by rustls against the
/// platform's roots), or plain HTTP only to a loopback address — the simulator on this
/// machine — or a host named in [`PLAIN_HTTP_HOSTS_VAR`] outside production, and then
/// with a warning. `setting` names the configuration key.
pub fn check_endpoint(url: &str, setting: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("{setting}: {url:?}: {e}"))?;
    let production = std::env::var(crate::config::ENVIRONMENT_VAR)
        .is_ok_and(|e| e.trim().eq_ignore_ascii_case("production"));
    let allowed = std::env::var(PLAIN_HTTP_HOSTS_VAR).unwrap_or_default();
    let named = !production
        && parsed
            .host_str()
            .is_some_and(|h| allowed.split(',').any(|a| a.trim() == h));
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(&parsed) || named => {
            tracing::warn!(
                %setting,
                "plain HTTP to a loopback channel endpoint (the simulator): never in production"
            );
            Ok(())
        }
        "http" => Err(format!(
            "{setting}: {url:?} is plain HTTP to a host that is not loopback; channel endpoints must be https://"
        )),
        other => Err(format!("{setting}: {url:?}: scheme {other:?} is not https")),
    }
}

fn is_loopback(url: &reqwest::Url) -> bool {
    url.host_str().is_some_and(crate::tls::is_loopback_host)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_endpoints_are_https_or_loopback_http() {
        assert!(check_endpoint("https://openapi.alipay.com/gateway.do", "k").is_ok());
        assert!(check_endpoint("http://127.0.0.1:8700/gateway.do", "k").is_ok());
        assert!(check_endpoint("http://[::1]:8700/bank", "k").is_ok());
        assert!(check_endpoint("http://localhost:8700", "k").is_ok());
        let e = check_endpoint(
            "http://api.mch.weixin.qq.com",
            "channels.wechat_pay.base_url",
        )
        .unwrap_err();
        assert!(
            e.contains("channels.wechat_pay.base_url") && e.contains("https"),
            "{e}"
        );
        assert!(check_endpoint("http://10.0.0.8/bank", "k").is_err());
        assert!(check_endpoint("http://127.0.0.1.evil.example/", "k").is_err());
        assert!(check_endpoint("ftp://127.0.0.1/", "k").is_err());
        assert!(check_endpoint("not a url", "k").is_err());
    }
}
