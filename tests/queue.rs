//! The durable queue, concurrent registration and re-runs against the store, each on SQLite
//! and on PostgreSQL (XINFANG_TEST_POSTGRES_URL; CI sets XINFANG_REQUIRE_POSTGRES so the
//! PostgreSQL half cannot be skipped there).

use crate::support::with_each_store;
use std::sync::Arc;
use xinfang::config::catalogue::Catalogue;
use xinfang::config::QueueConfig;
use xinfang::digest::sha256;
use xinfang::intake::review::{review, ReviewFailure};
use xinfang::intake::Registrar;
use xinfang::store::{
    fixtures, JobKind, JobState, NewCase, NewJob, Registration, RunOutcome, RunResult, Store, WorkerId,
};
use xinfang::understand::Understander;
use xinfang_models::{Channel, InputFormat, PageOrigin, PageText, ReviewEdit, RunKind, Understanding};

fn job(id: &str) -> NewJob {
    NewJob {
        job_id: id.into(),
        kind: JobKind::Letter,
        letter_sha256: None,
        case_no: None,
        source_name: format!("{id}.tif"),
        payload: "{}".into(),
        max_attempts: 2,
    }
}

async fn queue_behaves(store: Store) {
    let (a, b) = (WorkerId::current(), WorkerId::current());
    assert_ne!(a, b, "two workers of one process are told apart");
    assert!(store.enqueue(&job("letter:1")).await.expect("enqueue"));
    assert!(!store.enqueue(&job("letter:1")).await.expect("enqueue again"), "enqueuing twice is a no-op");
    let first = store.claim(&a, JobKind::Letter, None, 60_000).await.expect("claim").expect("a job");
    assert_eq!((first.job_id.as_str(), first.attempts, first.state), ("letter:1", 1, JobState::Running));
    assert!(store.claim(&b, JobKind::Letter, None, 60_000).await.expect("claim").is_none(), "leased to a");
    assert!(store.claim(&b, JobKind::Rerun, None, 60_000).await.expect("claim").is_none(), "other kind");
    // a renews its lease; then it "dies" (its lease is let run out) and b takes the job over.
    assert_eq!(store.renew_leases(&a, 1).await.expect("renew"), 1);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let again = store.claim(&b, JobKind::Letter, None, 60_000).await.expect("claim").expect("expired lease");
    assert_eq!(again.attempts, 2);
    assert!(!again.exhausted());
    // A passing failure: back in the queue, not before its backoff.
    store.retry_later("letter:1", "database is locked", 60_000).await.expect("retry later");
    assert!(store.claim(&a, JobKind::Letter, None, 60_000).await.expect("claim").is_none(), "backing off");
    let j = store.job("letter:1").await.expect("job").expect("exists");
    assert_eq!((j.state, j.last_error.as_deref()), (JobState::Queued, Some("database is locked")));
    // A job whose workers keep dying: claimed beyond max_attempts, it is exhausted (the
    // intake then registers the letter for manual handling).
    store.enqueue(&job("letter:2")).await.expect("enqueue");
    for round in 1..=3 {
        let j = store.claim_job(&a, "letter:2", 1).await.expect("claim").expect("ready");
        assert_eq!((j.attempts, j.exhausted()), (round, round > 2));
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    store.finish_job("letter:2", "QLX-2026-X-000001").await.expect("finish");
    // Failed for good, then given again on purpose: queued afresh.
    store.fail_job("letter:1", "not a PDF", Some("q/x")).await.expect("fail");
    let counts = store.queue_counts(JobKind::Letter, None).await.expect("counts");
    assert_eq!((counts.failed, counts.done, counts.queued, counts.drained()), (1, 1, 0, true));
    assert!(store.enqueue(&job("letter:1")).await.expect("re-enqueue failed job"));
    let fresh = store.claim(&b, JobKind::Letter, Some("letter:"), 60_000).await.expect("claim").expect("requeued");
    assert_eq!(fresh.attempts, 1);
    store.close().await;
}

#[tokio::test]
async fn queue_leases_retries_and_attempts() {
    with_each_store(|store, _| queue_behaves(store)).await;
}

fn understander() -> Arc<Understander> {
    Arc::new(Understander::new(&Catalogue::builtin().expect("shipped rules")).expect("stages"))
}

/// The rules as shipped, but comparing at most `total` candidates per letter.
fn understander_comparing(total: u32) -> Arc<Understander> {
    let mut cat = Catalogue::builtin().expect("shipped rules");
    cat.rules.repeat.max_candidates = total;
    Arc::new(Understander::new(&cat).expect("stages"))
}

/// A letter decided by the real rules, ready to register.
fn decided_case(u: &Understander, text: &str, at: i64) -> NewCase {
    let day = chrono::NaiveDate::from_ymd_opt(2026, 3, 2).expect("date");
    NewCase {
        organ: "QLX".into(),
        channel: Channel::Letter,
        letter_sha256: sha256(text.as_bytes()),
        source_name: "t.txt".into(),
        format: InputFormat::Text,
        originals: Vec::new(),
        pages: vec![PageText::from_text(1, PageOrigin::Transcript, text.to_string())],
        ocr_confidence: None,
        text: text.into(),
        needs_review: false,
        received_at: at,
        received_on: u.receipt_day(at),
        archive: None,
        understanding: Some(u.understand(text, day)),
        ocr_engine: None,
        manual: None,
        supersedes: None,
    }
}

/// Registers through the intake's one registration path.
async fn register(store: &Store, u: &Arc<Understander>, case: &NewCase) -> (String, Understanding) {
    let registrar = Registrar::new(store.clone(), Arc::clone(u), QueueConfig::default());
    let (r, d) = registrar.register(case, None).await.expect("register");
    let Registration::Registered(no) = r else { panic!("new letter") };
    (no.to_string(), d.expect("decided"))
}

/// Two workers register two letters about the same matter at the same moment, many times
/// over: each time exactly one of them is the first letter and the other its repeat.
async fn concurrent_repeats(url: String) {
    let u = understander();
    let (s1, s2) = (Store::open(&url).await.expect("open 1"), Store::open(&url).await.expect("open 2"));
    let now = chrono::Utc::now().timestamp_millis();
    for i in 0..12 {
        let village = format!("第{i}村");
        let a = format!(
            "县纪委：\n我举报石桥镇{village}党支部书记赵德明把弟媳评成低保户，每月领580元，还侵占集体土地补偿款。\n"
        );
        let b = format!("县纪委：\n再次反映石桥镇{village}党支部书记赵德明把弟媳评成低保户每月领580元、侵占集体土地补偿款的问题。\n");
        let (ca, cb) = (decided_case(&u, &a, now + i), decided_case(&u, &b, now + i));
        let ((na, da), (nb, db)) = tokio::join!(register(&s1, &u, &ca), register(&s2, &u, &cb));
        let links = [(&na, &da, &nb), (&nb, &db, &na)]
            .iter()
            .filter(|(_, d, other)| d.decision.repeat_of.as_deref() == Some(other.as_str()))
            .count();
        assert_eq!(links, 1, "round {i}: {na} {:?} / {nb} {:?}", da.decision.repeat_of, db.decision.repeat_of);
    }
    s1.close().await;
    s2.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_registering_related_letters_see_each_other() {
    with_each_store(|store, url| async move {
        store.close().await;
        concurrent_repeats(url).await
    })
    .await;
}

/// A re-run applies when no reviewer decided; after a reviewer's decision it is recorded
/// beside it, flagged when it differs, and the reviewer's decision stands.
/// Dozens of later letters written from the same template about other officials share the
/// repeat's MinHash bands; the lookup compares only a few letters, yet the earlier letter
/// about the same official is among them and the repeat is found.
async fn template_flood(store: Store) {
    let u = understander_comparing(3);
    let now = chrono::Utc::now().timestamp_millis();
    let letter = |village: &str, name: &str| {
        format!(
            "县纪委：\n我举报石桥镇{village}党支部书记{name}把弟媳评成低保户，每月领580元，还侵占集体土地补偿款。\n"
        )
    };
    let first = decided_case(&u, &letter("柳河村", "赵德明"), now);
    let (original, _) = register(&store, &u, &first).await;
    let names = ["钱国华", "孙志勇", "李春生", "周海涛", "吴长根", "郑玉兰", "王福贵", "冯建国"];
    for (i, name) in names.iter().cycle().take(40).enumerate() {
        let case = decided_case(&u, &letter(&format!("第{i}村"), name), now + 1 + i as i64);
        register(&store, &u, &case).await;
    }
    let again =
        "县纪委：\n再次反映石桥镇柳河村党支部书记赵德明把弟媳评成低保户每月领580元、侵占集体土地补偿款的问题。\n";
    let case = decided_case(&u, again, now + 100);
    let keys = &case.understanding.as_ref().expect("decided").lookup_keys;
    let candidates = fixtures::repeat_candidates_of(&store, keys, u.candidate_limits()).await.expect("lookup");
    assert!(candidates.len() <= 3, "compares at most max_candidates: {}", candidates.len());
    assert!(candidates.iter().any(|c| c.case_no == original), "the letter sharing the name is kept");
    let (_, decided) = register(&store, &u, &case).await;
    assert_eq!(decided.decision.repeat_of.as_deref(), Some(original.as_str()));
    store.close().await;
}

#[tokio::test]
async fn a_flood_of_template_letters_does_not_hide_a_repeat() {
    with_each_store(|store, _| template_flood(store)).await;
}

async fn reruns_respect_reviewers(store: Store) {
    let u = understander();
    let text = "县纪委：\n我举报石桥镇柳河村党支部书记赵德明把弟媳评成低保户，每月领580元。\n";
    let case = decided_case(&u, text, chrono::Utc::now().timestamp_millis());
    let (no, decided) = register(&store, &u, &case).await;
    let no: xinfang_models::CaseNo = no.parse().expect("case no");
    let target = store.case_for_rerun(&no, "test-run").await.expect("load").expect("exists");
    let registrar = Registrar::new(store.clone(), Arc::clone(&u), QueueConfig::default());
    let mut changed = decided.clone();
    changed.decision.rules_version = "rules-next".into();
    changed.decision.class = xinfang_models::LetterClass::Suggestion;
    let run = RunResult {
        kind: RunKind::Rules,
        ocr_engine: None,
        pages: None,
        ocr_confidence: None,
        text: text.into(),
        understanding: changed.clone(),
        pages_need_review: false,
    };
    let applied = registrar.apply_run(&target, &run, None).await.expect("apply");
    assert!(matches!(&applied, RunOutcome::Applied { changes } if changes.iter().any(|c| c.starts_with("class"))));
    assert_eq!(store.decision(&no).await.expect("decision").expect("some").class, changed.decision.class);
    // A reviewer puts it back; the next run suggests 批评建议 again: recorded, but the
    // reviewer overruled exactly that, so the case is not flagged again.
    let edit = ReviewEdit {
        reviewer: "王审核".into(),
        class: Some(decided.decision.class),
        note: "是检举".into(),
        ..ReviewEdit::default()
    };
    review(&store, &u, &no, &edit, None).await.expect("review");
    let suggested = registrar.apply_run(&target, &run, None).await.expect("apply again");
    assert!(matches!(&suggested, RunOutcome::Suggested { changes } if !changes.is_empty()), "{suggested:?}");
    let standing = store.decision(&no).await.expect("decision").expect("some");
    assert_eq!(standing.class, decided.decision.class, "the reviewer's decision stands");
    let detail = store.show(&no).await.expect("show").expect("case");
    assert!(!detail.summary.needs_review, "a suggestion the reviewer overruled is not raised again");
    // New rules that suggest something else again: flagged, and said once.
    let mut other = changed.clone();
    other.decision.class = xinfang_models::LetterClass::Appeal;
    let run = RunResult { understanding: other, ..run };
    registrar.apply_run(&target, &run, None).await.expect("apply a new suggestion");
    let detail = store.show(&no).await.expect("show").expect("case");
    assert!(detail.summary.needs_review, "the new difference is flagged");
    let differs = detail.events.iter().filter(|e| e.2 == "rerun_differs").count();
    assert_eq!(differs, 1, "one run, one event: {:?}", detail.events);
    // Two reviewers who opened the case at once: the second is told, not written over.
    let seen = store.review_base(&no).await.expect("read").expect("reviewable").reviews;
    review(&store, &u, &no, &ReviewEdit { reviewer: "甲".into(), ..edit.clone() }, Some(seen)).await.expect("first");
    let late = review(&store, &u, &no, &ReviewEdit { reviewer: "乙".into(), ..edit }, Some(seen)).await;
    assert!(matches!(late, Err(ReviewFailure::Stale { ref reviewer, .. }) if reviewer == "甲"), "{late:?}");
    assert_eq!(store.review_history(&no).await.expect("history").len(), 2, "every review is kept");
    store.close().await;
}

#[tokio::test]
async fn reruns_never_overwrite_a_reviewers_decision() {
    with_each_store(|store, _| reruns_respect_reviewers(store)).await;
}

/// Sample letters in the order they arrived: three repeats and a letter with new facts
/// among them (a012 repeats a001, a021 a010, a027 a002; a034 adds to a004).
const ARCHIVE: &[&str] = &[
    "a001_dibao_liuhe.txt",
    "a002_weigai_zhukeng.txt",
    "a004_xianjie_baisha.txt",
    "a010_hunyan_shimen.txt",
    "a012_dibao_liuhe_chongfu.txt",
    "a021_hunyan_chongfu.txt",
    "a027_weigai_chongfu.txt",
    "a034_xianjie_xinqingkuang.txt",
];

/// An intake over `store` holding the letters as an archive's old registration left them:
/// decided, never linked to the letters before them; the fifth (a012) reviewed since.
async fn archive(
    store: Store,
    dir: &std::path::Path,
) -> (xinfang::intake::Intake, xinfang::stages::ocr::OcrPool, Vec<xinfang_models::CaseNo>) {
    let mut cfg = xinfang::config::Config::builtin().expect("config");
    cfg.store.data_dir = dir.to_path_buf();
    let u = understander();
    let files = xinfang::store::FileStore::new(dir);
    let start = chrono::Utc::now().timestamp_millis() - 30 * 86_400_000;
    let news: Vec<NewCase> = ARCHIVE
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let raw = std::fs::read_to_string(crate::support::sample(&format!("letters/{name}"))).expect("sample");
            let at = start + i as i64 * 3_600_000;
            let (organ, channel) = (&cfg.numbering.organ_code, cfg.numbering.channel);
            fixtures::archived_text_case(&u, &files, organ, channel, &raw, i, at).expect("case")
        })
        .collect();
    fixtures::register_unsettled(&store, &news).await.expect("seed");
    let cases = store.select_cases(&Default::default()).await.expect("cases");
    assert_eq!(cases.len(), ARCHIVE.len());
    let mut reviewed = store.decision(&cases[4]).await.expect("read").expect("decided");
    reviewed.class = xinfang_models::LetterClass::Appeal;
    store.record_review(&cases[4], &reviewed, "审核员", "", 0).await.expect("review");
    let pool = xinfang::stages::ocr::OcrPool::start(&cfg.ocr, &cfg.limits, 1).expect("engine");
    let intake = xinfang::intake::Intake::new(Arc::new(cfg), store, pool.clone(), u);
    (intake, pool, cases)
}

