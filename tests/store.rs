//! The case store on SQLite (always) and PostgreSQL (when XINFANG_TEST_POSTGRES_URL names a
//! server: a fresh database is created per test). Same migrations, same behaviour.

use xinfang::store::{NewCase, Registration, Store, StoredOriginal};
use xinfang_models::{BoundingBox, Channel, InputFormat, LineBox, PageFlag, PageOrigin, PageText, WordBox};

fn new_case(seed: &str) -> NewCase {
    let sha = xinfang::digest::sha256(seed.as_bytes());
    let mut page = PageText::from_text(1, PageOrigin::Ocr, format!("关于反映{seed}的问题"));
    page.confidence = Some(0.42);
    page.flags = vec![PageFlag::LowConfidence];
    page.lines = vec![LineBox { bbox: BoundingBox { x: 1, y: 2, w: 3, h: 4 } }];
    page.words =
        vec![WordBox { text: "关于".into(), conf: 0.9, bbox: BoundingBox { x: 1, y: 2, w: 3, h: 4 }, line: 0 }];
    NewCase {
        organ: "QLX".into(),
        channel: Channel::Letter,
        letter_sha256: sha.clone(),
        source_name: format!("{seed}.png"),
        format: InputFormat::Png,
        originals: vec![StoredOriginal {
            sha256: sha,
            file_name: format!("{seed}.png"),
            byte_len: 10,
            format: InputFormat::Png,
            encoding: None,
            stored_path: "x".into(),
        }],
        pages: vec![page],
        ocr_confidence: Some(0.42),
        text: format!("关于反映{seed}的问题"),
        needs_review: true,
        received_at: chrono::Utc::now().timestamp_millis(),
        received_on: chrono::Utc::now().date_naive(),
        archive: None,
        understanding: None,
        ocr_engine: None,
        manual: None,
        supersedes: None,
    }
}

async fn behaves(store: Store) {
    let a = store.register(&new_case("甲")).await.expect("register a");
    let b = store.register(&new_case("乙")).await.expect("register b");
    let (Registration::Registered(a), Registration::Registered(b)) = (a, b) else { panic!("both new") };
    assert_eq!(b.seq, a.seq + 1, "sequence numbers follow registration order");
    assert_eq!(store.register(&new_case("甲")).await.expect("again"), Registration::Duplicate(a.clone()));
    assert_eq!(store.count().await.expect("count"), 2);
    let detail = store.show(&a).await.expect("show").expect("case exists");
    assert_eq!(detail.text, "关于反映甲的问题");
    assert_eq!(detail.pages[0].flags, vec![PageFlag::LowConfidence]);
    assert_eq!(detail.pages[0].words[0].text, "关于");
    assert!((detail.summary.ocr_confidence.unwrap() - 0.42).abs() < 1e-6);
    assert!(detail.summary.needs_review);
    assert_eq!(detail.events.len(), 1, "registration is logged");
    let list = store.list(10).await.expect("list");
    assert_eq!(list.len(), 2);
    store.close().await;
}

#[tokio::test]
async fn sqlite_store_registers_numbers_and_reads_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("nested/x.db").display());
    behaves(Store::open(&url).await.expect("open sqlite")).await;
}

#[tokio::test]
async fn postgres_store_behaves_the_same() {
    let Some((base, name, url)) = crate::support::fresh_postgres().await else { return };
    behaves(Store::open(&url).await.expect("open postgres")).await;
    crate::support::drop_postgres(&base, &name).await;
}
