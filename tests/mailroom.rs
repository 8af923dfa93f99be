//! The intake as a mailroom clerk and an attacker use it (issue 12): files no one can wedge,
//! cut short or trick, letters in the encodings Chinese offices save, and a clerk told what
//! happened. Each test is named after what broke.

use crate::support::{json_lines, sample, term, wait_until, Scratch};
use std::io::Write;
use std::time::Duration;
use xinfang::store::files_below;

fn letter(name: &str) -> Vec<u8> {
    std::fs::read(sample(&format!("letters/{name}"))).expect("sample letter")
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn fast_watch(s: &Scratch) {
    s.configure(&[("stable_secs = 2.0", "stable_secs = 1.0"), ("poll_secs = 1.0", "poll_secs = 0.2")]);
}

/// Regression: a copy that stalled longer than `watch.stable_secs` was registered cut short
/// and its whole file archived under the short case.
#[test]
fn a_copy_that_stalls_past_the_window_is_registered_whole_and_nothing_is_left_unattached() {
    let s = Scratch::new();
    fast_watch(&s);
    let inbox = s.path().join("inbox");
    std::fs::create_dir_all(&inbox).expect("inbox");
    let mut watch = s.spawn(&["watch", "--json", inbox.to_str().expect("utf-8")], "watch");
    let whole = letter("a001_dibao_liuhe.txt");
    let (head, tail) = whole.split_at(whole.len() / 2);
    let path = inbox.join("stalled.txt");
    let mut writer = std::fs::File::create(&path).expect("create");
    writer.write_all(head).expect("first half");
    writer.flush().expect("flush");
    // The scanner (or the network copy) pauses past the stability window, file still open.
    std::thread::sleep(Duration::from_secs(4));
    writer.write_all(tail).expect("second half");
    drop(writer);
    wait_until("the inbox is empty", Duration::from_secs(60), || !path.exists());
    term(&mut watch);
    let (out, err) = s.output_of("watch");
    let events: Vec<serde_json::Value> = out
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|e: &serde_json::Value| e["event"].is_string())
        .collect();
    let archived: Vec<&serde_json::Value> = events.iter().filter(|e| e["event"] == "archived").collect();
    assert_eq!(archived.len(), 1, "{out}\n{err}");
    let final_case = archived[0]["case_no"].as_str().expect("case");
    // The archived file is byte for byte the original of the case it is filed under.
    let to = archived[0]["to"].as_str().expect("path");
    assert_eq!(std::fs::read(to).expect("archived"), whole);
    let shown = s.run(&["show", "--json", final_case]);
    let detail: serde_json::Value = serde_json::from_slice(&shown.stdout).expect("json");
    let sha = detail["letter_sha256"].as_str().expect("sha");
    assert_eq!(sha, xinfang::digest::sha256(&whole).as_str(), "the case holds the whole letter:\n{out}\n{err}");
    // Every archived byte belongs to a registered original; the cut-short case, if one was
    // registered, is superseded by the whole one and waits for a reviewer.
    let list = json_lines(&s.run(&["list", "--json"]));
    if list.len() == 2 {
        assert!(events.iter().any(|e| e["event"] == "changed"), "{out}");
        let first = list.iter().find(|c| c["case_no"] != final_case).expect("the short case");
        assert_eq!(first["needs_review"], true, "the cut-short case goes to review: {first}");
        let history = stdout(&s.run(&["show", first["case_no"].as_str().expect("case")]));
        assert!(history.contains("superseded") && history.contains(final_case), "{history}");
    } else {
        assert_eq!(list.len(), 1, "{list:?}");
    }
    for f in files_below(&s.data().join("archive")) {
        let digest = xinfang::digest::sha256(&std::fs::read(&f).expect("read"));
        let original =
            s.data().join("originals").join(&digest.as_str()[..2]).join(&digest.as_str()[2..4]).join(digest.as_str());
        assert!(original.exists(), "{} is attached to no registered original", f.display());
    }
}

