//! The worker under least privilege, as the README documents it: a RabbitMQ user that
//! may only configure, write and read the worker's own exchanges and queues (plus the
//! default exchange, for the delay queues), and a Redis ACL user limited to the worker's
//! key prefix and the commands it and its scripts use. Both are created on this test's
//! own vhost and own redis-server; the restrictions are shown to bite before the worker
//! is shown to pay through them.

mod common;

use common::*;
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;

/// The commands the worker sends and its Lua scripts call (README "Least privilege").
pub const REDIS_COMMANDS: &str = "+evalsha +eval +script|load +ping +zadd +zrange +zrem +hgetall \
     +del +expire +get +hexists +hget +hincrby +hset +hsetnx +pexpire +sadd +set +sismember \
     +hello";

fn redis_cli(port: u16, user: Option<(&str, &str)>, args: &[&str]) -> String {
    let mut cmd = std::process::Command::new("redis-cli");
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string()]);
    if let Some((u, p)) = user {
        cmd.args(["--user", u, "--pass", p, "--no-auth-warning"]);
    }
    let out = cmd.args(args).output().expect("redis-cli");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test]
async fn the_worker_pays_as_a_restricted_rabbitmq_user_and_redis_acl_user() {
    let mut app = TestApp::spawn(
        "least-privilege",
        Options {
            own_vhost: true,
            own_redis: true,
            ..Options::default()
        },
    )
    .await;
    let vhost = app.vhost.clone().expect("own vhost");
    let port = app.redis.as_ref().expect("own redis").port;

    // RabbitMQ: only the worker's own names (they share this prefix), and the default
    // exchange, which publishing to a delay queue goes through.
    let names = app
        .settings
        .topology
        .commands_exchange
        .trim_end_matches("commands")
        .replace('.', "\\.");
    let own = format!("^{names}.*");
    let (user, password) = (unique("payout-restricted"), unique("pw"));
    rabbitmqctl(&["add_user", &user, &password]);
    rabbitmqctl(&[
        "set_permissions",
        "-p",
        &vhost,
        &user,
        &own,
        &format!("{own}|^amq\\.default$"),
        &own,
    ]);
    // Redis: the key prefix and the worker's commands only.
    let prefix = app.settings.redis.key_prefix.clone();
    let acl = format!("ACL SETUSER {user} on >{password} resetkeys ~{prefix}:* resetchannels -@all {REDIS_COMMANDS}");
    let args: Vec<&str> = acl.split_whitespace().collect();
    assert_eq!(redis_cli(port, None, &args).trim(), "OK");

    // The restrictions bite.
    let creds = Some((user.as_str(), password.as_str()));
    assert!(redis_cli(port, creds, &["FLUSHALL"]).contains("NOPERM"));
    assert!(redis_cli(port, creds, &["GET", "someone-else:key"]).contains("NOPERM"));
    assert!(redis_cli(port, creds, &["KEYS", "*"]).contains("NOPERM"));
    let amqp_url = format!("amqp://{user}:{password}@127.0.0.1:5672/{vhost}");
    let restricted = lapin::Connection::connect(&amqp_url, lapin::ConnectionProperties::default())
        .await
        .expect("the restricted user logs in");
    let channel = restricted.create_channel().await.unwrap();
    let refused = channel
        .queue_declare(
            "someone-else.queue".into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await;
    assert!(refused.is_err(), "declared a queue outside its names");
    let _ = restricted.close(200, "done".into()).await;

    // The worker works through them.
    app.settings.amqp.url = amqp_url.into();
    app.settings.redis.urls = vec![format!("redis://{user}:{password}@127.0.0.1:{port}").into()];
    app.start_worker();
    app.pays_transfers("lp", 3).await;
    app.stop_workers().await;
    rabbitmqctl(&["delete_user", &user]);
    app.teardown().await;
}
