//! What the crash tests share: a temporary directory, the rounds they run, the
//! durability each round's child uses, the child's checkpoints and its report of each
//! view version, and killing that child at a random moment.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use ciuf::{Durability, Engine, OpenOptions, View};

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

/// Runs round `round`'s child with its durability: rounds 0, 1, 4, 5, … `sync`,
/// rounds 2, 3, 6, 7, … `grouped` (so both kinds of kill meet both durabilities).
pub fn with_durability(command: &mut Command, round: usize) -> &mut Command {
    command.env("CIUF_CRASH_DURABILITY", if (round / 2).is_multiple_of(2) { "sync" } else { "grouped" })
}

/// For a child process: a state directory in `state` with the durability its round
/// asks for, and checkpoints whenever the log passes 32 KiB (many per round).
pub fn child_options(state: &Path) -> OpenOptions {
    let durability = match std::env::var("CIUF_CRASH_DURABILITY").as_deref() {
        Ok("grouped") => Durability::Grouped(Duration::from_millis(3)),
        _ => Durability::Sync,
    };
    OpenOptions {
        state_dir: Some(state.to_path_buf()),
        durability,
        checkpoint_floor: 32 << 10,
        ..OpenOptions::default()
    }
}

/// For a child process: also writes a checkpoint every 50 ms on demand, so that
/// kills often land while one is being written.
pub fn keep_checkpointing(engine: &Engine) {
    let engine = engine.clone();
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_millis(50));
            engine.checkpoint().unwrap();
        }
    });
}

/// The checkpoints a state directory holds (a crash test checks that its children
/// wrote some).
pub fn checkpoints(state: &Path) -> usize {
    std::fs::read_dir(state)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("checkpoint-"))
        .count()
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
    let mut ready = 0;
    if round.is_multiple_of(2) {
        std::thread::sleep(Duration::from_millis(*seed % 1500));
    } else {
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (want, start) = (1 + *seed % 30, Instant::now());
        while ready < want && start.elapsed() < Duration::from_secs(60) {
            match lines.next() {
                Some(Ok(l)) if l.contains("ready") => ready += 1,
                Some(Ok(_)) => {}
                _ => break,
            }
        }
    }
    // A follower that stopped by itself (an error, a panic) is a failure, not a kill.
    let exited = child.try_wait().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    if exited.is_some() || (!round.is_multiple_of(2) && ready == 0) {
        let mut stderr = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
        }
        panic!(
            "round {round}: the follower stopped by itself ({exited:?}, {ready} versions reported); stderr:\n{stderr}"
        );
    }
}
