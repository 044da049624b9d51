//! Secret handling of the real binary.

use std::process::Command;
use std::time::Duration;

/// Marked as production, the worker refuses to start on the development secrets
/// compiled into the binary, names every setting still on one, and prints none of them.
#[test]
fn production_refuses_development_secrets() {
    let child = Command::new(env!("CARGO_BIN_EXE_payout-worker"))
        .arg("run")
        .env("PAYOUT_ENV", "production")
        .env("PAYOUT__OPS__LISTEN", "")
        .env_remove("PAYOUT_HMAC_KEYS")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the worker");
    // It must refuse before connecting to anything: a worker that starts consuming
    // instead never exits by itself.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    let out = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the worker started with development secrets in production")
        .unwrap();
    assert!(!out.status.success());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("development secrets"), "{text}");
    for key in [
        "auth.hmac_keys",
        "channels.alipay.app_private_key_file",
        "channels.bank.gateway_public_key_file",
    ] {
        assert!(text.contains(key), "{key} not named: {text}");
    }
    assert!(!text.contains("dev-secret-do-not-use"), "{text}");
    assert!(!text.contains("PRIVATE KEY"), "{text}");
}