/// Regression: `xinfang watch .` quarantined its own data folder (the database with it) and
/// registered its own log file at every size.
#[test]
fn watching_the_folder_that_holds_the_data_folder_leaves_the_store_and_the_log_alone() {
    let s = Scratch::new();
    fast_watch(&s);
    let office = s.path().join("office");
    let data = office.join("data");
    s.configure(&[(
        &format!("data_dir = {:?}", s.data().display().to_string()),
        &format!("data_dir = {:?}", data.display().to_string()),
    )]);
    std::fs::create_dir_all(&office).expect("office");
    let log = office.join("watch.log");
    let mut watch = s.spawn_logging_to(&["watch", office.to_str().expect("utf-8")], &log);
    std::fs::write(office.join("a.txt"), letter("a002_weigai_zhukeng.txt")).expect("letter");
    wait_until("the letter is archived", Duration::from_secs(60), || !office.join("a.txt").exists());
    std::thread::sleep(Duration::from_secs(2));
    term(&mut watch);
    let logged = std::fs::read_to_string(&log).expect("log");
    assert!(data.join("xinfang.db").exists(), "the store is where it was:\n{logged}");
    assert!(log.exists(), "the log is not taken as a letter:\n{logged}");
    assert!(logged.contains("own data") && logged.contains("writes its output"), "{logged}");
    let out = s.run(&["--db", &format!("sqlite://{}", data.join("xinfang.db").display()), "list", "--json"]);
    let cases = json_lines(&out);
    assert_eq!(cases.len(), 1, "only the letter is a case: {cases:?}\n{logged}");
    // A folder inside the service's own folders is refused outright.
    std::fs::create_dir_all(data.join("archive")).expect("archive");
    let inside = s.run(&["watch", data.join("archive").to_str().expect("utf-8")]);
    assert!(!inside.status.success() && stderr(&inside).contains("keeps its own files"), "{}", stderr(&inside));
}

/// Regression: a FIFO in the watched folder wedged `watch` (the letter beside it was never
/// registered and SIGTERM was ignored); a symlink to /etc/passwd became a case.
#[test]
fn a_fifo_and_a_symlink_beside_a_letter_are_passed_over_and_sigterm_still_stops_watch() {
    let s = Scratch::new();
    fast_watch(&s);
    let inbox = s.path().join("inbox");
    std::fs::create_dir_all(&inbox).expect("inbox");
    let fifo = std::ffi::CString::new(inbox.join("scan.pdf").as_os_str().as_encoded_bytes()).expect("path");
    // SAFETY: mkfifo reads the NUL-terminated path only.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    std::os::unix::fs::symlink("/etc/passwd", inbox.join("passwd.txt")).expect("symlink");
    std::fs::write(inbox.join("a.txt"), letter("a004_xianjie_baisha.txt")).expect("letter");
    let mut watch = s.spawn(&["watch", inbox.to_str().expect("utf-8")], "watch");
    wait_until("the letter is archived", Duration::from_secs(60), || !inbox.join("a.txt").exists());
    let started = std::time::Instant::now();
    let status = term(&mut watch);
    assert!(started.elapsed() < Duration::from_secs(20), "SIGTERM stops it promptly");
    let (out, err) = s.output_of("watch");
    assert!(status.success(), "{err}");
    assert!(out.contains("FIFO") && out.contains("symbolic link"), "one line each:\n{out}");
    let cases = json_lines(&s.run(&["list", "--json"]));
    assert_eq!(cases.len(), 1, "{cases:?}");
    assert!(inbox.join("scan.pdf").exists() && inbox.join("passwd.txt").exists(), "left where they are");
    let root = stdout(&s.run(&["show", cases[0]["case_no"].as_str().expect("case")]));
    assert!(!root.contains("root:x:0:0"), "{root}");
}

