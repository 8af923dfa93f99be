//! `xinfang eval LABELS`: runs labelled letters through the whole intake (in label order,
//! into a fresh temporary store per set) and measures the decisions against the labels:
//! accuracy per field with confusion matrices, precision and recall of repeat and new-facts
//! links, the share of letters sent to review and how right the letters decided alone are
//! (with the risk–coverage line: accuracy when the least sure 10, 20, 30 % go to review).
//!
//! Two label formats: `labels.json` (`{"letters": [{"file", …}]}`, one set) and the
//! mailbag's `labels.jsonl` (one object per line with `id`; the letter is `ID.txt`; one set
//! per id prefix, since each writer invented their own people). A set can be cut into the
//! part rules are tuned on and the part only measured (`Part`): whole matters (a letter and
//! every repeat or new-facts letter of it) go to one side, alternately in arrival order
//! within each writer, so a repeat never sits across the cut from its original.

use crate::config::Config;
use crate::intake::{Intake, LetterInput, LetterReport};
use crate::stages::ocr::OcrPool;
use crate::store::Store;
use crate::understand::Understander;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;
use xinfang_models::LetterClass;

/// Problems running an evaluation.
#[derive(Debug, Error)]
pub enum EvalError {
    #[error("cannot read labels {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot parse labels {path}: {source}")]
    Parse { path: PathBuf, source: serde_json::Error },
    #[error("labels {path}, line {line}: {source}")]
    ParseLine { path: PathBuf, line: usize, source: serde_json::Error },
    #[error("label of {file}: unknown class {class}")]
    Class { file: String, class: String },
    #[error("label of {file}: {link} names {target}, which is not an earlier letter of its set")]
    Link { file: String, link: &'static str, target: String },
    #[error("{0}")]
    System(String),
}

/// Which letters of a labelled set are measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Every letter.
    All,
    /// The matters rules are tuned on (the first, third, fifth … matter of each set).
    Tune,
    /// The matters only measured, never tuned on (the second, fourth …).
    HeldOut,
}

impl Part {
    pub fn parse(s: &str) -> Option<Part> {
        match s {
            "all" => Some(Part::All),
            "tune" => Some(Part::Tune),
            "held-out" => Some(Part::HeldOut),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Part::All => "all",
            Part::Tune => "tune",
            Part::HeldOut => "held-out",
        }
    }
}

/// The labels file: letters in arrival order.
#[derive(Debug, Deserialize)]
pub struct LabelFile {
    pub letters: Vec<Label>,
}

/// The expected decision for one letter. `repeat_of`/`new_facts_of` name earlier files.
#[derive(Debug, Clone, Deserialize)]
pub struct Label {
    pub file: String,
    pub class: String,
    pub in_scope: bool,
    pub named: bool,
    pub handling_level: Option<String>,
    pub repeat_of: Option<String>,
    pub new_facts_of: Option<String>,
    #[serde(default)]
    pub tricky: Option<String>,
}

/// A line of the mailbag's `labels.jsonl`.
#[derive(Debug, Deserialize)]
struct MailbagLabel {
    id: String,
    class: String,
    in_scope: bool,
    named: bool,
    handling_level: Option<String>,
    repeat_of: Option<String>,
    new_facts_of: Option<String>,
    #[serde(default)]
    note: Option<String>,
}

/// Letters ingested together into one store, in arrival order.
#[derive(Debug, Clone)]
pub struct LabelSet {
    pub name: String,
    pub dir: PathBuf,
    pub letters: Vec<Label>,
}

