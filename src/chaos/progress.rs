//! The progress line on stderr: redrawn in place on a terminal, one plain line every
//! ten seconds otherwise (CI logs).

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// What the line shows.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub phase: &'static str,
    pub elapsed: Duration,
    pub duration: Duration,
    pub published: usize,
    pub to_publish: usize,
    /// Authentic withdrawals with a terminal event or in review.
    pub settled: usize,
    pub authentic: usize,
    pub dead: usize,
    pub bad: usize,
    pub faults_done: usize,
    pub faults_planned: usize,
    pub last_fault: Option<String>,
    pub workers_running: usize,
    pub workers: usize,
}

pub struct Progress {
    tty: bool,
    last_plain: Option<Instant>,
    drawn: bool,
}

const BAR: usize = 24;

impl Snapshot {
    pub fn line(&self) -> String {
        let filled = (self.settled * BAR)
            .checked_div(self.authentic)
            .unwrap_or(0)
            .min(BAR);
        format!(
            "[{:>4}s/{}s] {:<9} [{}{}] settled {}/{}  published {}/{}  dead {}/{}  faults {}/{}{}  workers {}/{}",
            self.elapsed.as_secs(),
            self.duration.as_secs(),
            self.phase,
            "#".repeat(filled),
            "-".repeat(BAR - filled),
            self.settled,
            self.authentic,
            self.published,
            self.to_publish,
            self.dead,
            self.bad,
            self.faults_done,
            self.faults_planned,
            self.last_fault
                .as_ref()
                .map(|f| format!(" (last: {f})"))
                .unwrap_or_default(),
            self.workers_running,
            self.workers,
        )
    }
}

impl Progress {
    pub fn new() -> Self {
        Self {
            tty: std::io::stderr().is_terminal(),
            last_plain: None,
            drawn: false,
        }
    }

    pub fn draw(&mut self, s: &Snapshot) {
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = write!(err, "\r\x1b[2K{}", s.line());
            self.drawn = true;
        } else if self
            .last_plain
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(10))
        {
            let _ = writeln!(err, "{}", s.line());
            self.last_plain = Some(Instant::now());
        }
        let _ = err.flush();
    }

    /// Ends the redrawn line.
    pub fn finish(&mut self) {
        if self.drawn {
            let _ = writeln!(std::io::stderr());
            self.drawn = false;
        }
    }
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_shows_the_counts_and_a_bar() {
        let s = Snapshot {
            phase: "running",
            elapsed: Duration::from_secs(12),
            duration: Duration::from_secs(60),
            published: 50,
            to_publish: 220,
            settled: 100,
            authentic: 200,
            dead: 3,
            bad: 10,
            faults_done: 2,
            faults_planned: 9,
            last_fault: Some("kill".into()),
            workers_running: 2,
            workers: 2,
        };
        let line = s.line();
        assert!(
            line.contains(&format!("[{}{}]", "#".repeat(12), "-".repeat(12))),
            "{line}"
        );
        assert!(
            line.contains("settled 100/200") && line.contains("(last: kill)"),
            "{line}"
        );
        assert!(Snapshot::default().line().contains(&"-".repeat(BAR)));
    }
}
