//! `xinfang bench rules`: text letters per second through segmentation, tagging, extraction,
//! rules and repeat lookup, with a store already holding many cases (100,000 by default), and
//! the p50/p99 repeat-lookup time. The store is seeded with synthetic fingerprints: varied
//! reported persons (names, villages, towns, posts) and word sets, so that index keys collide
//! the way a real ledger's do. A measurement, not a test: it prints the targets beside the
//! figures. Nothing is written to the user's store unless `--db` names one.

use anyhow::{Context, Result};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use xinfang::config::Config;
use xinfang::stages::normalize::normalize;
use xinfang::store::{fixtures, Store};
use xinfang::understand::Understander;
use xinfang_models::Fingerprint;
use xinfang_models::Subject;

/// A small deterministic generator (xorshift64*): the same store, the same letters every run
/// (shared with `bench_ingest`).
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub(crate) fn range(&mut self, lo: u32, hi: u32) -> u32 {
        lo + self.below(u64::from(hi.saturating_sub(lo)) + 1) as u32
    }
    pub(crate) fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }
    pub(crate) fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭", "何", "高", "林",
    "罗", "郑", "梁", "谢", "宋", "唐", "许", "韩", "冯", "邓", "曹", "彭", "曾", "肖", "田", "董", "袁", "潘", "蒋",
    "蔡", "余",
];
const GIVEN: &[&str] = &[
    "建", "国", "德", "明", "春", "华", "志", "勇", "红", "平", "军", "伟", "芳", "秀", "英", "海", "强", "林", "文",
    "永", "发", "长", "根", "生", "福", "贵", "玉", "兰", "金", "宝",
];
const PLACES: &[&str] = &[
    "石桥", "云溪", "白沙", "柳塘", "河湾", "青山", "龙潭", "桂花", "东坪", "马鞍", "杨柳", "新塘", "坳上", "竹坑",
    "杏林", "双塘", "樟树", "石门", "沙洲", "横塘",
];
const POSTS: &[&str] = &[
    "村党支部书记",
    "村委会主任",
    "村会计",
    "村民小组长",
    "镇长",
    "副镇长",
    "党委书记",
    "所长",
    "站长",
    "局长",
    "副局长",
    "股长",
    "校长",
    "院长",
    "主任",
];
const DOMAINS: &[&str] = &[
    "低保/社会救助",
    "危房改造",
    "乡村振兴/扶贫",
    "农村集体三资",
    "征地拆迁",
    "医保医疗",
    "教育",
    "工程项目",
    "作风/四风",
];

