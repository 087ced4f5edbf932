//! The sqllogictest corpus, run incrementally by `ciuf-slt`, on a subset of the public
//! set chosen by rule (not by result): select1–3, every `evidence` file, and the first
//! file (in name order) of every other group. The plans are written at test time by
//! the corpus's reference replay (`../shared/slt/slt_ivm.py --dump`). A wrong answer
//! fails the test; the README names the command for the whole set.

use std::path::{Path, PathBuf};
use std::process::Command;

fn corpus() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/slt/public");
    assert!(root.is_dir(), "the sqllogictest corpus is expected at {}", root.display());
    root
}

/// The first `.test` file, in name order, under `dir` (depth first).
fn first_test(dir: &Path) -> PathBuf {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    let first = entries.into_iter().next().expect("a non-empty group");
    if first.is_dir() { first_test(&first) } else { first }
}

fn subset(root: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> =
        ["select1.test", "select2.test", "select3.test"].iter().map(|f| root.join(f)).collect();
    let mut evidence: Vec<PathBuf> =
        std::fs::read_dir(root.join("evidence")).unwrap().map(|e| e.unwrap().path()).collect();
    evidence.sort();
    files.extend(evidence);
    for group in ["index", "random"] {
        let mut kinds: Vec<PathBuf> = std::fs::read_dir(root.join(group)).unwrap().map(|e| e.unwrap().path()).collect();
        kinds.sort();
        files.extend(kinds.iter().map(|k| first_test(k)));
    }
    files
}

#[test]
fn the_corpus_subset_has_no_wrong_answer() {
    let root = corpus();
    let files = subset(&root);
    let dump = std::env::temp_dir().join(format!("ciuf-slt-{}", std::process::id()));
    std::fs::create_dir_all(&dump).unwrap();
    let out = Command::new("python3")
        .arg(root.join("../slt_ivm.py"))
        .arg("--root")
        .arg(&root)
        .arg("--dump")
        .arg(&dump)
        .args(&files)
        .output()
        .expect("python3 runs the corpus's reference replay");
    assert!(out.status.success(), "slt_ivm.py --dump: {}", String::from_utf8_lossy(&out.stderr));
    let out = Command::new(env!("CARGO_BIN_EXE_ciuf-slt")).arg(&dump).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let _ = std::fs::remove_dir_all(&dump);
    let lines: Vec<&str> = stdout.lines().collect();
    let n = lines.len();
    assert!(n >= 2, "no report: {stdout}");
    assert_eq!(lines[n - 2], "wrong answers: 0", "{stdout}");
    assert!(out.status.success(), "{stdout}");
    // Every file was run and checked.
    for f in &files {
        let rel = f.strip_prefix(&root).unwrap().display().to_string();
        assert!(stdout.contains(&format!("{rel}: ")), "{rel} missing from the report:\n{stdout}");
    }
    let (passed, failed): (usize, usize) = {
        let last = lines[n - 1];
        let mut parts = last.split(' ');
        let p = parts.next().unwrap().parse().unwrap();
        let f = parts.nth(1).unwrap().parse().unwrap();
        (p, f)
    };
    eprintln!("{stdout}");
    assert!(passed > 0 && passed + failed > 50_000, "{stdout}");
}
