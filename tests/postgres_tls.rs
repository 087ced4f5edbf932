//! TLS to PostgreSQL: a server with a certificate signed by a CA the test makes, and
//! sslmode=require, verify-ca and verify-full, each with the snapshot and the stream
//! going through TLS; a wrong CA and a server without TLS are refused clearly.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use ciuf::{Engine, Value};
use common::pg::PgServer;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl is needed for this test");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A CA, and a server certificate for localhost and 127.0.0.1 signed by it.
fn make_certs(dir: &Path, ca_name: &str) {
    std::fs::write(dir.join("san.cnf"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n").unwrap();
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            &format!("/CN={ca_name}"),
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "san.cnf",
        ],
    );
}

fn wait_rows(view: &ciuf::View, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while view.len().unwrap() != n {
        assert!(Instant::now() < deadline, "the view did not reach {n} rows");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn snapshot_and_stream_over_tls_with_each_sslmode() {
    let certs = std::env::temp_dir().join(format!("ciuf-tls-{}", std::process::id()));
    let other = certs.join("other");
    std::fs::create_dir_all(&other).unwrap();
    make_certs(&certs, "ciuf test CA");
    make_certs(&other, "another CA");
    // The server reads its key as the postgres user, with no access for others.
    let server = PgServer::start();
    for f in ["server.crt", "server.key"] {
        std::fs::copy(certs.join(f), server.dir().join(f)).unwrap();
    }
    let chown = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "cd {} && chmod 600 server.key && (id -u | grep -qx 0 && chown postgres:postgres server.crt server.key || true)",
            server.dir().display()
        ))
        .status()
        .unwrap();
    assert!(chown.success());
    server.psql("postgres", "ALTER SYSTEM SET ssl = on");
    let crt = server.dir().join("server.crt");
    let key = server.dir().join("server.key");
    server.psql("postgres", &format!("ALTER SYSTEM SET ssl_cert_file = '{}'", crt.display()));
    server.psql("postgres", &format!("ALTER SYSTEM SET ssl_key_file = '{}'", key.display()));
    server.psql("postgres", "SELECT pg_reload_conf()");
    // The reload is asynchronous: wait until new sessions see ssl = on.
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.psql("postgres", "SHOW ssl") != "on" {
        assert!(Instant::now() < deadline, "ssl did not turn on:\n{}", server.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut client = server.client();
    client.batch_execute("CREATE TABLE t (id bigint PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a');").unwrap();

    let ca = certs.join("ca.crt");
    let base = format!("postgresql://app:secret@localhost:{}/shop", server.port);
    for (i, mode) in [
        "sslmode=require".to_string(),
        format!("sslmode=verify-ca&sslrootcert={}", ca.display()),
        format!("sslmode=verify-full&sslrootcert={}", ca.display()),
    ]
    .iter()
    .enumerate()
    {
        let engine =
            Engine::open(&format!("{base}?{mode}")).unwrap_or_else(|e| panic!("{mode}: {e}\n{}", server.log()));
        let view = engine.from_sql("SELECT id, v FROM t").unwrap();
        let id = 10 + i as i64;
        client.batch_execute(&format!("INSERT INTO t VALUES ({id}, 'x')")).unwrap();
        wait_rows(&view, 2 + i);
        assert!(view.rows().unwrap().iter().any(|r| *r.get(0) == Value::Int(id)));
        // Both of ciuf's connections (the walsender and the backend) are encrypted.
        let encrypted = server.psql(
            "postgres",
            "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.usename = 'app' AND s.ssl \
             AND a.application_name <> 'psql'",
        );
        assert!(encrypted.parse::<i32>().unwrap() >= 2, "{mode}: encrypted connections: {encrypted}");
        engine.close();
    }
    // A certificate from another CA is refused under verify-ca.
    let wrong = format!("{base}?sslmode=verify-ca&sslrootcert={}", other.join("ca.crt").display());
    let err = Engine::open(&wrong).unwrap_err().to_string();
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    // verify-full without a CA file says what to give.
    let err = Engine::open(&format!("{base}?sslmode=verify-full")).unwrap_err().to_string();
    assert!(err.contains("sslrootcert"), "{err}");
    let _ = std::fs::remove_dir_all(&certs);
}

#[test]
fn require_refuses_a_server_without_tls() {
    let server = PgServer::start();
    let err = Engine::open(&format!("{}?sslmode=require", server.url())).unwrap_err().to_string();
    assert!(err.contains("TLS") || err.contains("SSL"), "{err}");
    // prefer (the default) falls back to plain TCP.
    Engine::open(&server.url()).unwrap().close();
}
