//! The intake as a service: crash safety under SIGKILL, the watched folder (restarts,
//! re-copies, renames, files still being written, unreadable files, SIGTERM), a locked
//! database and a full disk, and `reprocess` from the command line.

use crate::support::{json_lines, kill9, sample, term, wait_until, Scratch};
use sqlx::Row;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;
use xinfang::store::files_below;

/// A small deterministic sequence of pauses (no randomness crate, same run every time).
fn pauses(n: usize, seed: u64, min_ms: u64, max_ms: u64) -> Vec<Duration> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            Duration::from_millis(min_ms + x % (max_ms - min_ms))
        })
        .collect()
}

/// What the store holds, checked for the invariants of a crash: every letter once, no
/// half-written case, no orphan original, the queue drained.
async fn check_store(s: &Scratch) -> (i64, BTreeSet<String>) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&s.db_url()).await.expect("open store");
    let one = |sql: &'static str| {
        let pool = pool.clone();
        async move { sqlx::query(sql).fetch_one(&pool).await.expect(sql).try_get::<i64, _>(0).expect("count") }
    };
    let cases = one("SELECT COUNT(*) FROM cases").await;
    assert_eq!(cases, one("SELECT COUNT(DISTINCT letter_sha256) FROM cases").await, "a letter registered twice");
    // No half-written case: pages, first event and (unless manual) a decision for each.
    assert_eq!(
        one("SELECT COUNT(*) FROM cases c WHERE page_count <> (SELECT COUNT(*) FROM pages p WHERE p.case_no = c.case_no)")
            .await,
        0,
        "a case without all its pages"
    );
    assert_eq!(
        one("SELECT COUNT(*) FROM cases c WHERE NOT EXISTS (SELECT 1 FROM case_events e WHERE e.case_no = c.case_no)")
            .await,
        0
    );
    assert_eq!(
        one("SELECT COUNT(*) FROM cases c WHERE status <> 'manual_handling' AND NOT EXISTS \
             (SELECT 1 FROM case_decisions d WHERE d.case_no = c.case_no)")
        .await,
        0
    );
    assert_eq!(one("SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'running')").await, 0, "queue not drained");
    assert_eq!(
        one("SELECT COUNT(*) FROM jobs WHERE kind = 'letter' AND state = 'done' AND result NOT IN (SELECT case_no FROM cases)")
            .await,
        0,
        "a job done without its case"
    );
    // Every stored original is a registered case's or a job's; every registered one exists.
    let mut referenced = BTreeSet::new();
    for r in sqlx::query("SELECT sha256 FROM originals").fetch_all(&pool).await.expect("originals") {
        referenced.insert(r.try_get::<String, _>(0).expect("sha"));
    }
    for r in sqlx::query("SELECT payload FROM jobs WHERE kind = 'letter'").fetch_all(&pool).await.expect("jobs") {
        let p: serde_json::Value = serde_json::from_str(&r.try_get::<String, _>(0).expect("payload")).expect("json");
        for o in p["originals"].as_array().expect("originals") {
            referenced.insert(o["sha256"].as_str().expect("sha").to_string());
        }
    }
    let stored: BTreeSet<String> = files_below(&s.data().join("originals"))
        .iter()
        .map(|p| p.file_name().expect("name").to_string_lossy().into_owned())
        .collect();
    let orphans: Vec<_> = stored.difference(&referenced).collect();
    assert!(orphans.is_empty(), "orphan originals: {orphans:?}");
    for r in sqlx::query("SELECT sha256 FROM originals").fetch_all(&pool).await.expect("originals") {
        assert!(stored.contains(&r.try_get::<String, _>(0).expect("sha")), "an original was lost");
    }
    let mut shas = BTreeSet::new();
    for r in sqlx::query("SELECT letter_sha256 FROM cases").fetch_all(&pool).await.expect("cases") {
        shas.insert(r.try_get::<String, _>(0).expect("sha"));
    }
    pool.close().await;
    (cases, shas)
}

