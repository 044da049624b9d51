//! TLS to RabbitMQ (`amqps://`) and Redis (`rediss://`), both with rustls (the `ring`
//! provider, as for the channels): the server's certificate is verified against the
//! system's roots plus, if configured, a CA file; a client certificate and key may be
//! given for mutual TLS. The files are checked at start, so a bad path or a file that is
//! not PEM stops the worker with the setting named; RabbitMQ's are read again at every
//! reconnection (a renewed certificate needs no restart), Redis's when the store connects
//! (redis-rs keeps them for its own reconnections).
//!
//! Plain `amqp://` / `redis://` is meant for a server on this machine: to any other host
//! it logs a warning, and under `PAYOUT_ENV=production` it stops the worker.

use crate::config::TlsSettings;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use secrecy::zeroize::Zeroizing;

/// What the files named in one `TlsSettings` hold.
struct Material {
    /// PEM, one or more CA certificates.
    ca: Option<Vec<u8>>,
    /// PEM certificate chain and PEM private key.
    client: Option<(Vec<u8>, Zeroizing<Vec<u8>>)>,
}

fn read(path: &str, setting: &str) -> Result<Zeroizing<Vec<u8>>, String> {
    std::fs::read(path)
        .map(Zeroizing::new)
        .map_err(|e| format!("{setting}: cannot read {path:?}: {e}"))
}

fn certificates(pem: &[u8], setting: &str) -> Result<(), String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{setting}: not PEM certificates: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{setting}: holds no PEM certificate"));
    }
    Ok(())
}

impl Material {
    /// Reads and checks the files; `section` is `amqp.tls` or `redis.tls`.
    fn load(s: &TlsSettings, section: &str) -> Result<Self, String> {
        let ca = match s.ca_file.trim() {
            "" => None,
            path => {
                let setting = format!("{section}.ca_file");
                let pem = read(path, &setting)?;
                certificates(&pem, &setting)?;
                Some(pem.to_vec())
            }
        };
        let client = match (s.client_cert_file.trim(), s.client_key_file.trim()) {
            ("", "") => None,
            ("", _) | (_, "") => {
                return Err(format!(
                    "{section}.client_cert_file and {section}.client_key_file: give both or neither"
                ))
            }
            (cert, key) => {
                let cert_setting = format!("{section}.client_cert_file");
                let cert_pem = read(cert, &cert_setting)?;
                certificates(&cert_pem, &cert_setting)?;
                let key_setting = format!("{section}.client_key_file");
                let key_pem = read(key, &key_setting)?;
                // The parsed copy is dropped at once; only the PEM text goes on.
                PrivateKeyDer::from_pem_slice(&key_pem)
                    .map_err(|e| format!("{key_setting}: not a PEM private key: {e}"))?;
                Some((cert_pem.to_vec(), key_pem))
            }
        };
        Ok(Self { ca, client })
    }
}

impl TlsSettings {
    /// True when no file is named (TLS, if the URL asks for it, then uses the system's
    /// roots and no client certificate).
    pub fn is_empty(&self) -> bool {
        [&self.ca_file, &self.client_cert_file, &self.client_key_file]
            .iter()
            .all(|f| f.trim().is_empty())
    }

    /// Reads and checks the files, for validation at start.
    pub fn check(&self, section: &str) -> Result<(), String> {
        Material::load(self, section).map(drop)
    }

    /// The configuration lapin takes for an `amqps://` URL (ignored for `amqp://`).
    ///
    /// lapin and its TLS layer take the key as a plain `Vec<u8>` and do not wipe it; our
    /// own copy is wiped, theirs lives as long as the connection's reconnect closure.
    pub fn for_amqp(&self) -> Result<lapin::tcp::OwnedTLSConfig, String> {
        let m = Material::load(self, "amqp.tls")?;
        Ok(lapin::tcp::OwnedTLSConfig {
            identity: m.client.map(|(pem, key)| lapin::tcp::OwnedIdentity::PKCS8 {
                pem,
                key: key.to_vec(),
            }),
            cert_chain: m.ca.map(|pem| String::from_utf8_lossy(&pem).into_owned()),
        })
    }