/// Regression: `xinfang ingest a b` with two byte-identical scans never finished.
#[test]
fn two_identical_scans_in_one_ingest_finish_one_registered_one_duplicate() {
    let s = Scratch::new();
    let scan = std::fs::read(sample("scans/l01_ming_clean.png")).expect("scan");
    let a = s.write("a.png", &scan);
    let b = s.write("b.png", &scan);
    let out = s.run(&["ingest", "--json", a.to_str().expect("utf-8"), b.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let r = json_lines(&out);
    assert_eq!((r[0]["status"].as_str(), r[1]["status"].as_str()), (Some("registered"), Some("duplicate")));
    assert_eq!(r[0]["case_no"], r[1]["case_no"]);
}

/// Regression: text letters saved as GB18030 or UTF-16 (what Chinese Windows and WPS save)
/// were refused as binary data.
#[test]
fn letters_saved_as_gb18030_and_utf16_register_with_their_text() {
    let s = Scratch::new();
    let text = String::from_utf8(letter("a010_hunyan_shimen.txt")).expect("utf-8 sample");
    let (gb, _, _) = encoding_rs::GB18030.encode(&text);
    let mut utf16 = vec![0xFF, 0xFE];
    text.encode_utf16().for_each(|u| utf16.extend_from_slice(&u.to_le_bytes()));
    let a = s.write("gbk.txt", &gb);
    let b = s.write("utf16.txt", &utf16);
    let out = s.run(&["ingest", "--json", a.to_str().expect("utf-8"), b.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let r = json_lines(&out);
    assert_eq!(r[0]["status"], "registered", "{}", r[0]);
    assert_eq!(r[1]["status"], "registered", "{}", r[1]);
    assert_eq!(r[0]["class"], r[1]["class"], "read the same");
    assert!(r[0]["text"].as_str().expect("text").contains("婚宴"), "{}", r[0]["text"]);
    let shown = stdout(&s.run(&["show", r[0]["case_no"].as_str().expect("case")]));
    assert!(shown.contains("gb18030"), "the encoding is recorded:\n{shown}");
}

/// Regression: `xinfang list | head -1` ended in `internal error`, exit status 101.
#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    let s = Scratch::new();
    s.write("a.txt", &letter("a001_dibao_liuhe.txt"));
    assert!(s.run(&["ingest", s.path().join("a.txt").to_str().expect("utf-8")]).status.success());
    let bin = env!("CARGO_BIN_EXE_xinfang");
    let cfg = s.path().join("xinfang.toml");
    let script = format!("{bin:?} --config {cfg:?} list | head -c 1 > /dev/null; echo \"${{PIPESTATUS[0]}}\"");
    let out = std::process::Command::new("bash").arg("-c").arg(script).current_dir(s.path()).output().expect("bash");
    assert_eq!(stdout(&out).trim(), "0", "{}", stderr(&out));
    assert!(!stderr(&out).contains("internal error"), "{}", stderr(&out));
}

/// Regression: a file name holding a newline forged `error:` lines on stderr and a
/// `reason:` line in its quarantine reason file.
#[test]
fn a_name_with_control_characters_cannot_forge_lines() {
    let s = Scratch::new();
    let bad = s.write("x\nerror: all letters were lost\u{1b}[2J.pdf", b"<html>not a pdf</html>");
    let out = s.run(&["ingest", bad.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert_eq!(err.lines().filter(|l| l.starts_with("error:")).count(), 1, "{err}");
    assert!(err.contains("\\n") && !err.contains('\u{1b}'), "{err}");
    let reasons: Vec<_> = files_below(&s.data().join("quarantine"))
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".reason.txt"))
        .collect();
    let reason = std::fs::read_to_string(&reasons[0]).expect("reason file");
    assert_eq!(reason.lines().filter(|l| l.starts_with("reason:")).count(), 1, "{reason}");
    assert!(reason.lines().any(|l| l.starts_with("id: ")), "{reason}");
}

/// Regression: a letter with new facts said `review: true` but the store said `no`.
#[test]
fn a_letter_with_new_facts_waits_for_review_in_the_store() {
    let s = Scratch::new();
    let first = s.write("1.txt", "县纪委：\n我举报石桥镇柳河村党支部书记赵德明把弟媳评成低保户，每月领580元，还侵占集体土地补偿款3万元。\n举报人：杨春生 电话13907352846\n".as_bytes());
    let again = s.write("2.txt", "县纪委：\n我再次反映石桥镇柳河村党支部书记赵德明的问题，现有新的证据：他还把集体鱼塘承包费3.6万元据为己有，收受红包5000元，另侵占集体土地补偿款3万元。\n举报人：杨春生 电话13907352846\n".as_bytes());
    let out = s.run(&["ingest", "--json", first.to_str().expect("utf-8"), again.to_str().expect("utf-8")]);
    let r = json_lines(&out);
    assert!(r[1]["new_facts_of"].is_string(), "the second letter brings new facts: {}", r[1]);
    assert_eq!(r[1]["review"], true);
    let listed = json_lines(&s.run(&["list", "--json"]));
    let second = listed.iter().find(|c| c["case_no"] == r[1]["case_no"]).expect("listed");
    assert_eq!(second["needs_review"], true, "the store says review too: {second}");
}

/// Regression: `--db sqlite:///abs/new.db` failed unless `?mode=rwc` was added.
#[test]
fn a_sqlite_url_of_a_new_file_works() {
    let s = Scratch::new();
    let url = format!("sqlite://{}", s.path().join("fresh.db").display());
    let out = s.run(&["--db", &url, "list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("0 in the store"));
}

/// Regression: `review` accepted decisions that contradict themselves, an empty reviewer,
/// and said "no decision stored" of a case that does not exist.
#[test]
fn a_review_keeps_the_decision_consistent_and_every_review_is_kept() {
    let s = Scratch::new();
    let a = s.write("a.txt", &letter("a001_dibao_liuhe.txt"));
    let r = json_lines(&s.run(&["ingest", "--json", a.to_str().expect("utf-8")]));
    let case = r[0]["case_no"].as_str().expect("case");
    let refused = s.run(&["review", case, "--reviewer", "王审", "--class", "业务范围外"]);
    assert!(!refused.status.success() && stderr(&refused).contains("forward"), "{}", stderr(&refused));
    let empty = s.run(&["review", case, "--reviewer", "", "--class", "申诉"]);
    assert!(!empty.status.success() && stderr(&empty).contains("reviewer"), "{}", stderr(&empty));
    let ok = s.run(&["review", case, "--reviewer", "王审", "--class", "业务范围外", "--forward-to", "县民政局"]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    let explained = stdout(&s.run(&["explain", case]));
    assert!(explained.contains("forward to   县民政局") && explained.contains("转送主管机关"), "{explained}");
    assert!(explained.contains("level        -"), "out of scope has no level: {explained}");
    let up = s.run(&["review", case, "--reviewer", "李审", "--level", "上级"]);
    assert!(!up.status.success(), "a 业务范围外 letter has no level");
    let back = s.run(&["review", case, "--reviewer", "李审", "--class", "申诉"]);
    assert!(back.status.success(), "{}", stderr(&back));
    assert!(stdout(&s.run(&["explain", case])).contains("level        本级"), "an in-scope letter gets a level");
    let history = stdout(&s.run(&["show", case]));
    assert_eq!(history.matches("  reviewed  ").count(), 2, "every review kept:\n{history}");
    let missing = s.run(&["review", "QLX-2026-X-999999", "--reviewer", "王审"]);
    assert!(stderr(&missing).contains("no case QLX-2026-X-999999"), "{}", stderr(&missing));
    let unknown = s.run(&["review", case, "--reviewer", "王审", "--class", "检举"]);
    assert!(stderr(&unknown).contains("检举控告"), "the classes are listed: {}", stderr(&unknown));
}

/// Regression: `ingest DIR` passed over hidden files without a word.
#[test]
fn ingest_of_a_folder_says_what_it_passed_over() {
    let s = Scratch::new();
    s.write("in/a.txt", &letter("a001_dibao_liuhe.txt"));
    s.write("in/.DS_Store", b"x");
    s.write("in/~$draft.docx", b"x");
    let out = s.run(&["ingest", s.path().join("in").to_str().expect("utf-8")]);
    assert!(out.status.success());
    let err = stderr(&out);
    assert!(err.contains("2 hidden or temporary file(s) passed over") && err.contains(".DS_Store"), "{err}");
}

/// Regression: `reprocess CASE` counted the whole store's finished runs as the selection's.
#[test]
fn reprocess_counts_only_the_cases_it_was_given() {
    let s = Scratch::new();
    for (i, name) in ["a001_dibao_liuhe.txt", "a002_weigai_zhukeng.txt", "a004_xianjie_baisha.txt"].iter().enumerate() {
        s.write(&format!("in/{i}.txt"), &letter(name));
    }
    let r = json_lines(&s.run(&["ingest", "--json", s.path().join("in").to_str().expect("utf-8")]));
    assert!(s.run(&["reprocess", "--all"]).status.success());
    let one = s.run(&["reprocess", r[0]["case_no"].as_str().expect("case")]);
    let err = stderr(&one);
    assert!(err.contains("1 case(s) selected, 0 newly queued, 0 to do, 1 already done"), "{err}");
}

/// Regression: a quarantined letter dropped again under a new name was reported under the
/// old one; watch lines said nothing of the decision and had no time.
#[test]
fn watch_lines_tell_the_clerk_what_became_of_each_letter() {
    let s = Scratch::new();
    fast_watch(&s);
    let inbox = s.path().join("inbox");
    std::fs::create_dir_all(&inbox).expect("inbox");
    let mut watch = s.spawn(&["watch", inbox.to_str().expect("utf-8")], "watch");
    std::fs::write(inbox.join("bad.pdf"), b"<html>not a pdf</html>").expect("bad");
    wait_until("the bad file is quarantined", Duration::from_secs(60), || !inbox.join("bad.pdf").exists());
    std::fs::write(inbox.join("again.pdf"), b"<html>not a pdf</html>").expect("again");
    std::fs::write(inbox.join("a.txt"), letter("a002_weigai_zhukeng.txt")).expect("letter");
    wait_until("the inbox is empty", Duration::from_secs(60), || {
        std::fs::read_dir(&inbox).map(|d| d.count()).unwrap_or(1) == 0
    });
    term(&mut watch);
    let (out, err) = s.output_of("watch");
    let registered =
        out.lines().find(|l| l.contains("registered") && l.contains("a.txt")).unwrap_or_else(|| panic!("{out}\n{err}"));
    assert!(
        registered.starts_with("20") && registered.contains("QLX-") && registered.contains("检举控告"),
        "{registered}"
    );
    let again = out.lines().find(|l| l.contains("quarantined") && l.contains("again.pdf"));
    assert!(again.is_some(), "reported under the name it came by:\n{out}");
    assert!(!out.lines().any(|l| l.contains("quarantined") && l.contains("bad.pdf") && l.contains("again")), "{out}");
}
