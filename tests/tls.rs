//! The worker over TLS on loopback, with certificates made by `openssl` in this test's
//! own directory: `amqps://` through a `stunnel4` TLS terminator in front of the
//! machine's RabbitMQ (on this test's own vhost), `rediss://` to a redis-server of this
//! test's own that listens only on its `--tls-port`. Both servers demand a client
//! certificate signed by the test CA. The machine's shared services are not touched.
//!
//! Needs `stunnel4` (Debian package; `.ci/run` installs it).

mod common;

use common::*;
use payout_worker::broker;
use payout_worker::config::TlsSettings;
use payout_worker::store::Store;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

fn openssl(dir: &Path, args: &[&str]) {
    run_ok(Command::new("openssl").args(args).current_dir(dir));
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by it;
/// and a second, unrelated CA.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn make(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(unique(tag));
        std::fs::create_dir_all(&dir).unwrap();
        let key = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        for ca in ["ca", "other-ca"] {
            let (k, c, s) = (
                format!("{ca}.key"),
                format!("{ca}.pem"),
                format!("/CN=test {ca}"),
            );
            let mut args = vec!["req", "-x509"];
            args.extend(key);
            args.extend(["-keyout", &k, "-out", &c, "-days", "2", "-subj", &s]);
            openssl(&dir, &args);
        }
        std::fs::write(dir.join("server.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
        std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
        for who in ["server", "client"] {
            let (k, r, c, e, s) = (
                format!("{who}.key"),
                format!("{who}.csr"),
                format!("{who}.pem"),
                format!("{who}.ext"),
                format!("/CN=payout-{who}"),
            );
            let mut args = vec!["req"];
            args.extend(key);
            args.extend(["-keyout", &k, "-out", &r, "-subj", &s]);
            openssl(&dir, &args);
            openssl(
                &dir,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &r,
                    "-CA",
                    "ca.pem",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-out",
                    &c,
                    "-days",
                    "2",
                    "-extfile",
                    &e,
                ],
            );
        }
        Self { dir }
    }

    fn path(&self, file: &str) -> String {
        self.dir.join(file).to_string_lossy().into_owned()
    }

    /// What the worker is configured with: the test CA and the client certificate.
    fn client(&self) -> TlsSettings {
        TlsSettings {
            ca_file: self.path("ca.pem"),
            client_cert_file: self.path("client.pem"),
            client_key_file: self.path("client.key"),
        }
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// stunnel4 accepting TLS on a free port (client certificate required) and forwarding
/// to the machine's RabbitMQ; killed on drop.
struct Stunnel {
    port: u16,
    child: Child,
}

impl Stunnel {
    fn start(pki: &Pki) -> Self {
        let port = free_port();
        let conf = pki.dir.join("stunnel.conf");
        std::fs::write(
            &conf,
            format!(
                "foreground = yes\npid =\n\n[amqps]\naccept = 127.0.0.1:{port}\n\
                 connect = 127.0.0.1:5672\ncert = {}\nkey = {}\nCAfile = {}\n\
                 requireCert = yes\nverifyChain = yes\n",
                pki.path("server.pem"),
                pki.path("server.key"),
                pki.path("ca.pem"),
            ),
        )
        .unwrap();
        let tunnel = Self {
            port,
            child: Command::new("stunnel4")
                .arg(&conf)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("stunnel4 is installed (Debian package stunnel4)"),
        };
        wait_listening(port, "stunnel4");
        tunnel
    }
}

impl Drop for Stunnel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tls_redis(pki: &Pki) -> OwnRedis {
    OwnRedis::start_with(|port| {
        [
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--tls-cert-file",
            &pki.path("server.pem"),
            "--tls-key-file",
            &pki.path("server.key"),
            "--tls-ca-cert-file",
            &pki.path("ca.pem"),
            "--tls-auth-clients",
            "yes",
        ]
        .map(String::from)
        .to_vec()
    })
}

#[tokio::test]
async fn the_worker_pays_over_amqps_and_rediss_and_refuses_servers_it_cannot_verify() {
    let pki = Pki::make("tls-pki");
    let stunnel = Stunnel::start(&pki);
    let redis = tls_redis(&pki);
    let mut app = TestApp::spawn(
        "tls",
        Options {
            own_vhost: true,
            ..Options::default()
        },
    )
    .await;
    let vhost = app.vhost.clone().expect("own vhost");

    let mut amqp = app.settings.amqp.clone();
    amqp.url = format!("amqps://guest:guest@127.0.0.1:{}/{vhost}", stunnel.port).into();
    amqp.tls = pki.client();
    amqp.connect_timeout_ms = 5000;
    let mut store = app.settings.redis.clone();
    store.urls = vec![format!("rediss://127.0.0.1:{}", redis.port).into()];
    store.tls = pki.client();

    // What cannot be verified, or does not verify us, is refused, each side.
    let mut other_ca = pki.client();
    other_ca.ca_file = pki.path("other-ca.pem");
    let no_client_cert = TlsSettings {
        ca_file: pki.path("ca.pem"),
        ..TlsSettings::default()
    };
    for tls in [other_ca, no_client_cert] {
        let mut a = amqp.clone();
        a.tls = tls.clone();
        assert!(
            broker::connect(&a, &unique("tls-refused")).await.is_err(),
            "RabbitMQ connection accepted with {tls:?}"
        );
        let mut r = store.clone();
        r.tls = tls.clone();
        let refused = match Store::connect(&r).await {
            Err(_) => true,
            Ok(s) => s.ping().await.is_err(),
        };
        assert!(refused, "Redis connection accepted with {tls:?}");
    }
    // Neither server speaks plain text.
    let mut plain = store.clone();
    plain.urls = vec![format!("redis://127.0.0.1:{}", redis.port).into()];
    plain.tls = TlsSettings::default();
    let plain_refused = match Store::connect(&plain).await {
        Err(_) => true,
        Ok(s) => s.ping().await.is_err(),
    };
    assert!(plain_refused, "Redis answered in plain text");

    // The worker, configured with the CA and its client certificate, pays through both.
    app.settings.amqp = amqp;
    app.settings.redis = store;
    app.settings.validate().expect("TLS settings validate");
    app.start_worker();
    let ids = app.pays_transfers("tls", 3).await;
    // Its records are in the TLS-only Redis.
    let s = Store::connect(&app.settings.redis).await.unwrap();
    for id in &ids {
        let id = payout_worker::domain::WithdrawalId::parse(id).unwrap();
        let record = s.load(&id).await.unwrap();
        assert!(
            record.is_some_and(|r| r.outcome.is_some()),
            "{id:?} has no outcome in the TLS Redis"
        );
    }
    app.stop_workers().await;
    app.teardown().await;
}