/// Re-runs the rules over `cases`, batched or one job at a time.
async fn rerun_rules(
    intake: &xinfang::intake::Intake,
    cases: &[xinfang_models::CaseNo],
    batch: bool,
) -> Vec<xinfang::intake::rerun::RerunReport> {
    use xinfang::intake::worker::{WorkOptions, WorkReport};
    intake.enqueue_reruns(cases, false).await.expect("queue");
    let prefix = xinfang::intake::rerun::run_prefix(&intake.rerun_key(false));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let opts = WorkOptions { drain: true, letters: false, reruns: Some(prefix), stop, batch };
    let mut reports = Vec::new();
    intake
        .work(opts, |r| {
            if let WorkReport::Rerun(r) = r {
                reports.push(r.clone());
            }
        })
        .await
        .expect("work");
    reports
}

/// The batched half on `store` (SQLite or PostgreSQL); the one-at-a-time half on a fresh
/// SQLite store: the same letters, the same rules, the same case numbers.
async fn batched_equals_single(store: Store, _url: String) {
    let (a, b) = (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
    let (batched, pool_a, cases) = archive(store, a.path()).await;
    let b_url = format!("sqlite://{}?mode=rwc", b.path().join("y.db").display());
    let (single, pool_b, same) = archive(Store::open(&b_url).await.expect("open"), b.path()).await;
    assert_eq!(cases, same);
    let got = rerun_rules(&batched, &cases, true).await;
    let want = rerun_rules(&single, &cases, false).await;
    assert_eq!(got.len(), cases.len(), "every case re-run once: {got:?}");
    let status =
        |r: &[xinfang::intake::rerun::RerunReport]| r.iter().map(|x| (x.case_no.clone(), x.status)).collect::<Vec<_>>();
    assert_eq!(status(&got), status(&want));
    for case in &cases {
        let one = batched.store().decision(case).await.expect("read").expect("decided");
        let other = single.store().decision(case).await.expect("read").expect("decided");
        assert_eq!(serde_json::to_value(&one).ok(), serde_json::to_value(&other).ok(), "{case}");
    }
    let d = |i: usize| {
        let (store, cases) = (batched.store(), &cases);
        async move { store.decision(&cases[i]).await.expect("read").expect("decided") }
    };
    // The re-run found what the old registration had not linked.
    assert_eq!(d(5).await.repeat_of, Some(cases[3].to_string()), "a021 repeats a010");
    assert_eq!(d(6).await.repeat_of, Some(cases[1].to_string()), "a027 repeats a002");
    assert_eq!(d(7).await.new_facts_of, Some(cases[2].to_string()), "a034 adds to a004");
    // The reviewer's decision stands; the rules' differing suggestion is beside it.
    assert_eq!(d(4).await.class, xinfang_models::LetterClass::Appeal);
    assert_eq!(got[4].status, xinfang_models::RunStatus::Suggested);
    let shown = batched.store().show(&cases[4]).await.expect("show").expect("exists");
    assert!(shown.events.iter().any(|e| e.2 == "rerun_differs"), "{:?}", shown.events);
    // Its use of identities is one audit entry for the run, not a row per case.
    let audit = fixtures::identity_audit(batched.store()).await.expect("audit");
    assert_eq!(audit, (0, 1, cases.len() as i64));
    // The same command again: nothing left, nothing done twice.
    assert!(rerun_rules(&batched, &cases, true).await.is_empty());
    pool_a.shutdown().await;
    pool_b.shutdown().await;
}

#[tokio::test]
async fn a_batched_rerun_decides_every_letter_as_one_at_a_time_does() {
    with_each_store(batched_equals_single).await;
}

/// Letters registered as one group (one transaction) are numbered and linked exactly as the
/// same letters registered one at a time: a repeat in the group finds the letter before it in
/// the group, and a letter whose bytes an earlier one of the group has is its duplicate (the
/// group is not rolled back).
async fn grouped_equals_single(store: Store, _url: String) {
    let u = understander();
    let now = chrono::Utc::now().timestamp_millis();
    let mut cases = Vec::new();
    for (i, village) in ["柳河村", "石门村", "龙潭村"].iter().enumerate() {
        let first = format!(
            "县纪委：\n我举报石桥镇{village}党支部书记赵德明把弟媳评成低保户，每月领580元，还侵占集体土地补偿款。\n"
        );
        let again = format!("县纪委：\n再次反映石桥镇{village}党支部书记赵德明把弟媳评成低保户每月领580元、侵占集体土地补偿款的问题。\n");
        cases.push(decided_case(&u, &first, now + 10 * i as i64));
        cases.push(decided_case(&u, &again, now + 10 * i as i64 + 1));
    }
    cases.insert(3, cases[0].clone());
    let dir = tempfile::tempdir().expect("tempdir");
    let reference =
        Store::open(&format!("sqlite://{}?mode=rwc", dir.path().join("one.db").display())).await.expect("open");
    let one = Registrar::new(reference.clone(), Arc::clone(&u), QueueConfig::default());
    let mut single = Vec::new();
    for c in &cases {
        single.push(one.register(c, None).await.expect("register"));
    }
    let grouped = Registrar::new(store.clone(), Arc::clone(&u), QueueConfig::default());
    let letters: Vec<(&NewCase, &str)> = cases.iter().map(|c| (c, "letter:none")).collect();
    let together = grouped.register_many(&letters).await.expect("register a group");
    let outcome = |(r, d): &(Registration, Option<Understanding>)| {
        (r.clone(), d.as_ref().and_then(|d| d.decision.repeat_of.clone()))
    };
    let single: Vec<_> = single.iter().map(outcome).collect();
    let together: Vec<_> = together.iter().map(outcome).collect();
    assert_eq!(together, single);
    assert!(matches!(together[3].0, Registration::Duplicate(_)), "the same bytes again: {:?}", together[3]);
    assert_eq!(together.iter().filter(|(_, r)| r.is_some()).count(), 3, "each repeat linked: {together:?}");
    assert_eq!(store.count().await.expect("count"), 6);
    reference.close().await;
    store.close().await;
}

#[tokio::test]
async fn a_group_of_letters_registers_as_one_at_a_time_does() {
    with_each_store(grouped_equals_single).await;
}
