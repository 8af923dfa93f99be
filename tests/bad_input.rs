//! Bad input: each hostile file fails alone with a one-line error naming it and the reason,
//! its original is kept in quarantine with the reason beside it, and the rest of the batch
//! is registered. Nothing panics, hangs or exhausts memory.

use crate::support::*;

/// Builds every hostile file of the issue in `s`, returning (file name, words its error must contain).
fn hostile_files(s: &Scratch) -> Vec<(&'static str, &'static str)> {
    s.write("in/01-empty.png", b"");
    let jpeg = std::fs::read(sample("scans/l02_kai_mild.jpg")).expect("sample jpeg");
    s.write("in/02-truncated.jpg", &jpeg[..jpeg.len() / 3]);
    let page =
        image::GrayImage::from_fn(400, 300, |x, y| image::Luma([if (x / 7 + y / 5) % 3 == 0 { 0 } else { 255 }]));
    let png = png_bytes(&page);
    s.write("in/03-truncated.png", &png[..png.len() / 2]);
    s.write("in/04-page.pdf", b"<!DOCTYPE html>\n<html><head><title>404</title></head><body>Not found</body></html>\n");
    let noise: Vec<u8> = (0..50_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect();
    s.write("in/05-noise.tif", &noise);
    s.write("in/06-huge-header.png", &png_claiming(40_000, 40_000));
    let looping = pdf(
        &[
            b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
            b"<< /Type /Pages /Parent 2 0 R /Kids [2 0 R] /Count 1 >>".to_vec(),
        ],
        "",
    );
    s.write("in/07-looping-tree.pdf", &looping);
    s.write(
        "in/08-huge-image.pdf",
        &pdf_with_image("/Width 100000 /Height 100000 /ColorSpace /DeviceGray /BitsPerComponent 8", b"x"),
    );
    // 300 MB of zeros compress to about 300 kB: the image declares 1000 x 1000 pixels.
    let bomb = {
        use std::io::Write;
        let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        let chunk = vec![0u8; 1 << 20];
        for _ in 0..300 {
            enc.write_all(&chunk).expect("deflate");
        }
        enc.finish().expect("deflate")
    };
    s.write(
        "in/09-flate-bomb.pdf",
        &pdf_with_image(
            "/Width 1000 /Height 1000 /ColorSpace /DeviceGray /BitsPerComponent 8 /Filter /FlateDecode",
            &bomb,
        ),
    );
    s.write("in/10-many-pages.tif", &tiff_pages(300));
    let encrypted = pdf(
        &[
            b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>".to_vec(),
            b"<< /Filter /Standard /V 2 /R 3 /Length 128 /P -3904 /O <0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef> /U <fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210> >>".to_vec(),
        ],
        "/Encrypt 4 0 R /ID [<00112233445566778899aabbccddeeff> <00112233445566778899aabbccddeeff>]",
    );
    s.write("in/11-encrypted.pdf", &encrypted);
    vec![
        ("01-empty.png", "empty file"),
        ("02-truncated.jpg", "cannot decode jpeg"),
        ("03-truncated.png", "cannot decode png"),
        ("04-page.pdf", "HTML"),
        ("05-noise.tif", "not a supported format"),
        ("06-huge-header.png", "limits.max_decode_pixels"),
        ("07-looping-tree.pdf", "loops"),
        ("08-huge-image.pdf", "limits.max_decode_pixels"),
        ("09-flate-bomb.pdf", "inflates past"),
        ("10-many-pages.tif", "limits.max_pages_per_letter"),
        ("11-encrypted.pdf", "encrypted"),
    ]
}

#[test]
fn each_hostile_file_fails_alone_and_is_quarantined() {
    let s = Scratch::new();
    let expected = hostile_files(&s);
    // A good letter and a blank page go with them; both must be registered.
    s.write("in/12-good.txt", "关于反映石桥镇柳河村村委会主任截留低保金问题的举报\n".as_bytes());
    s.write("in/13-blank.png", &png_bytes(&image::GrayImage::from_pixel(1240, 1754, image::Luma([245]))));
    let out = s.run(&["ingest", "--json", "in"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "exit status 2 when a letter failed; stderr:\n{stderr}");
    let reports = json_lines(&out);
    assert_eq!(reports.len(), expected.len() + 2, "one report per letter, in input order");
    for ((name, reason), report) in expected.iter().zip(&reports) {
        assert!(report["source"].as_str().unwrap_or("").ends_with(name), "order: {report}");
        assert_eq!(report["status"], "failed", "{name}: {report}");
        let error = report["error"].as_str().unwrap_or("");
        assert!(
            error.to_lowercase().contains(&reason.to_lowercase()),
            "{name}: error {error:?} should mention {reason:?}"
        );
        let lines: Vec<&str> = stderr.lines().filter(|l| l.contains(name)).collect();
        assert_eq!(lines.len(), 1, "exactly one error line names {name}:\n{stderr}");
        assert!(lines[0].starts_with("error: "), "{}", lines[0]);
        let quarantined = report["quarantined"].as_str().unwrap_or_else(|| panic!("{name} not quarantined: {report}"));
        let kept = std::fs::metadata(quarantined).map(|m| m.len()).unwrap_or_else(|e| panic!("{quarantined}: {e}"));
        let original = std::fs::metadata(s.path().join("in").join(name)).map(|m| m.len()).expect("original");
        assert_eq!(kept, original, "{name}: quarantine keeps the whole original");
        let reason_file = std::fs::read_to_string(format!("{quarantined}.reason.txt")).expect("reason file beside it");
        assert!(reason_file.contains(name) && reason_file.contains(error), "{reason_file}");
    }
    let good = &reports[expected.len()];
    assert_eq!(good["status"], "registered", "{good}");
    assert!(good["text"].as_str().unwrap_or("").contains("截留低保金"));
    let blank = &reports[expected.len() + 1];
    assert_eq!(blank["status"], "registered", "a blank page is not an error: {blank}");
    assert_eq!(blank["review"], true, "a blank page is flagged for review: {blank}");
    assert!(blank["flags"].to_string().contains("blank"), "{blank}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn missing_file_is_reported_and_the_batch_goes_on() {
    let s = Scratch::new();
    s.write("ok.txt", "举报信：某村会计挪用集体资金两万元。".as_bytes());
    let out = s.run(&["ingest", "--json", "does-not-exist.pdf", "ok.txt"]);
    assert_eq!(out.status.code(), Some(2));
    let reports = json_lines(&out);
    assert_eq!(reports[0]["status"], "failed");
    assert!(reports[0]["error"].as_str().unwrap_or("").contains("does-not-exist.pdf"));
    assert_eq!(reports[1]["status"], "registered");
}
