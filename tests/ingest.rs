//! The spine end to end with real tesseract on the committed samples: scans and typed
//! letters become numbered cases with their text; the same bytes again are a duplicate;
//! `ocr`, `show` and `list` read what users expect. CER bounds use the ground truth.

use crate::support::*;
use xinfang::metrics::CerCount;

fn truth(stem: &str, pages: u32) -> String {
    (1..=pages)
        .map(|p| std::fs::read_to_string(sample(&format!("truth/{stem}.p{p}.txt"))).expect("truth file"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn assert_cer(text: &str, stem: &str, pages: u32, bound: f64) {
    assert_cer_against(text, &truth(stem, pages), stem, bound);
}

fn assert_cer_against(text: &str, truth: &str, stem: &str, bound: f64) {
    let cer = CerCount::of(text, truth).rate().expect("truth has text");
    assert!(cer <= bound, "{stem}: CER {:.2}% above {:.1}%\n{text}", cer * 100.0, bound * 100.0);
}

/// The stored text has the reporter's identity taken out; the truth is compared with the same
/// identity (read through `xinfang identity`) taken out of it.
fn assert_case_cer(s: &Scratch, report: &serde_json::Value, stem: &str, pages: u32, bound: f64) {
    let case = report["case_no"].as_str().expect("case_no");
    let out = s.run(&["identity", case, "--reader", "test", "--role", "信访室负责人", "--purpose", "CER check"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let identity: xinfang_models::ReporterIdentity = serde_json::from_str(&stdout).unwrap_or_default();
    let truth = xinfang::understand::replace_identity(&truth(stem, pages), &identity);
    assert_cer_against(report["text"].as_str().expect("text"), &truth, stem, bound);
}

#[test]
fn scans_and_typed_letters_become_numbered_cases_and_repeats_are_duplicates() {
    let s = Scratch::new();
    let year = chrono::Local::now().format("%Y").to_string();
    // A mailroom batch folder: a scan, a letter scanned page by page (a sub-folder), a typed letter.
    let png = sample("scans/l01_ming_clean.png");
    let txt = sample("text/t03_fullwidth_gambling.txt");
    s.write("batch/01-scan.png", &std::fs::read(&png).unwrap());
    for page in ["page-01.png", "page-02.jpg"] {
        s.write(
            &format!("batch/02-letter/{page}"),
            &std::fs::read(sample(&format!("scans/l10_wenkai_folder/{page}"))).unwrap(),
        );
    }
    s.write("batch/03-typed.txt", &std::fs::read(&txt).unwrap());
    s.write("batch/.hidden-scan.png", &std::fs::read(&png).unwrap());
    let out = s.run(&["ingest", "--json", "batch"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r = json_lines(&out);
    assert_eq!(r.len(), 3);
    for (i, report) in r.iter().enumerate() {
        assert_eq!(report["status"], "registered", "{report}");
        assert_eq!(report["case_no"], format!("QLX-{year}-X-{:06}", i + 1), "numbers follow input order");
        assert_eq!(report["sha256"].as_str().map(str::len), Some(64));
    }
    assert!(r[0]["source"].as_str().unwrap().ends_with("01-scan.png"), "{}", r[0]);
    assert_eq!(r[0]["pages"], 1);
    assert_eq!(r[1]["pages"], 2, "a sub-folder is one letter, its files are its pages");
    let conf = r[0]["ocr_confidence"].as_f64().expect("scan has a confidence");
    assert!(conf > 0.6 && conf <= 1.0, "{conf}");
    assert!(r[2]["ocr_confidence"].is_null(), "typed letters are not OCR'd");
    // 5 %: a clean page is no longer smoothed by a median (issue 13: it read 0.6 % with it,
    // 2.1 % without; clean pages of other fonts read worse with it), and the redacted case
    // text is shorter than the page, which raises its rate.
    assert_case_cer(&s, &r[0], "l01_ming_clean", 1, 0.05);
    assert_case_cer(&s, &r[1], "l10_wenkai_folder", 2, 0.05);
    let typed = r[2]["text"].as_str().unwrap();
    assert!(!typed.contains('２') && typed.contains("2024"), "full-width digits are folded: {typed}");

    // The same bytes again register nothing new.
    let again = s.run(&["ingest", "--json", png.to_str().unwrap()]);
    // (the same bytes under another name and path)
    assert!(again.status.success());
    let a = json_lines(&again);
    assert_eq!(a[0]["status"], "duplicate");
    assert_eq!(a[0]["case_no"], r[0]["case_no"]);

    // The originals are kept content-addressed.
    let sha = r[0]["sha256"].as_str().unwrap();
    let kept = s.data().join("originals").join(&sha[..2]).join(&sha[2..4]).join(sha);
    assert_eq!(std::fs::read(kept).expect("original stored"), std::fs::read(&png).unwrap());

    let list = s.run(&["list"]);
    let listing = String::from_utf8_lossy(&list.stdout);
    assert!(listing.contains("3 in the store"), "{listing}");
    let show = s.run(&["show", r[1]["case_no"].as_str().unwrap()]);
    let shown = String::from_utf8_lossy(&show.stdout);
    assert!(show.status.success() && shown.contains("--- page 2"), "{shown}");
    assert!(shown.contains("page-01.png") && shown.contains("page-02.jpg"), "originals listed in page order: {shown}");
}

#[test]
fn table_output_is_readable_and_counts_outcomes() {
    let s = Scratch::new();
    let txt = sample("text/t01_dibao_online.txt");
    s.write("bad.pdf", b"<html>not a pdf</html>");
    let out = s.run(&["ingest", txt.to_str().unwrap(), "bad.pdf"]);
    assert_eq!(out.status.code(), Some(2));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("registered") && table.contains("failed"), "{table}");
    assert!(table.contains("2 letter(s): 1 registered, 0 duplicate, 1 failed"), "{table}");
}

#[test]
fn pdf_variants_and_tiffs_are_read() {
    // DCT, Flate with PNG predictors (one page upside down), CCITT G4, a real text layer,
    // multi-page G4 TIFF.
    let s = Scratch::new();
    let outdir = s.path().join("out");
    let files = [
        "l07_kaitim_dct.pdf",
        "l08_ming_flate.pdf",
        "l09_kai_ccitt.pdf",
        "l12_online_form_text.pdf",
        "l04_song_g4.tif",
    ];
    let mut args = vec!["ocr".to_string(), "--out".into(), outdir.display().to_string()];
    args.extend(files.iter().map(|f| sample(&format!("scans/{f}")).display().to_string()));
    let out = s.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let read = |stem: &str| std::fs::read_to_string(outdir.join(format!("{stem}.txt"))).expect("ocr output");
    assert_cer(&read("l07_kaitim_dct"), "l07_kaitim_dct", 3, 0.05);
    assert_cer(&read("l08_ming_flate"), "l08_ming_flate", 2, 0.05);
    assert_cer(&read("l09_kai_ccitt"), "l09_kai_ccitt", 2, 0.05);
    assert_cer(&read("l12_online_form_text"), "l12_online_form_text", 1, 0.01);
    assert_cer(&read("l04_song_g4"), "l04_song_g4", 2, 0.05);
}

#[test]
fn sideways_and_skewed_scans_are_straightened() {
    let s = Scratch::new();
    let rot = sample("scans/l06_notoserif_rot90.png");
    let poor = sample("scans/l03_hei_poor.jpg");
    let out = s.run(&["ingest", "--json", rot.to_str().unwrap(), poor.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r = json_lines(&out);
    assert_case_cer(&s, &r[0], "l06_notoserif_rot90", 1, 0.05);
    assert_case_cer(&s, &r[1], "l03_hei_poor", 1, 0.05);
    let show = s.run(&["show", "--json", r[0]["case_no"].as_str().unwrap()]);
    let detail: serde_json::Value = serde_json::from_slice(&show.stdout).expect("json");
    let rotation = detail["pages"][0]["rotation"].as_u64().unwrap();
    assert!(rotation == 90 || rotation == 270, "rotated page turned upright: {rotation}");
    assert!(!detail["pages"][0]["words"].as_array().unwrap().is_empty(), "word boxes kept for review");
}

/// Runs `xinfang ocr --out DIR` on the sample files `pages` (paths under samples/) and
/// returns each file's text, in order.
fn ocr_samples(s: &Scratch, pages: &[&str]) -> Vec<String> {
    let outdir = s.path().join("out");
    let mut args = vec!["ocr".to_string(), "--out".into(), outdir.display().to_string()];
    args.extend(pages.iter().map(|page| sample(page).display().to_string()));
    let out = s.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    pages
        .iter()
        .map(|page| {
            let stem = std::path::Path::new(page).file_stem().and_then(|s| s.to_str()).expect("stem");
            std::fs::read_to_string(outdir.join(format!("{stem}.txt"))).expect("ocr output")
        })
        .collect()
}

#[test]
fn pages_unlike_the_samples_are_read_in_their_own_layout() {
    // Made by samples/pages.py (tuning half): two columns at 150 dpi, badly scanned; a
    // ruled table; a thin-stroked bilevel fax at 200 dpi; a clean thin 宋体 page at 150 dpi.
    // Each was read at 25-87 % CER before the cleaning had to be earned (a median that
    // erased thin strokes, specks that were the dots of 氵, columns read straight across).
    let s = Scratch::new();
    let pages = [
        ("g0074-twocol-hei-noto-150-bad", "jpg"),
        ("g0062-table-ming-uming-150-clean", "png"),
        ("g0058-fax-fangsong-wenkai-light-200-mild", "tif"),
        ("g0000-plain-song-sungtil-150-clean", "png"),
    ];
    let files: Vec<String> = pages.iter().map(|(id, ext)| format!("pages/{id}.{ext}")).collect();
    let texts = ocr_samples(&s, &files.iter().map(String::as_str).collect::<Vec<_>>());
    for ((id, _), text) in pages.iter().zip(&texts) {
        let truth = std::fs::read_to_string(sample(&format!("pages/{id}.p1.txt"))).expect("truth");
        assert_cer_against(text, &truth, id, 0.05);
    }
    // The two columns are read one after the other, not line by line across the gutter.
    let twocol = &texts[0];
    let truth = std::fs::read_to_string(sample("pages/g0074-twocol-hei-noto-150-bad.p1.txt")).expect("truth");
    let first_line: String =
        truth.lines().next().expect("a line").chars().filter(|c| !c.is_whitespace()).take(12).collect();
    let read: String = twocol.chars().filter(|c| !c.is_whitespace()).collect();
    assert!(read.contains(&first_line), "the first line of the left column is read whole: {first_line}\n{twocol}");
}

#[test]
fn the_second_engine_alone_reads_the_characters_a_careless_decoder_drops() {
    // An off-the-shelf PP-OCR decoder was seen to drop 干 工 手 生 心 用 走 systematically.
    // Here the second engine reads every line tesseract found and its reading is kept
    // whatever its confidence: each of those characters the pages hold must come out.
    let s = Scratch::new();
    s.configure(&[
        ("second_engine_first_below = 0.89", "second_engine_first_below = 1.0"),
        ("second_engine_min_conf = 0.90", "second_engine_min_conf = 0.0"),
    ]);
    let pages = [
        ("scans/l11_hei_mild.jpg", "truth/l11_hei_mild.p1.txt"),
        ("scans/l06_notoserif_rot90.png", "truth/l06_notoserif_rot90.p1.txt"),
        ("pages/g0074-twocol-hei-noto-150-bad.jpg", "pages/g0074-twocol-hei-noto-150-bad.p1.txt"),
        ("pages/g0058-fax-fangsong-wenkai-light-200-mild.tif", "pages/g0058-fax-fangsong-wenkai-light-200-mild.p1.txt"),
    ];
    let texts = ocr_samples(&s, &pages.map(|(page, _)| page));
    let (mut read_all, mut truth_all) = (String::new(), String::new());
    for ((page, truth), text) in pages.iter().zip(&texts) {
        let truth = std::fs::read_to_string(sample(truth)).expect("truth");
        assert_cer_against(text, &truth, page, 0.05);
        read_all.push_str(text);
        truth_all.push_str(&truth);
    }
    for c in ['干', '工', '手', '生', '心', '用', '走'] {
        let (read, truth) = (read_all.matches(c).count(), truth_all.matches(c).count());
        assert!(read >= truth, "{c}: {read} read of the {truth} on the pages");
    }
}
