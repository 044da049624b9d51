//! SIGTERM in the middle of a batch: the real binary drains, exits 0, and a restarted
//! worker finishes the rest with nothing lost and nothing paid twice.

mod common;

use common::*;
use std::collections::HashSet;

#[tokio::test]
async fn sigterm_during_a_batch_exits_zero_and_a_restart_finishes_the_rest() {
    let mut app = TestApp::spawn(
        "sigterm",
        Options {
            sim_latency_ms: 150,
            prefetch: 8,
            ..Options::default()
        },
    )
    .await;
    let mut child = spawn_binary_worker(&app.settings);
    let mut ids = HashSet::new();
    for i in 0..40 {
        let id = unique(&format!("wd-term-{i}"));
        app.publish_signed(&withdrawal(
            &id,
            vec![transfer_leg("1", "3.00", "zs@example.com")],
        ))
        .await;
        ids.insert(id);
    }
    // Mid-batch: some done, many in flight or queued.
    let (first, _) = app.terminal_events(5).await;
    let pid = child.id().expect("running").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .expect("exits after draining")
        .unwrap();
    assert!(status.success(), "exit status {status:?}");

    app.start_worker();
    let remaining = not_yet_terminal(&ids, &first);
    let rest = app.until_terminal(&remaining).await;
    let done: HashSet<String> = first
        .iter()
        .chain(rest.iter())
        .map(|e| e["subject"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(done, ids, "every withdrawal reached a terminal event");
    let ledger = app.ledger().await;
    assert_eq!(ledger.len(), 40);
    assert!(moves(&ledger).values().all(|m| *m == 1), "{ledger:?}");
    app.teardown().await;
}
