//! The sqllogictest corpus, run incrementally by `ciuf-slt`, on the subset whose replay
//! plans are kept in `tests/slt/` (see its README): a wrong answer fails the test. The
//! README names the command for the whole public set.

use std::path::Path;
use std::process::Command;

#[test]
fn the_kept_corpus_subset_has_no_wrong_answer() {
    let kept = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/slt");
    let dir = std::env::temp_dir().join(format!("ciuf-slt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&kept).unwrap() {
        let path = entry.unwrap().path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".gz")) else {
            continue;
        };
        let out = Command::new("gzip").arg("-dc").arg(&path).output().expect("gzip decompresses the kept plans");
        assert!(out.status.success(), "gzip -dc {}", path.display());
        std::fs::write(dir.join(name), out.stdout).unwrap();
        names.push(name.to_string());
    }
    assert_eq!(names.len(), 12, "the kept plans: {names:?}");
    let out = Command::new(env!("CARGO_BIN_EXE_ciuf-slt")).arg(&dir).output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    let n = lines.len();
    assert!(n >= 2, "no report: {stdout}");
    assert_eq!(lines[n - 2], "wrong answers: 0", "{stdout}");
    assert!(out.status.success(), "{stdout}");
    // Every file was run; nearly every check passes (what fails is refused with an error).
    assert_eq!(stdout.lines().filter(|l| l.contains(".test: ")).count(), 12, "{stdout}");
    let mut parts = lines[n - 1].split(' ');
    let passed: usize = parts.next().unwrap().parse().unwrap();
    let failed: usize = parts.nth(1).unwrap().parse().unwrap();
    assert!(passed + failed > 50_000 && passed * 1000 >= (passed + failed) * 998, "{stdout}");
}
