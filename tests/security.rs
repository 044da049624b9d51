//! Secret handling of the real binary.

use std::process::Command;
use std::time::Duration;

/// Starts `payout-worker run` with `env` and returns its output once it exits by
/// itself: it must refuse before connecting to anything, since a worker that starts
/// consuming never exits on its own.
fn refused_start(env: &[(&str, &str)]) -> std::process::Output {
    let child = Command::new(env!("CARGO_BIN_EXE_payout-worker"))
        .arg("run")
        .env("PAYOUT__OPS__LISTEN", "")
        .env_remove("PAYOUT_HMAC_KEYS")
        .env_remove("PAYOUT_PLAIN_HTTP_HOSTS")
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the worker");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    rx.recv_timeout(Duration::from_secs(30))
        .expect("the worker started instead of refusing")
        .unwrap()
}

/// Marked as production, the worker refuses to start on the development secrets
/// compiled into the binary, names every setting still on one, and prints none of them.
#[test]
fn production_refuses_development_secrets() {
    let out = refused_start(&[("PAYOUT_ENV", "production")]);
    assert!(!out.status.success());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("development secrets"), "{text}");
    for key in [
        "auth.hmac_keys",
        "auth.worker_keys",
        "channels.alipay.app_private_key_file",
        "channels.bank.gateway_public_key_file",
    ] {
        assert!(text.contains(key), "{key} not named: {text}");
    }
    assert!(!text.contains("dev-secret-do-not-use"), "{text}");
    assert!(!text.contains("dev-worker-secret"), "{text}");
    assert!(!text.contains("PRIVATE KEY"), "{text}");
}

/// A channel endpoint over plain HTTP to a host that is not loopback stops the worker at
/// start, naming the setting; https and the loopback simulator are accepted.
#[test]
fn plain_http_to_a_remote_channel_is_refused() {
    let out = refused_start(&[(
        "PAYOUT__CHANNELS__BANK__BASE_URL",
        "http://bank-gateway.example.net/bank",
    )]);
    assert!(!out.status.success());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("channels.bank.base_url"), "{text}");
    assert!(text.contains("https://"), "{text}");
}