/// Reads a labels file: `.jsonl` is the mailbag format (a set per id prefix), anything else
/// the `{"letters": […]}` format (one set named after its folder).
pub fn load(path: &Path) -> Result<Vec<LabelSet>, EvalError> {
    let text = std::fs::read_to_string(path).map_err(|source| EvalError::Read { path: path.to_path_buf(), source })?;
    let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let sets = if path.extension().is_some_and(|e| e == "jsonl") {
        let mut sets: Vec<LabelSet> = Vec::new();
        for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let m: MailbagLabel = serde_json::from_str(line).map_err(|source| EvalError::ParseLine {
                path: path.to_path_buf(),
                line: i + 1,
                source,
            })?;
            let prefix: String = m.id.chars().take_while(|c| !c.is_ascii_digit()).collect();
            let file = |id: &str| format!("{id}.txt");
            let label = Label {
                file: file(&m.id),
                class: m.class,
                in_scope: m.in_scope,
                named: m.named,
                handling_level: m.handling_level,
                repeat_of: m.repeat_of.as_deref().map(file),
                new_facts_of: m.new_facts_of.as_deref().map(file),
                tricky: m.note,
            };
            match sets.iter_mut().find(|s| s.name == prefix) {
                Some(s) => s.letters.push(label),
                None => sets.push(LabelSet { name: prefix, dir: dir.clone(), letters: vec![label] }),
            }
        }
        sets
    } else {
        let f: LabelFile =
            serde_json::from_str(&text).map_err(|source| EvalError::Parse { path: path.to_path_buf(), source })?;
        let name = dir.file_name().map_or_else(|| "letters".to_string(), |n| n.to_string_lossy().into_owned());
        vec![LabelSet { name, dir, letters: f.letters }]
    };
    for set in &sets {
        check(set)?;
    }
    Ok(sets)
}

/// Every class is known and every link names an earlier letter of the same set.
fn check(set: &LabelSet) -> Result<(), EvalError> {
    for (i, l) in set.letters.iter().enumerate() {
        if LetterClass::parse(&l.class).is_none() {
            return Err(EvalError::Class { file: l.file.clone(), class: l.class.clone() });
        }
        for (link, target) in [("repeat_of", &l.repeat_of), ("new_facts_of", &l.new_facts_of)] {
            if let Some(t) = target {
                if !set.letters[..i].iter().any(|e| &e.file == t) {
                    return Err(EvalError::Link { file: l.file.clone(), link, target: t.clone() });
                }
            }
        }
    }
    Ok(())
}

/// The letters of `set` in `part`: matters (a letter with all that link to it, directly or
/// through another) numbered in arrival order; even numbers are tuned on, odd ones held out.
pub fn part_of(set: &LabelSet, part: Part) -> LabelSet {
    let index: HashMap<&str, usize> = set.letters.iter().enumerate().map(|(i, l)| (l.file.as_str(), i)).collect();
    let mut parent: Vec<usize> = (0..set.letters.len()).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    for (i, l) in set.letters.iter().enumerate() {
        for t in [&l.repeat_of, &l.new_facts_of].into_iter().flatten() {
            if let Some(&j) = index.get(t.as_str()) {
                let (a, b) = (root(&mut parent, i), root(&mut parent, j));
                parent[a.max(b)] = a.min(b);
            }
        }
    }
    // A matter's number is the order of its first letter among the matters' first letters.
    let mut number: HashMap<usize, usize> = HashMap::new();
    let mut matter = Vec::with_capacity(set.letters.len());
    for i in 0..set.letters.len() {
        let r = root(&mut parent, i);
        let next = number.len();
        matter.push(*number.entry(r).or_insert(next));
    }
    let keep = |m: usize| match part {
        Part::All => true,
        Part::Tune => m.is_multiple_of(2),
        Part::HeldOut => m % 2 == 1,
    };
    let letters = set.letters.iter().zip(&matter).filter(|(_, &m)| keep(m)).map(|(l, _)| l.clone()).collect();
    LabelSet { name: set.name.clone(), dir: set.dir.clone(), letters }
}

/// Precision and recall of links to earlier letters (a hit must name the right letter).
#[derive(Debug, Default, Clone, Copy)]
pub struct LinkScore {
    pub true_pos: usize,
    pub predicted: usize,
    pub actual: usize,
}

