//! Backfilling an archive: `ingest --manifest` registers letters with the archive's own
//! dates of receipt (case-number years, deadlines and repeat order follow them), channels,
//! old numbers (found by `show`), and the class and status decided back then; `--received`
//! dates a folder. Days are the organ's (Asia/Shanghai), whatever the server's zone.

use crate::support::Scratch;
use std::path::Path;

fn sample(name: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/letters").join(name)).expect("sample letter")
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn show(s: &Scratch, case: &str) -> String {
    let o = s.run(&["show", case]);
    assert!(o.status.success(), "show {case}: {}", String::from_utf8_lossy(&o.stderr));
    stdout(&o)
}

fn registered(out: &str) -> Vec<serde_json::Value> {
    out.lines().map(|l| serde_json::from_str(l).expect("json line")).collect()
}

#[test]
fn an_archive_is_registered_with_its_own_dates_numbers_and_decisions() {
    let s = Scratch::new();
    s.write("archive/a001.txt", &sample("a001_dibao_liuhe.txt"));
    s.write("archive/a012.txt", &sample("a012_dibao_liuhe_chongfu.txt"));
    s.write("archive/a002.txt", &sample("a002_weigai_zhukeng.txt"));
    // As Chinese Excel saves a CSV: GB18030, Chinese headers, dates written three ways. The
    // repeat (a012) is listed before the letter it repeats, which the archive received first;
    // a001 came in at 01:00 Beijing time on 2 March, still 1 March on a UTC clock.
    let csv = "文件,收件日期,渠道,原编号,类别,状态\n\
               a012.txt,2019/5/10,来信,青纪信〔2019〕88号,,留存归档\n\
               a001.txt,2019-03-02 01:00,来信,青纪信〔2019〕12号,检举控告,已办结\n\
               a002.txt,2019年3月4日,来访,青纪访〔2019〕3号,,\n";
    let (bytes, _, _) = encoding_rs::GB18030.encode(csv);
    let manifest = s.write("archive/清单.csv", &bytes);
    let o = s.command(&["ingest", "--json", "--manifest", &manifest.display().to_string()]).env("TZ", "UTC").output();
    let o = o.expect("run");
    assert!(o.status.success(), "ingest: {}", String::from_utf8_lossy(&o.stderr));
    let reports = registered(&stdout(&o));
    let cases: Vec<&str> = reports.iter().map(|r| r["case_no"].as_str().expect("case")).collect();
    // In order of receipt; numbered in the archive's year, by channel.
    assert_eq!(cases, ["QLX-2019-X-000001", "QLX-2019-F-000001", "QLX-2019-X-000002"]);

    let a001 = show(&s, "青纪信〔2019〕12号");
    assert!(a001.contains("case        QLX-2019-X-000001"), "{a001}");
    assert!(a001.contains("received    2019-03-02 01:00"), "the organ's day and hour: {a001}");
    assert!(a001.contains("status      closed"), "{a001}");
    assert!(a001.contains("青纪信〔2019〕12号"), "{a001}");
    // Deadlines count from the archive's date of receipt (受理告知: 15 working days).
    assert!(a001.contains("by 2019-03"), "deadlines from 2019-03-02: {a001}");
    assert!(!a001.contains("by 2026"), "{a001}");
    // The class decided back then is that review: it stands over the rules.
    assert!(a001.contains("档案回填  reviewed"), "the archive's review: {a001}");

    // The repeat, listed first but received later, is linked to the letter it repeats.
    let a012 = show(&s, "青纪信〔2019〕88号");
    assert!(a012.contains("QLX-2019-X-000002") && a012.contains("重复件 of QLX-2019-X-000001"), "{a012}");
    assert!(a012.contains("status      filed_repeat"), "{a012}");
    let visit = show(&s, "QLX-2019-F-000001");
    assert!(visit.contains("received    2019-03-04"), "{visit}");

    // The same manifest again registers nothing and records no second review.
    let again = s.run(&["ingest", "--json", "--manifest", &manifest.display().to_string()]);
    assert!(again.status.success());
    assert!(registered(&stdout(&again)).iter().all(|r| r["status"] == "duplicate"));
    assert_eq!(show(&s, "QLX-2019-X-000001").matches("档案回填  reviewed").count(), 1);

    // An unknown number is told apart from an unknown case.
    let none = s.run(&["show", "青纪信〔2019〕99号"]);
    assert!(!none.status.success());
    assert!(String::from_utf8_lossy(&none.stderr).contains("no case and no archive number"));
}

#[test]
fn a_bad_manifest_is_refused_whole_and_a_folder_takes_one_date() {
    let s = Scratch::new();
    s.write("old/a001.txt", &sample("a001_dibao_liuhe.txt"));
    s.write("old/a002.txt", &sample("a002_weigai_zhukeng.txt"));
    let bad = s.write("bad.csv", "file,received\nold/a001.txt,2019-03-02\nold/a002.txt,2019-02-30\n".as_bytes());
    let o = s.run(&["ingest", "--manifest", &bad.display().to_string()]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("row 3") && err.contains("2019-02-30"), "{err}");
    assert!(stdout(&s.run(&["list"])).contains("0 case(s) shown"), "nothing stored");

    let folder = s.path().join("old");
    let o = s.run(&["ingest", "--json", "--received", "2018-12-28", &folder.display().to_string()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let cases: Vec<String> = registered(&stdout(&o)).iter().map(|r| r["case_no"].to_string()).collect();
    assert_eq!(cases, ["\"QLX-2018-X-000001\"", "\"QLX-2018-X-000002\""]);
    for case in ["QLX-2018-X-000001", "QLX-2018-X-000002"] {
        assert!(show(&s, case).contains("received    2018-12-28 00:00"), "{case}");
    }
}