/// SIGKILL at many points of a batch, then a restart that finishes it: every letter is
/// registered exactly once, nothing is lost or half-written, the queue is drained.
#[test]
fn a_batch_killed_at_random_points_ends_with_every_letter_registered_once() {
    let s = Scratch::new();
    let inbox = s.path().join("inbox");
    std::fs::create_dir_all(&inbox).expect("inbox");
    let letters: Vec<PathBuf> = std::fs::read_dir(sample("letters"))
        .expect("samples")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .take(30)
        .collect();
    for p in &letters {
        std::fs::copy(p, inbox.join(p.file_name().expect("name"))).expect("copy letter");
    }
    std::fs::copy(sample("scans/l01_ming_clean.png"), inbox.join("zz_scan.png")).expect("copy scan");
    std::fs::write(inbox.join("zz_empty.pdf"), b"").expect("bad file");
    let inbox_arg = inbox.to_str().expect("utf-8").to_string();
    for pause in pauses(6, 0x9e37_79b9, 150, 2500) {
        let mut child = s.spawn(&["ingest", &inbox_arg], "ingest");
        std::thread::sleep(pause);
        kill9(&mut child);
    }
    let out = s.run(&["ingest", "--json", &inbox_arg]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "the empty file fails, the rest does not: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reports = json_lines(&out);
    assert_eq!(reports.len(), letters.len() + 2);
    for r in &reports {
        let ok = if r["source"].as_str().expect("source").ends_with("zz_empty.pdf") {
            r["status"] == "failed" && r["quarantined"].is_string()
        } else {
            r["status"] == "registered" || r["status"] == "duplicate"
        };
        assert!(ok, "{r}");
    }
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (cases, shas) = rt.block_on(check_store(&s));
    assert_eq!(cases as usize, letters.len() + 1, "every readable letter exactly once");
    for r in reports.iter().filter(|r| r["status"] != "failed") {
        assert!(shas.contains(r["sha256"].as_str().expect("sha")), "{r}");
    }
}

/// The mailroom's folder: letters dropped (some while the watcher is killed and restarted),
/// a file still being written, an unreadable file, a multi-page folder, a renamed file and a
/// re-copied one. Every file ends as exactly one case (archived) or one quarantined file.
#[test]
fn the_watched_folder_takes_every_letter_once_across_restarts() {
    let s = Scratch::new();
    s.configure(&[("stable_secs = 2.0", "stable_secs = 0.6"), ("poll_secs = 1.0", "poll_secs = 0.2")]);
    let inbox = s.path().join("inbox");
    std::fs::create_dir_all(&inbox).expect("inbox");
    let inbox_arg = inbox.to_str().expect("utf-8").to_string();
    let letters: Vec<PathBuf> = std::fs::read_dir(sample("letters"))
        .expect("samples")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .take(12)
        .collect();
    // Dropped as a scanner does: written under a temporary name, then renamed.
    let drop = |p: &Path, name: &str| {
        let tmp = inbox.join(format!(".{name}.part"));
        std::fs::copy(p, &tmp).expect("copy");
        std::fs::rename(&tmp, inbox.join(name)).expect("rename");
    };
    let mut watcher = s.spawn(&["watch", &inbox_arg], "watch");
    for p in &letters[..5] {
        drop(p, &p.file_name().expect("name").to_string_lossy());
    }
    std::fs::write(inbox.join("broken.pdf"), b"<html>not a pdf</html>").expect("bad file");
    // A letter written slowly: never taken before it is complete.
    let slow_text = std::fs::read_to_string(&letters[5]).expect("letter");
    let slow = inbox.join("slow.txt");
    let (head, tail) = slow_text.split_at(slow_text.char_indices().nth(20).expect("long letter").0);
    std::fs::write(&slow, head).expect("write head");
    std::thread::sleep(Duration::from_millis(300));
    kill9(&mut watcher);
    watcher = s.spawn(&["watch", &inbox_arg], "watch");
    std::thread::sleep(Duration::from_millis(300));
    std::fs::OpenOptions::new()
        .append(true)
        .open(&slow)
        .and_then(|mut f| {
            use std::io::Write;
            f.write_all(tail.as_bytes())
        })
        .expect("write tail");
    for p in &letters[6..9] {
        drop(p, &p.file_name().expect("name").to_string_lossy());
    }
    // A two-page letter scanned page by page into a sub-folder (pages written, then moved in).
    let staging = s.path().join("staging/two_pages");
    std::fs::create_dir_all(&staging).expect("staging");
    std::fs::copy(&letters[9], staging.join("p1.txt")).expect("p1");
    std::fs::copy(&letters[10], staging.join("p2.txt")).expect("p2");
    std::fs::rename(&staging, inbox.join("two_pages")).expect("move folder in");
    // Renamed by a clerk right after it was dropped: still one letter.
    drop(&letters[11], "to_rename.txt");
    std::fs::rename(inbox.join("to_rename.txt"), inbox.join("renamed.txt")).expect("rename");
    std::thread::sleep(Duration::from_millis(700));
    kill9(&mut watcher);
    watcher = s.spawn(&["watch", &inbox_arg], "watch");
    let visible = || {
        std::fs::read_dir(&inbox)
            .expect("inbox")
            .flatten()
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .count()
    };
    wait_until("the inbox is empty", Duration::from_secs(120), || visible() == 0);
    // The same letter copied in again under its old name: archived again, no new case.
    drop(&letters[0], &letters[0].file_name().expect("name").to_string_lossy());
    wait_until("the re-copied letter is archived", Duration::from_secs(60), || visible() == 0);
    let status = term(&mut watcher);
    let (stdout, stderr) = s.output_of("watch");
    assert!(status.success(), "SIGTERM is a clean stop: {status:?}\n{stderr}");
    assert!(stderr.contains("watch: stopped"), "{stderr}");

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (cases, _) = rt.block_on(check_store(&s));
    // 5 + slow + 3 + folder + renamed = 11 letters; the re-copy is no new case.
    assert_eq!(cases, 11, "{stdout}\n{stderr}");
    let archived: Vec<String> = files_below(&s.data().join("archive"))
        .iter()
        .map(|p| p.file_name().expect("name").to_string_lossy().into_owned())
        .collect();
    assert_eq!(archived.len(), 11 - 1 + 2 + 1, "11 letters (one of them two files) and the re-copy: {archived:?}");
    assert!(archived.contains(&"renamed.txt".to_string()), "{archived:?}");
    let first = letters[0].file_stem().expect("stem").to_string_lossy().into_owned();
    assert!(
        archived.iter().any(|a| a.starts_with(&format!("{first}.1"))),
        "re-copy kept beside the first: {archived:?}"
    );
    // The unreadable file: quarantined once, with the reason beside it.
    let quarantined = files_below(&s.data().join("quarantine"));
    let broken: Vec<_> = quarantined.iter().filter(|p| p.to_string_lossy().contains("broken.pdf")).collect();
    assert!(broken.iter().any(|p| p.to_string_lossy().ends_with(".reason.txt")), "{quarantined:?}");
    assert_eq!(broken.iter().filter(|p| !p.to_string_lossy().ends_with(".reason.txt")).count(), 1, "{quarantined:?}");
    // The slow letter was read whole.
    let list = s.run(&["list", "--json", "--limit", "100"]);
    let slow_case =
        json_lines(&list).into_iter().find(|c| c["source_name"].as_str().is_some_and(|n| n.ends_with("slow.txt")));
    let slow_case = slow_case.expect("slow letter registered");
    assert!(
        slow_case["chars"].as_u64().expect("chars") as usize
            >= slow_text.chars().filter(|c| !c.is_whitespace()).count() - 30
    );
}

/// A database locked by another program: the intake says so, waits, and goes on.
#[test]
fn a_locked_database_is_waited_for_and_the_letter_registered() {
    let s = Scratch::new();
    assert!(s.run(&["list"]).status.success(), "create the store");
    let letter = s.write("a.txt", std::fs::read(sample("letters/a001_dibao_liuhe.txt")).expect("letter").as_slice());
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let url = s.db_url();
    let held = rt.block_on(async {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let mut c = sqlx::AnyConnection::connect(&url).await.expect("connect");
        sqlx::query("BEGIN EXCLUSIVE").execute(&mut c).await.expect("lock");
        c
    });
    let mut child = s.spawn(&["ingest", "--json", letter.to_str().expect("utf-8")], "locked");
    // Longer than SQLite's own 5 s busy wait, so the intake's retry has to work.
    std::thread::sleep(Duration::from_secs(8));
    rt.block_on(async move {
        let mut c = held;
        sqlx::query("COMMIT").execute(&mut c).await.expect("unlock");
    });
    let status = child.wait().expect("wait");
    let (stdout, stderr) = s.output_of("locked");
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("the database is locked"), "the wait is explained: {stderr}");
    assert!(stdout.contains("\"registered\""), "{stdout}");
}

