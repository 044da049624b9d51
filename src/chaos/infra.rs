//! What a chaos run owns and may break: its own `redis-server` on a free port, its own
//! RabbitMQ vhost, and its own workers' broker connections. Nothing here touches
//! anything the run did not create: no shared Redis, no other vhost, no other
//! connection (never `close_all_connections`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

/// A free TCP port on 127.0.0.1 (free when asked; the caller binds it soon after).
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// `rabbitmqctl ARGS`, its standard output, or an error with its standard error.
pub async fn rabbitmqctl(args: &[&str]) -> Result<String, String> {
    let out = Command::new("rabbitmqctl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| format!("cannot run rabbitmqctl: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "rabbitmqctl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A vhost of this run's own, with full permissions for `user`; deleted at the end.
#[derive(Debug)]
pub struct OwnVhost {
    pub name: String,
}

impl OwnVhost {
    pub async fn create(name: &str, user: &str) -> Result<Self, String> {
        rabbitmqctl(&["add_vhost", name]).await?;
        let vhost = Self {
            name: name.to_owned(),
        };
        if let Err(e) = rabbitmqctl(&["set_permissions", "-p", name, user, ".*", ".*", ".*"]).await
        {
            vhost.delete().await;
            return Err(e);
        }
        Ok(vhost)
    }

    /// Deletes the vhost and everything in it (queues, exchanges, connections to it).
    pub async fn delete(&self) {
        if let Err(e) = rabbitmqctl(&["delete_vhost", &self.name]).await {
            eprintln!("chaos: could not delete vhost {}: {e}", self.name);
        }
    }

    /// Closes every connection to this vhost whose client-provided name is one of
    /// `names`. Returns how many were closed.
    pub async fn close_connections(&self, names: &[String], reason: &str) -> Result<usize, String> {
        let listing = rabbitmqctl(&[
            "list_connections",
            "pid",
            "vhost",
            "client_properties",
            "--quiet",
        ])
        .await?;
        let pids = connections_named(&listing, &self.name, names);
        let mut closed = 0;
        for pid in pids {
            // A connection may be gone by now (its worker was killed): not an error.
            if rabbitmqctl(&["close_connection", &pid, reason])
                .await
                .is_ok()
            {
                closed += 1;
            }
        }
        Ok(closed)
    }
}

/// The pids of the connections in `listing` (`pid`, `vhost`, `client_properties`,
/// tab-separated) that are on `vhost` and carry one of `names` as connection name.
pub fn connections_named(listing: &str, vhost: &str, names: &[String]) -> Vec<String> {
    let wanted: Vec<String> = names
        .iter()
        .map(|n| format!("{{\"connection_name\",\"{n}\"}}"))
        .collect();
    listing
        .lines()
        .filter_map(|line| {
            let mut cols = line.splitn(3, '\t');
            let (pid, host, props) = (cols.next()?, cols.next()?, cols.next()?);
            (host == vhost && wanted.iter().any(|w| props.contains(w.as_str())))
                .then(|| pid.to_owned())
        })
        .collect()
}

/// A redis-server of this run's own, on a free port, keeping nothing on disk.
#[derive(Debug)]
pub struct OwnRedis {
    pub port: u16,
    child: Option<Child>,
    log: PathBuf,
}

impl OwnRedis {
    pub async fn start(log: &Path) -> Result<Self, String> {
        let port = free_port().map_err(|e| format!("no free port for redis-server: {e}"))?;
        let mut r = Self {
            port,
            child: None,
            log: log.to_owned(),
        };
        r.resume().await?;
        Ok(r)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// (Re)starts the server on the same port, empty.
    pub async fn resume(&mut self) -> Result<(), String> {
        if self.child.is_some() {
            return Ok(());
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| format!("cannot open {}: {e}", self.log.display()))?;
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start redis-server: {e}"))?;
        self.child = Some(child);
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        Err(format!("redis-server on port {} did not start", self.port))
    }

    /// Stops the server at once (SIGKILL: nothing is saved, it comes back empty).
    pub async fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill().await;
        }
    }

    /// FLUSHALL on this server only.
    pub async fn flush(&self) -> Result<(), String> {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "FLUSHALL"])
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|e| format!("cannot run redis-cli: {e}"))?;
        let said = String::from_utf8_lossy(&out.stdout);
        if out.status.success() && said.trim() == "OK" {
            Ok(())
        } else {
            Err(format!("FLUSHALL on port {}: {}", self.port, said.trim()))
        }
    }
}

/// `url` with its vhost replaced by `vhost` (query parameters kept).
pub fn url_with_vhost(url: &str, vhost: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{vhost}", &base[..path_start]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_named_connections_on_our_vhost_are_picked() {
        let listing = [
            "<rabbit@h.1.100.0>\tchaos-1\t[{\"product\",\"lapin\"},{\"connection_name\",\"chaos-1-w0\"}]",
            "<rabbit@h.1.101.0>\tchaos-1\t[{\"connection_name\",\"chaos-1-w1\"}]",
            // Our harness: a longer name that starts like a worker's.
            "<rabbit@h.1.102.0>\tchaos-1\t[{\"connection_name\",\"chaos-1-w0-harness\"}]",
            // Someone else's worker with the same name, on another vhost.
            "<rabbit@h.1.103.0>\t/\t[{\"connection_name\",\"chaos-1-w0\"}]",
            "<rabbit@h.1.104.0>\tchaos-1\t[{\"connection_name\",\"payout-worker\"}]",
        ]
        .join("\n");
        let names = vec!["chaos-1-w0".to_owned(), "chaos-1-w1".to_owned()];
        assert_eq!(
            connections_named(&listing, "chaos-1", &names),
            vec!["<rabbit@h.1.100.0>", "<rabbit@h.1.101.0>"]
        );
        assert!(connections_named(&listing, "other", &names).is_empty());
    }

    #[test]
    fn the_vhost_is_replaced_in_any_url_shape() {
        assert_eq!(
            url_with_vhost("amqp://guest:guest@127.0.0.1:5672/%2f", "chaos-7"),
            "amqp://guest:guest@127.0.0.1:5672/chaos-7"
        );
        assert_eq!(
            url_with_vhost("amqp://u:p@host:5672", "v"),
            "amqp://u:p@host:5672/v"
        );
        assert_eq!(
            url_with_vhost("amqps://u:p@host/x?heartbeat=5", "v"),
            "amqps://u:p@host/v?heartbeat=5"
        );
    }
}