impl LinkScore {
    pub fn precision(&self) -> f64 {
        if self.predicted == 0 {
            1.0
        } else {
            self.true_pos as f64 / self.predicted as f64
        }
    }
    pub fn recall(&self) -> f64 {
        if self.actual == 0 {
            1.0
        } else {
            self.true_pos as f64 / self.actual as f64
        }
    }
    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }
    fn add(&mut self, o: &LinkScore) {
        self.true_pos += o.true_pos;
        self.predicted += o.predicted;
        self.actual += o.actual;
    }
}

/// Raw counts of one set (or of all together).
#[derive(Debug, Default, Clone)]
pub struct Counts {
    pub letters: usize,
    pub scope: usize,
    pub class: usize,
    pub named: usize,
    pub level: usize,
    /// Letters labelled in scope: the level is measured over them.
    pub level_n: usize,
    pub reviewed: usize,
    pub alone_right: usize,
    pub repeat: LinkScore,
    pub new_facts: LinkScore,
}

fn share(n: usize, of: usize) -> f64 {
    if of == 0 {
        1.0
    } else {
        n as f64 / of as f64
    }
}

impl Counts {
    pub fn scope(&self) -> f64 {
        share(self.scope, self.letters)
    }
    pub fn class(&self) -> f64 {
        share(self.class, self.letters)
    }
    pub fn named(&self) -> f64 {
        share(self.named, self.letters)
    }
    pub fn level(&self) -> f64 {
        share(self.level, self.level_n)
    }
    /// Share of the letters sent to review.
    pub fn review_rate(&self) -> f64 {
        if self.letters == 0 {
            0.0
        } else {
            share(self.reviewed, self.letters)
        }
    }
    /// Of the letters nobody reviews, the share right on class, scope, 实名 and level.
    pub fn alone_right(&self) -> f64 {
        share(self.alone_right, self.letters - self.reviewed)
    }
    fn add(&mut self, o: &Counts) {
        self.letters += o.letters;
        self.scope += o.scope;
        self.class += o.class;
        self.named += o.named;
        self.level += o.level;
        self.level_n += o.level_n;
        self.reviewed += o.reviewed;
        self.alone_right += o.alone_right;
        self.repeat.add(&o.repeat);
        self.new_facts.add(&o.new_facts);
    }
}

/// The measured result.
#[derive(Debug, Default)]
pub struct EvalReport {
    pub part: Option<&'static str>,
    pub total: Counts,
    pub sets: Vec<(String, Counts)>,
    /// (field, expected, decided) → count; fields 问题类别, 实名, 分级受理.
    pub confusion: BTreeMap<(&'static str, String, String), usize>,
    /// Per letter: the confidence of its least sure field and whether all four fields are right.
    pub outcomes: Vec<(f32, bool)>,
    /// Per field (问题类别, 实名, 分级受理, 重复件): each letter's confidence in it and whether it
    /// is right, for the reliability table (how right each confidence level turns out).
    pub reliability: BTreeMap<&'static str, Vec<(f32, bool)>>,
    /// One line per letter with a wrong field.
    pub mistakes: Vec<String>,
}

/// The targets of issue 14 (higher is better, except the review rate: at most).
pub const TARGETS: [(&str, f64); 8] = [
    ("scope", 0.95),
    ("class", 0.93),
    ("实名", 0.97),
    ("level", 0.95),
    ("repeat F1", 0.90),
    ("repeat P", 0.95),
    ("review", 0.25),
    ("alone right", 0.98),
];

impl EvalReport {
    /// Each target with the measured value, and whether it is met.
    pub fn against_targets(&self) -> Vec<(&'static str, f64, f64, bool)> {
        let t = &self.total;
        TARGETS
            .iter()
            .map(|&(name, target)| {
                let v = match name {
                    "scope" => t.scope(),
                    "class" => t.class(),
                    "实名" => t.named(),
                    "level" => t.level(),
                    "repeat F1" => t.repeat.f1(),
                    "repeat P" => t.repeat.precision(),
                    "review" => t.review_rate(),
                    _ => t.alone_right(),
                };
                let met = if name == "review" { v <= target + 1e-9 } else { v + 1e-9 >= target };
                (name, v, target, met)
            })
            .collect()
    }