/// A full disk: the intake says so, retries, and registers the letter once space is freed.
/// Needs root to mount a small tmpfs; elsewhere it says it is skipped.
#[test]
fn a_full_disk_is_reported_and_retried() {
    let s = Scratch::new();
    let data = s.data();
    std::fs::create_dir_all(&data).expect("data dir");
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=3m", "tmpfs"])
        .arg(&data)
        .status()
        .is_ok_and(|st| st.success());
    if !mounted {
        eprintln!("a_full_disk_is_reported_and_retried: cannot mount a tmpfs (needs root): skipped");
        return;
    }
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _guard = Unmount(data.clone());
    assert!(s.run(&["list"]).status.success(), "create the store");
    let body = std::fs::read_to_string(sample("letters/a001_dibao_liuhe.txt")).expect("letter");
    let letter = s.write("big.txt", body.repeat(400).as_bytes());
    // Fill the disk, leaving less than the letter needs.
    let filler = data.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).expect("filler");
        let chunk = vec![0u8; 64 * 1024];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.sync_all();
    }
    let mut child = s.spawn(&["ingest", "--json", letter.to_str().expect("utf-8")], "full");
    wait_until("the intake reports the full disk", Duration::from_secs(30), || {
        s.output_of("full").1.contains("disk is full") || s.output_of("full").1.contains("disk")
    });
    std::fs::remove_file(&filler).expect("free space");
    let status = child.wait().expect("wait");
    let (stdout, stderr) = s.output_of("full");
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("full"), "{stderr}");
    assert!(stdout.contains("\"registered\""), "{stdout}");
}