fn synthetic(u: &Understander, rng: &mut Rng) -> (Fingerprint, Vec<String>) {
    let n = 1 + (rng.next() % 2) as usize;
    let subjects: Vec<Subject> = (0..n)
        .map(|_| {
            let name = format!("{}{}{}", rng.pick(SURNAMES), rng.pick(GIVEN), rng.pick(GIVEN));
            let place = format!(
                "{}{}{}村",
                rng.pick(PLACES),
                rng.pick(PLACES),
                if rng.next().is_multiple_of(2) { "镇" } else { "乡" }
            );
            Subject {
                name: (!rng.next().is_multiple_of(4)).then_some(name),
                unit: (!rng.next().is_multiple_of(3)).then_some(place),
                post: Some(rng.pick(POSTS).to_string()),
                rank: None,
            }
        })
        .collect();
    // Word sets drawn from a vocabulary of 6,000 synthetic words, 60–200 per letter.
    let words: Vec<String> = (0..60 + rng.next() % 140).map(|_| format!("w{}", rng.next() % 6000)).collect();
    let facts: Vec<String> = (0..4)
        .map(|i| {
            if i == 0 {
                format!("domain:{}", rng.pick(DOMAINS))
            } else {
                format!("amount:{}", rng.next() % 500 * 100)
            }
        })
        .collect();
    let amounts: Vec<String> = facts.iter().filter(|f| f.starts_with("amount")).cloned().collect();
    let fp = u.repeat_rules().fingerprint(&subjects, words.iter().map(String::as_str), &facts, &amounts, false);
    let keys = u.repeat_rules().keys(&fp);
    (fp, keys)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Runs the benchmark.
pub async fn rules(cfg: &Config, db: Option<&str>, cases: usize, letters: usize, dirs: &[PathBuf]) -> Result<()> {
    let u = Understander::new(&cfg.catalogue()?)?;
    let mut texts = Vec::new();
    for dir in dirs {
        for p in xinfang::intake::sorted_entries(dir) {
            if p.extension().is_some_and(|e| e == "txt") {
                let t = std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
                texts.push(normalize(&t));
            }
        }
    }
    anyhow::ensure!(!texts.is_empty(), "no .txt letters in {dirs:?}");
    let tmp = std::env::temp_dir().join(format!("xinfang-bench-rules-{}", std::process::id()));
    let url = match db {
        Some(url) => url.to_string(),
        None => format!("sqlite://{}?mode=rwc", tmp.join("bench.db").display()),
    };
    let store = Store::open(&url).await?;
    let t = Instant::now();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let already = store.count().await? as usize;
    let mut seeded = already;
    let base = chrono::Utc::now().timestamp_millis() - 400 * 86_400_000;
    while seeded < cases {
        let n = (cases - seeded).min(2000);
        let rows: Vec<(Fingerprint, Vec<String>)> = (0..n).map(|_| synthetic(&u, &mut rng)).collect();
        fixtures::insert_synthetic(&store, seeded as u64, &rows, base).await?;
        seeded += n;
    }
    if seeded > already {
        println!(
            "seeded {} synthetic cases in {:.1} s ({} in the store)",
            seeded - already,
            t.elapsed().as_secs_f64(),
            store.count().await?
        );
    }
    let limits = u.candidate_limits();
    let today = chrono::Local::now().date_naive();
    let mut lookups = Vec::with_capacity(letters);
    let (mut t_rules, mut t_lookup, mut t_judge) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let mut candidates_total = 0usize;
    let start = Instant::now();
    for i in 0..letters {
        let text = &texts[i % texts.len()];
        let t0 = Instant::now();
        let mut understanding = u.understand(text, today);
        let t1 = Instant::now();
        let candidates = fixtures::repeat_candidates_of(&store, &understanding.lookup_keys, limits).await?;
        let t2 = Instant::now();
        u.settle(&mut understanding, &candidates, today);
        let t3 = Instant::now();
        candidates_total += candidates.len();
        t_rules += t1 - t0;
        t_lookup += t2 - t1;
        t_judge += t3 - t2;
        lookups.push(t2 - t1);
    }
    let wall = start.elapsed();
    lookups.sort();
    let rate = letters as f64 / wall.as_secs_f64();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{letters} letters ({} distinct texts), one thread, store with {} cases ({})",
        texts.len(),
        store.count().await?,
        xinfang::store::display_url(&url).split('?').next().unwrap_or("")
    );
    println!("{:<34} {:>10} {:>12}", "", "measured", "target");
    println!("{:<34} {:>10.0} {:>12}", "letters per second", rate, "≥ 300");
    println!("{:<34} {:>10.2} {:>12}", "repeat lookup p50 (ms)", ms(percentile(&lookups, 0.50)), "");
    println!("{:<34} {:>10.2} {:>12}", "repeat lookup p99 (ms)", ms(percentile(&lookups, 0.99)), "< 20");
    println!("{:<34} {:>10.2}", "segment+tag+extract+rules (ms/letter)", ms(t_rules) / letters as f64);
    println!("{:<34} {:>10.2}", "repeat lookup (ms/letter)", ms(t_lookup) / letters as f64);
    println!("{:<34} {:>10.2}", "repeat judging (ms/letter)", ms(t_judge) / letters as f64);
    println!("{:<34} {:>10.1}", "candidates compared per letter", candidates_total as f64 / letters as f64);
    store.close().await;
    if db.is_none() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    Ok(())
}
