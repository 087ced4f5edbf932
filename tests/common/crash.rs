//! What the crash tests share: a temporary directory, the rounds they run, the child
//! process's report of each view version, and killing that child at a random moment.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

use ciuf::View;

/// A fresh directory under the system's temporary one, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!("ciuf-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// How many kill-and-restart rounds a crash test runs (`CIUF_LONG=1`: 50).
pub fn rounds() -> usize {
    if std::env::var_os("CIUF_LONG").is_some() { 50 } else { 5 }
}

/// For a child process: prints "ready <version>" each time `view` changes, forever.
pub fn report_versions(view: &View) -> ! {
    let mut last = None;
    loop {
        let now = view.version().unwrap();
        if last != Some(now) {
            println!("ready {now}");
            last = Some(now);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Kills `child` with SIGKILL: in even rounds at a random moment from its start (the
/// first while it loads), in odd rounds after it reported a random number of versions.
pub fn kill_at_random(mut child: Child, round: usize, seed: &mut u64) {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    if round.is_multiple_of(2) {
        std::thread::sleep(Duration::from_millis(*seed % 1500));
    } else {
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (want, start) = (1 + *seed % 30, Instant::now());
        let mut ready = 0;
        while ready < want && start.elapsed() < Duration::from_secs(60) {
            match lines.next() {
                Some(Ok(l)) if l.contains("ready") => ready += 1,
                Some(Ok(_)) => {}
                _ => break,
            }
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
}