/// `reprocess` from the command line: a re-run over everything applies where nobody
/// reviewed, keeps a reviewer's decision (without flagging again the suggestion the reviewer
/// overruled), and the same command again has nothing to do.
#[test]
fn reprocess_is_idempotent_and_keeps_reviewers_decisions() {
    let s = Scratch::new();
    let letters: Vec<String> = ["a001_dibao_liuhe.txt", "a002_weigai_zhukeng.txt", "a006_jianyi_jubao.txt"]
        .iter()
        .map(|n| sample(&format!("letters/{n}")).to_str().expect("utf-8").to_string())
        .collect();
    let mut args = vec!["ingest", "--json"];
    args.extend(letters.iter().map(String::as_str));
    let out = s.run(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let reports = json_lines(&out);
    let case = reports[1]["case_no"].as_str().expect("case").to_string();
    assert_eq!(reports[1]["class"], "检举控告");
    let review = s.run(&["review", &case, "--reviewer", "王审核", "--class", "批评建议", "--note", "其实是建议"]);
    assert!(review.status.success(), "{}", String::from_utf8_lossy(&review.stderr));
    let first = s.run(&["reprocess", "--all", "--json"]);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let runs = json_lines(&first);
    assert_eq!(runs.len(), 3);
    let reviewed = runs.iter().find(|r| r["case_no"] == case.as_str()).expect("reviewed case re-run");
    assert_eq!(reviewed["status"], "suggested", "{reviewed}");
    assert!(runs.iter().filter(|r| r["case_no"] != case.as_str()).all(|r| r["status"] == "applied"));
    let shown = String::from_utf8_lossy(&s.run(&["show", &case]).stdout).into_owned();
    assert!(shown.contains("批评建议"), "the reviewer's decision stands: {shown}");
    // The rules still say what the reviewer overruled: recorded, not raised again.
    assert!(!shown.contains("rerun_differs") && shown.contains("review      no"), "{shown}");
    let again = s.run(&["reprocess", "--all", "--json"]);
    assert!(again.status.success());
    assert!(json_lines(&again).is_empty(), "nothing left to do");
    assert!(String::from_utf8_lossy(&again.stderr).contains("nothing to do"));
}