    /// Accuracy (all four fields right) of the letters left when the least sure `share` of
    /// them go to review: the risk–coverage line.
    pub fn accuracy_when_reviewing(&self, share: f64) -> f64 {
        let mut o = self.outcomes.clone();
        o.sort_by(|a, b| a.0.total_cmp(&b.0));
        let k = ((o.len() as f64) * share).round() as usize;
        let rest = &o[k.min(o.len())..];
        accuracy_of(rest)
    }

    /// The printed report.
    pub fn render(&self, verbose: bool) -> String {
        let mut out = String::new();
        let pct = |v: f64| format!("{:.1} %", v * 100.0);
        let t = &self.total;
        out.push_str(&format!(
            "{} letters{}\n\n",
            t.letters,
            self.part.map(|p| format!(" (part: {p})")).unwrap_or_default()
        ));
        out.push_str(&format!(
            "{:<10} {:>4} {:>7} {:>7} {:>7} {:>7} {:>16} {:>7} {:>7}\n",
            "set", "n", "scope", "class", "实名", "level", "repeat P/R/F1", "review", "alone✓"
        ));
        let row = |name: &str, c: &Counts| {
            format!(
                "{:<10} {:>4} {:>7} {:>7} {:>7} {:>7} {:>16} {:>7} {:>7}\n",
                name,
                c.letters,
                pct(c.scope()),
                pct(c.class()),
                pct(c.named()),
                pct(c.level()),
                format!("{:.2}/{:.2}/{:.2}", c.repeat.precision(), c.repeat.recall(), c.repeat.f1()),
                pct(c.review_rate()),
                pct(c.alone_right())
            )
        };
        for (name, c) in &self.sets {
            out.push_str(&row(name, c));
        }
        if self.sets.len() > 1 {
            out.push_str(&row("all", t));
        }
        out.push_str(&format!("\n{:<12} {:>9} {:>9}\n", "target", "measured", "target"));
        for (name, v, target, ok) in self.against_targets() {
            let f1 = name.starts_with("repeat");
            let shown = if f1 { format!("{v:.3}") } else { pct(v) };
            let op = if name == "review" { "≤" } else { "≥" };
            let target = if f1 { format!("{op} {target:.2}") } else { format!("{op} {:.0} %", target * 100.0) };
            out.push_str(&format!("{name:<12} {shown:>9} {target:>9}  {}\n", if ok { "met" } else { "NOT MET" }));
        }
        for (name, s) in [("repeat", t.repeat), ("new facts", t.new_facts)] {
            out.push_str(&format!(
                "{name:<12} precision {:.3} recall {:.3} F1 {:.3} ({} right of {} decided, {} labelled)\n",
                s.precision(),
                s.recall(),
                s.f1(),
                s.true_pos,
                s.predicted,
                s.actual
            ));
        }
        out.push_str(&format!(
            "\nrisk–coverage (all four fields right among the letters not reviewed): at the operating point {} sent, {} right",
            pct(t.review_rate()),
            pct(t.alone_right())
        ));
        for s in [0.1, 0.2, 0.3] {
            out.push_str(&format!("; least sure {:.0} % sent: {}", s * 100.0, pct(self.accuracy_when_reviewing(s))));
        }
        out.push('\n');
        out.push_str("\nreliability (letters and share right, by the confidence the rules gave the field)\n");
        const BINS: [(f32, f32); 5] = [(0.0, 0.6), (0.6, 0.7), (0.7, 0.8), (0.8, 0.9), (0.9, 1.01)];
        out.push_str(&format!("{:<8}", ""));
        for (lo, hi) in BINS {
            out.push_str(&format!("{:>14}", format!("{lo:.1}–{:.1}", hi.min(1.0))));
        }
        out.push('\n');
        for field in ["问题类别", "实名", "分级受理", "重复件"] {
            let Some(v) = self.reliability.get(field) else { continue };
            out.push_str(&format!("{:<8}", field.chars().take(4).collect::<String>()));
            for (lo, hi) in BINS {
                let inside: Vec<_> = v.iter().filter(|(c, _)| *c >= lo && *c < hi).collect();
                let cell = if inside.is_empty() {
                    "-".to_string()
                } else {
                    let right = inside.iter().filter(|(_, ok)| *ok).count();
                    format!("{} {:.0} %", inside.len(), 100.0 * right as f64 / inside.len() as f64)
                };
                out.push_str(&format!("{cell:>14}"));
            }
            out.push('\n');
        }
        let classes: Vec<String> = LetterClass::ALL.iter().map(|c| c.as_str().to_string()).collect();
        let two = |a: &str, b: &str| vec![a.to_string(), b.to_string()];
        let levels: Vec<String> = ["本级", "上级", "下级", "-"].iter().map(|s| s.to_string()).collect();
        for (field, names) in [("问题类别", classes), ("实名", two("实名", "匿名")), ("分级受理", levels)]
        {
            out.push_str(&format!("\n{field} confusion (rows: label, columns: decided)\n{:<8}", ""));
            for n in &names {
                out.push_str(&format!("{:>7}", n.chars().take(2).collect::<String>()));
            }
            out.push('\n');
            for r in &names {
                out.push_str(&format!("{:<8}", r.chars().take(4).collect::<String>()));
                for c in &names {
                    let n = self.confusion.get(&(field, r.clone(), c.clone())).copied().unwrap_or(0);
                    out.push_str(&format!("{n:>7}"));
                }
                out.push('\n');
            }
        }
        if verbose && !self.mistakes.is_empty() {
            out.push_str("\nmistakes\n");
            for m in &self.mistakes {
                out.push_str(m);
                out.push('\n');
            }
        }
        out
    }
}

fn accuracy_of(o: &[(f32, bool)]) -> f64 {
    share(o.iter().filter(|x| x.1).count(), o.len())
}

/// Runs each labelled set (the `part` of it) through a fresh temporary store and scores the
/// decisions.
pub async fn evaluate(
    cfg: &Config,
    labels_path: &Path,
    part: Part,
    understander: Arc<Understander>,
) -> Result<EvalReport, EvalError> {
    let sets: Vec<LabelSet> = load(labels_path)?.iter().map(|s| part_of(s, part)).collect();
    let mut report = EvalReport { part: (part != Part::All).then_some(part.as_str()), ..EvalReport::default() };
    for set in sets.iter().filter(|s| !s.letters.is_empty()) {
        let reports = run_set(cfg, set, Arc::clone(&understander)).await?;
        let counts = score(&set.letters, &reports, &mut report);
        report.total.add(&counts);
        report.sets.push((set.name.clone(), counts));
    }
    Ok(report)
}

/// One set through the intake, in order, into a temporary store removed afterwards.
async fn run_set(
    cfg: &Config,
    set: &LabelSet,
    understander: Arc<Understander>,
) -> Result<Vec<LetterReport>, EvalError> {
    let stamp = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
    let data = std::env::temp_dir().join(format!("xinfang-eval-{}-{stamp}", std::process::id()));
    let mut cfg = cfg.clone();
    cfg.store.data_dir = data.clone();
    let sys = |e: &dyn std::fmt::Display| EvalError::System(e.to_string());
    let result = async {
        let store = Store::open(&cfg.default_database_url()).await.map_err(|e| sys(&e))?;
        let pool = OcrPool::start(&cfg.ocr, &cfg.limits, 1).map_err(|e| sys(&e))?;
        let cfg = Arc::new(cfg.clone());
        let intake = Intake::new(Arc::clone(&cfg), store.clone(), pool.clone(), understander);
        let inputs: Vec<LetterInput> = set
            .letters
            .iter()
            .map(|l| LetterInput { source: l.file.clone(), ..LetterInput::at(&set.dir.join(&l.file)) })
            .collect();
        let reports = intake.run(inputs, |_| {}).await.map_err(|e| sys(&e))?;
        pool.shutdown().await;
        store.close().await;
        Ok::<_, EvalError>(reports)
    }
    .await;
    let _ = std::fs::remove_dir_all(&data);
    result
}

/// Scores one set's reports against its labels; adds confusion, outcomes and mistakes to `rep`.
fn score(labels: &[Label], reports: &[LetterReport], rep: &mut EvalReport) -> Counts {
    let file_of: BTreeMap<String, String> =
        reports.iter().filter_map(|r| r.case_no.clone().map(|c| (c, r.source.clone()))).collect();
    let mut c = Counts { letters: labels.len(), ..Counts::default() };
    let yes_no = |b: bool| if b { "实名" } else { "匿名" }.to_string();
    for (l, r) in labels.iter().zip(reports) {
        let d = r.decision.as_ref();
        let decided = d.map_or("failed", |d| d.class.as_str()).to_string();
        *rep.confusion.entry(("问题类别", l.class.clone(), decided.clone())).or_default() += 1;
        let mut wrong = Vec::new();
        let in_scope = d.map(|d| d.in_scope);
        let scope_ok = in_scope == Some(l.in_scope);
        if !scope_ok {
            wrong.push(format!("scope {} not {}", in_scope.unwrap_or(false), l.in_scope));
        }
        let class_ok = decided == l.class;
        if !class_ok {
            wrong.push(format!("class {decided} not {}", l.class));
        }
        let is_named = d.map(|d| d.named);
        let named_ok = is_named == Some(l.named);
        if let Some(n) = is_named {
            *rep.confusion.entry(("实名", yes_no(l.named), yes_no(n))).or_default() += 1;
        }
        if !named_ok {
            wrong.push(format!("named {} not {}", is_named.unwrap_or(false), l.named));
        }
        let got = d.and_then(|d| d.handling_level).map(|h| h.as_str().to_string());
        let label_level = l.handling_level.clone().unwrap_or_else(|| "-".into());
        *rep.confusion
            .entry(("分级受理", label_level.clone(), got.clone().unwrap_or_else(|| "-".into())))
            .or_default() += 1;
        let level_ok = !l.in_scope || got == l.handling_level;
        if l.in_scope {
            c.level_n += 1;
            if level_ok {
                c.level += 1;
            } else {
                wrong.push(format!("level {} not {label_level}", got.unwrap_or_else(|| "-".into())));
            }
        }
        c.scope += usize::from(scope_ok);
        c.class += usize::from(class_ok);
        c.named += usize::from(named_ok);
        let all_right = scope_ok && class_ok && named_ok && level_ok;
        if r.review {
            c.reviewed += 1;
        } else if all_right {
            c.alone_right += 1;
        }
        rep.outcomes.push((d.map_or(0.0, |d| d.confidence.least().1), all_right));
        let conf = d.map(|d| d.confidence).unwrap_or_default();
        // The letters the links name, as files (a case number the set did not register stays).
        let linked_file = |c: Option<&String>| c.map(|c| file_of.get(c).cloned().unwrap_or_else(|| c.clone()));
        let repeat_file = linked_file(d.and_then(|d| d.repeat_of.as_ref()));
        let new_facts_file = linked_file(d.and_then(|d| d.new_facts_of.as_ref()));
        let repeat_ok = repeat_file == l.repeat_of && new_facts_file == l.new_facts_of;
        for (field, value, ok, counted) in [
            ("问题类别", conf.class, class_ok, true),
            ("实名", conf.named, named_ok, true),
            ("分级受理", conf.level, level_ok, l.in_scope),
            ("重复件", conf.repeat, repeat_ok, true),
        ] {
            if counted {
                rep.reliability.entry(field).or_default().push((value, ok));
            }
        }
        for (name, predicted_file, actual, s) in [
            ("repeat_of", repeat_file, &l.repeat_of, &mut c.repeat),
            ("new_facts_of", new_facts_file, &l.new_facts_of, &mut c.new_facts),
        ] {
            s.predicted += usize::from(predicted_file.is_some());
            s.actual += usize::from(actual.is_some());
            if predicted_file.is_some() && predicted_file == *actual {
                s.true_pos += 1;
            } else if predicted_file != *actual {
                wrong.push(format!(
                    "{name} {} not {}",
                    predicted_file.unwrap_or_else(|| "-".into()),
                    actual.clone().unwrap_or_else(|| "-".into())
                ));
            }
        }
        if !wrong.is_empty() {
            let why = d.map(|d| d.confidence.least()).map(|(f, v)| format!(" [least sure {f} {v:.2}]"));
            rep.mistakes.push(format!(
                "{}{}: {}{}",
                l.file,
                if r.review { " (review)" } else { "" },
                wrong.join("; "),
                why.unwrap_or_default()
            ));
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use xinfang_models::{Decision, IngestStatus};

    fn label(file: &str, class: &str, repeat_of: Option<&str>) -> Label {
        Label {
            file: file.into(),
            class: class.into(),
            in_scope: LetterClass::parse(class).is_some_and(LetterClass::in_scope),
            named: false,
            handling_level: LetterClass::parse(class).filter(|c| c.in_scope()).map(|_| "本级".into()),
            repeat_of: repeat_of.map(String::from),
            new_facts_of: None,
            tricky: None,
        }
    }

    fn report(file: &str, case: &str, class: LetterClass, repeat_of: Option<&str>, review: bool) -> LetterReport {
        let mut d = Decision::bare(class, "r1");
        d.handling_level = class.in_scope().then_some(xinfang_models::HandlingLevel::Own);
        d.repeat_of = repeat_of.map(String::from);
        d.review = review;
        let mut r = LetterReport::new(file, IngestStatus::Registered);
        r.case_no = Some(case.into());
        r.set_decision(&d);
        r
    }

    #[test]
    fn links_are_scored_by_the_letter_they_name_and_letters_decided_alone_are_counted() {
        let labels = [
            label("a.txt", "检举控告", None),
            label("b.txt", "检举控告", Some("a.txt")),
            label("c.txt", "业务范围外", None),
            label("d.txt", "无实质内容", None),
        ];
        let reports = [
            report("a.txt", "Q-1", LetterClass::Accusation, None, false),
            report("b.txt", "Q-2", LetterClass::Accusation, Some("Q-1"), false),
            report("c.txt", "Q-3", LetterClass::NoSubstance, None, false),
            report("d.txt", "Q-4", LetterClass::Accusation, None, true),
        ];
        let mut rep = EvalReport::default();
        let c = score(&labels, &reports, &mut rep);
        assert_eq!((c.repeat.true_pos, c.repeat.predicted, c.repeat.actual), (1, 1, 1));
        assert_eq!((c.class, c.scope, c.reviewed, c.alone_right), (2, 3, 1, 2));
        assert!((c.alone_right() - 2.0 / 3.0).abs() < 1e-9 && (c.review_rate() - 0.25).abs() < 1e-9);
        assert_eq!(rep.confusion.get(&("问题类别", "业务范围外".into(), "无实质内容".into())), Some(&1));
        assert!(rep.mistakes[0].starts_with("c.txt: class 无实质内容 not 业务范围外"), "{:?}", rep.mistakes);
        assert!(rep.mistakes[1].starts_with("d.txt (review): scope true not false"), "{:?}", rep.mistakes);
        assert_eq!(rep.mistakes.len(), 2, "{:?}", rep.mistakes);
    }

    #[test]
    fn a_repeat_stays_on_the_side_of_its_original() {
        let set = LabelSet {
            name: "M".into(),
            dir: PathBuf::from("."),
            letters: vec![
                label("1.txt", "检举控告", None),
                label("2.txt", "检举控告", None),
                label("3.txt", "检举控告", Some("1.txt")),
                label("4.txt", "检举控告", None),
                label("5.txt", "检举控告", Some("3.txt")),
                label("6.txt", "检举控告", Some("2.txt")),
            ],
        };
        let files = |p| part_of(&set, p).letters.into_iter().map(|l| l.file).collect::<Vec<_>>();
        assert_eq!(files(Part::Tune), ["1.txt", "3.txt", "4.txt", "5.txt"]);
        assert_eq!(files(Part::HeldOut), ["2.txt", "6.txt"]);
        assert_eq!(files(Part::All).len(), 6);
    }
}
