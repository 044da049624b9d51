//! The run's worker processes: this executable with `run`, configured through
//! `PAYOUT__SECTION__KEY` variables, one log file each. The pool starts, SIGKILLs,
//! SIGTERMs and restarts them, and (like a process supervisor would) restarts one that
//! exited on its own, noting it.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::process::{Child, Command};

/// How to start a worker.
#[derive(Debug, Clone)]
pub struct Launch {
    pub exe: PathBuf,
    /// `--config FILE` given to the chaos command, passed on.
    pub config: Option<PathBuf>,
    /// The environment every worker gets (its connection name is added per worker).
    pub env: Vec<(String, String)>,
    /// Connection names are `<base_name>-w<index>`.
    pub base_name: String,
    pub logs: PathBuf,
}

impl Launch {
    pub fn connection_name(&self, index: usize) -> String {
        format!("{}-w{index}", self.base_name)
    }

    pub fn log_file(&self, index: usize) -> PathBuf {
        self.logs.join(format!("worker-{index}.log"))
    }

    /// Starts worker `index` with its `/metrics` on `metrics_port`.
    fn spawn(&self, index: usize, metrics_port: u16) -> Result<Child, String> {
        let log = open_log(&self.log_file(index))?;
        let err = log.try_clone().map_err(|e| format!("worker log: {e}"))?;
        let mut cmd = Command::new(&self.exe);
        if let Some(config) = &self.config {
            cmd.arg("--config").arg(config);
        }
        cmd.arg("run")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("PAYOUT__AMQP__CONNECTION_NAME", self.connection_name(index))
            .env("PAYOUT__OPS__LISTEN", format!("127.0.0.1:{metrics_port}"))
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start worker {index} ({}): {e}", self.exe.display()))
    }
}

fn open_log(path: &Path) -> Result<std::fs::File, String> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))
}

/// One slot per worker; `None` while it is being stopped and restarted.
#[derive(Debug)]
pub struct Pool {
    launch: Launch,
    slots: Vec<Option<Child>>,
    /// The metrics port of the worker in each slot.
    ports: Vec<u16>,
    /// Workers that exited without being asked to (and were restarted).
    pub unexpected_exits: Vec<String>,
    /// Workers started, restarts included.
    pub starts: usize,
}

impl Pool {
    pub fn start(launch: Launch, workers: usize) -> Result<Self, String> {
        let mut pool = Self {
            launch,
            slots: (0..workers).map(|_| None).collect(),
            ports: vec![0; workers],
            unexpected_exits: Vec::new(),
            starts: 0,
        };
        for i in 0..workers {
            pool.restart(i)?;
        }
        Ok(pool)
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn connection_names(&self) -> Vec<String> {
        (0..self.slots.len())
            .map(|i| self.launch.connection_name(i))
            .collect()
    }

    /// Workers running now.
    pub fn running(&self) -> Vec<usize> {
        (0..self.slots.len())
            .filter(|i| self.slots[*i].is_some())
            .collect()
    }

    /// Starts a worker in slot `index` if it is empty.
    pub fn restart(&mut self, index: usize) -> Result<(), String> {
        if self.slots[index].is_none() {
            let port = super::infra::free_port()
                .map_err(|e| format!("no free port for worker {index}'s metrics: {e}"))?;
            self.slots[index] = Some(self.launch.spawn(index, port)?);
            self.ports[index] = port;
            self.starts += 1;
        }
        Ok(())
    }

    /// The metrics ports of the workers running now.
    pub fn metrics_ports(&self) -> Vec<u16> {
        self.running().into_iter().map(|i| self.ports[i]).collect()
    }

    /// The process id of the worker in slot `index`.
    pub fn pid(&self, index: usize) -> Option<u32> {
        self.slots.get(index)?.as_ref()?.id()
    }

    /// Takes the worker out of its slot (to stop it without holding the pool).
    pub fn take(&mut self, index: usize) -> Option<Child> {
        self.slots.get_mut(index)?.take()
    }

    /// Restarts every worker that exited on its own since the last look; notes each.
    pub fn supervise(&mut self, at: Duration) {
        for i in 0..self.slots.len() {
            let exited = match self.slots[i].as_mut().map(Child::try_wait) {
                Some(Ok(Some(status))) => Some(status.to_string()),
                Some(Err(e)) => Some(format!("unknown status ({e})")),
                _ => None,
            };
            if let Some(status) = exited {
                self.slots[i] = None;
                self.unexpected_exits.push(format!(
                    "worker {i} exited by itself at {:.1}s ({status}); restarted (log: {})",
                    at.as_secs_f64(),
                    self.launch.log_file(i).display()
                ));
                if let Err(e) = self.restart(i) {
                    self.unexpected_exits.push(e);
                }
            }
        }
    }
}

/// SIGKILL, then reap.
pub async fn kill(child: &mut Child) {
    let _ = child.kill().await;
}

/// SIGTERM, then wait up to `patience` for the exit (SIGKILL after that). Returns the
/// exit status, `None` if it had to be killed.
pub async fn terminate(child: &mut Child, patience: Duration) -> Option<ExitStatus> {
    if let Some(pid) = child.id() {
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await;
    }
    match tokio::time::timeout(patience, child.wait()).await {
        Ok(Ok(status)) => Some(status),
        _ => {
            kill(child).await;
            None
        }
    }
}
