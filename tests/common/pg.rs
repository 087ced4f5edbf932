//! A PostgreSQL server of the test's own: initdb into a temporary folder, started on a
//! free port with logical replication on, stopped and removed at the end. As root it
//! runs as the unprivileged `postgres` user (PostgreSQL refuses root). Missing
//! binaries are a failure, never a skip: `.ci/run` installs them.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A running server; stopped and deleted on drop.
#[derive(Debug)]
pub struct PgServer {
    bin: PathBuf,
    dir: PathBuf,
    pub port: u16,
    extra: String,
}

/// The role and database the tests use (the role may replicate).
pub const USER: &str = "app";
pub const PASSWORD: &str = "secret";
pub const DB: &str = "shop";

fn bin_dir() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    found.sort();
    found.pop().unwrap_or_else(|| {
        panic!("PostgreSQL server binaries not found under /usr/lib/postgresql: apt-get install -y postgresql")
    })
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe extern "C" {
        fn geteuid() -> u32;
    }
    unsafe { geteuid() == 0 }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

impl PgServer {
    /// Starts a fresh server with the `app` role (LOGIN REPLICATION, password) owning
    /// the `shop` database, reachable over TCP with SCRAM-SHA-256.
    pub fn start() -> PgServer {
        PgServer::start_with(&[])
    }

    /// Starts a server with extra settings (`name=value`), after the defaults.
    pub fn start_with(settings: &[&str]) -> PgServer {
        let bin = bin_dir();
        let dir = std::env::temp_dir().join(format!("ciuf-pg-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let extra = settings.iter().map(|s| format!(" -c {s}")).collect();
        let server = PgServer { bin, dir, port: free_port(), extra };
        if is_root() {
            run(Command::new("chown").args(["-R", "postgres:postgres"]).arg(&server.dir));
        }
        std::fs::write(server.dir.join("pw"), "postgres\n").expect("pwfile");
        server.as_postgres(&[
            "initdb",
            "-D",
            "data",
            "-U",
            "postgres",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--pwfile=pw",
            "-E",
            "UTF8",
            "--locale=C",
        ]);
        server.restart_with("start");
        server.psql("postgres", &format!("CREATE ROLE {USER} LOGIN REPLICATION PASSWORD '{PASSWORD}'"));
        server.psql("postgres", &format!("CREATE DATABASE {DB} OWNER {USER}"));
        server
    }

    /// Runs `pg_ctl <action>` (start, restart, stop).
    pub fn restart_with(&self, action: &str) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c wal_level=logical -c max_wal_senders=10 \
             -c max_replication_slots=10 -c fsync=off -c full_page_writes=off{}",
            self.port,
            self.dir.display(),
            self.extra
        );
        let mut args = vec!["pg_ctl", "-D", "data", "-l", "log", "-w", "-t", "60", action];
        if action != "stop" {
            args.extend(["-o", &opts]);
        } else {
            args.extend(["-m", "fast"]);
        }
        self.as_postgres(&args);
    }

    /// The URL the engine connects with.
    pub fn url(&self) -> String {
        format!("postgresql://{USER}:{PASSWORD}@127.0.0.1:{}/{DB}", self.port)
    }

    /// Runs SQL as the superuser through psql (for setup the app role may not do).
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let port = self.port.to_string();
        let host = self.dir.display().to_string();
        self.as_postgres(&[
            "psql",
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            &host,
            "-p",
            &port,
            "-U",
            "postgres",
            "-d",
            db,
            "-tA",
            "-c",
            sql,
        ])
    }

    /// A client connection as `app`.
    pub fn client(&self) -> postgres::Client {
        postgres::Client::connect(
            &format!("host=127.0.0.1 port={} user={USER} password={PASSWORD} dbname={DB}", self.port),
            postgres::NoTls,
        )
        .expect("connect as app")
    }

    fn as_postgres(&self, args: &[&str]) -> String {
        let exe = if args[0] == "psql" { PathBuf::from("/usr/bin/psql") } else { self.bin.join(args[0]) };
        let exe = if exe.exists() { exe } else { self.bin.join(args[0]) };
        let mut cmd = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        };
        cmd.args(&args[1..]).current_dir(&self.dir);
        run(&mut cmd)
    }

    /// The server's log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let port = self.port.to_string();
        let _ = Command::new(if is_root() { "runuser" } else { "true" });
        let stop = if is_root() {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(self.bin.join("pg_ctl"))
                .args(["-D", "data", "-m", "immediate", "-w", "stop"])
                .current_dir(&self.dir)
                .output()
        } else {
            Command::new(self.bin.join("pg_ctl"))
                .args(["-D", "data", "-m", "immediate", "-w", "stop"])
                .current_dir(&self.dir)
                .output()
        };
        let _ = (stop, port);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