    /// The certificates redis-rs takes for `rediss://` URLs. With a CA file, only that
    /// CA is trusted (redis-rs replaces the system's roots with it).
    pub fn for_redis(&self) -> Result<redis::TlsCertificates, String> {
        let m = Material::load(self, "redis.tls")?;
        Ok(redis::TlsCertificates {
            client_tls: m.client.map(|(client_cert, key)| redis::ClientTlsConfig {
                client_cert,
                client_key: key.to_vec(),
            }),
            root_cert: m.ca,
        })
    }
}

/// True for `localhost` and loopback addresses (bracketed IPv6 included).
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The host of a plain-text `amqp://` or `redis://` URL that is not loopback, if it is
/// one: traffic (and the password in the URL) would cross a network unencrypted.
pub fn plaintext_remote_host(url: &str) -> Option<String> {
    let parsed = reqwest::Url::parse(url).ok()?;
    if !matches!(parsed.scheme(), "amqp" | "redis") {
        return None;
    }
    let host = parsed.host_str().unwrap_or("localhost");
    (!is_loopback_host(host)).then(|| host.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn settings(ca: &str, cert: &str, key: &str) -> TlsSettings {
        TlsSettings {
            ca_file: ca.into(),
            client_cert_file: cert.into(),
            client_key_file: key.into(),
        }
    }

    const CERT: &str = "tests/fixtures/tls/ca.pem";
    const KEY: &str = "tests/fixtures/tls/ca.key";

    #[test]
    fn nothing_named_is_empty_and_valid() {
        let s = settings("", " ", "");
        assert!(s.is_empty());
        assert!(s.check("amqp.tls").is_ok());
        let amqp = s.for_amqp().unwrap();
        assert!(amqp.identity.is_none() && amqp.cert_chain.is_none());
        let redis = s.for_redis().unwrap();
        assert!(redis.client_tls.is_none() && redis.root_cert.is_none());
    }

    #[test]
    fn files_are_read_and_checked() {
        let s = settings(CERT, CERT, KEY);
        let amqp = s.for_amqp().unwrap();
        assert!(amqp.cert_chain.unwrap().contains("BEGIN CERTIFICATE"));
        assert!(matches!(
            amqp.identity,
            Some(lapin::tcp::OwnedIdentity::PKCS8 { .. })
        ));
        let redis = s.for_redis().unwrap();
        assert!(redis.root_cert.is_some() && redis.client_tls.is_some());
    }

    #[test]
    fn each_mistake_names_its_setting() {
        let cases = [
            (settings("/nonexistent/ca.pem", "", ""), "redis.tls.ca_file"),
            (settings(KEY, "", ""), "redis.tls.ca_file"),
            (settings("", CERT, ""), "redis.tls.client_cert_file"),
            (settings("", "", KEY), "redis.tls.client_key_file"),
            (settings("", KEY, KEY), "redis.tls.client_cert_file"),
            (settings("", CERT, CERT), "redis.tls.client_key_file"),
        ];
        for (s, setting) in cases {
            let e = s.check("redis.tls").unwrap_err();
            assert!(e.contains(setting), "{e} should name {setting}");
        }
    }

    #[test]
    fn plaintext_is_flagged_only_off_this_machine() {
        for (url, host) in [
            ("amqp://guest:guest@127.0.0.1:5672/%2f", None),
            ("amqp://u:p@localhost/v", None),
            ("redis://[::1]:6379", None),
            ("redis://", None),
            ("amqps://u:p@rabbit.internal/v", None),
            ("rediss://cache.internal:6380", None),
            ("amqp://u:p@rabbit.internal/v", Some("rabbit.internal")),
            ("redis://10.0.0.7:6379/0", Some("10.0.0.7")),
        ] {
            assert_eq!(plaintext_remote_host(url).as_deref(), host, "{url}");
        }
    }

    proptest! {
        #[test]
        fn loopback_v4_is_exactly_127_slash_8(a: u8, b: u8, c: u8, d: u8) {
            let host = format!("{a}.{b}.{c}.{d}");
            prop_assert_eq!(is_loopback_host(&host), a == 127);
            let url = format!("redis://{host}:6379");
            prop_assert_eq!(plaintext_remote_host(&url).is_none(), a == 127);
        }
    }
}
