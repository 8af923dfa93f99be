//! Shared helpers: running the `xinfang` binary in a scratch directory, and building the
//! small hostile files the bad-input tests need.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Output;

/// A scratch working directory with its own data directory (and so its own SQLite store).
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Scratch {
        Scratch { dir: tempfile::tempdir().expect("tempdir") }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn data(&self) -> PathBuf {
        self.path().join("data")
    }

    /// Writes a file below the scratch directory and returns its path.
    pub fn write(&self, rel: &str, bytes: &[u8]) -> PathBuf {
        let p = self.path().join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&p, bytes).expect("write");
        p
    }

    /// Runs `xinfang ARGS` with the shipped config and this scratch's data directory.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run xinfang")
    }

    /// Starts `xinfang ARGS` in the background, its output going to `<name>.out`/`.err`.
    pub fn spawn(&self, args: &[&str], name: &str) -> std::process::Child {
        let out = std::fs::OpenOptions::new().create(true).append(true).open(self.path().join(format!("{name}.out")));
        let err = std::fs::OpenOptions::new().create(true).append(true).open(self.path().join(format!("{name}.err")));
        self.command(args)
            .stdout(out.expect("stdout file"))
            .stderr(err.expect("stderr file"))
            .spawn()
            .expect("spawn xinfang")
    }

    /// Starts `xinfang ARGS` in the background with its stdout and stderr going to `log`.
    pub fn spawn_logging_to(&self, args: &[&str], log: &Path) -> std::process::Child {
        let out = std::fs::OpenOptions::new().create(true).append(true).open(log).expect("log file");
        let err = out.try_clone().expect("log file");
        self.command(args).stdout(out).stderr(err).spawn().expect("spawn xinfang")
    }

    /// What a background run wrote to stdout and stderr so far.
    pub fn output_of(&self, name: &str) -> (String, String) {
        let read = |ext: &str| std::fs::read_to_string(self.path().join(format!("{name}.{ext}"))).unwrap_or_default();
        (read("out"), read("err"))
    }

    /// Changes the scratch configuration: each `(from, to)` replaced in it.
    pub fn configure(&self, edits: &[(&str, &str)]) {
        self.command(&["check-config"]).output().expect("write config");
        let path = self.path().join("xinfang.toml");
        let mut text = std::fs::read_to_string(&path).expect("read config");
        for (from, to) in edits {
            assert!(text.contains(from), "config has no {from:?}");
            text = text.replace(from, to);
        }
        std::fs::write(&path, text).expect("write config");
    }

    /// The SQLite URL of this scratch's store.
    pub fn db_url(&self) -> String {
        format!("sqlite://{}?mode=rwc", self.data().join("xinfang.db").display())
    }

    pub fn command(&self, args: &[&str]) -> std::process::Command {
        let config = self.path().join("xinfang.toml");
        if !config.exists() {
            let shipped = std::fs::read_to_string(repo().join("config/xinfang.toml")).expect("shipped config");
            let data = self.data();
            let text = shipped.replace("data_dir = \"data\"", &format!("data_dir = {:?}", data.display().to_string()));
            std::fs::write(&config, text).expect("write config");
            // The rule files the config names, beside it.
            for f in ["keywords.toml", "rules.toml", "calendar.toml", "dict.txt"] {
                std::fs::copy(repo().join("config").join(f), self.path().join(f)).expect("copy rule file");
            }
        }
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_xinfang"));
        cmd.arg("--config").arg(&config).args(args).current_dir(self.path()).env_remove("DATABASE_URL");
        cmd
    }
}

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A sample file by its path below samples/.
pub fn sample(rel: &str) -> PathBuf {
    repo().join("samples").join(rel)
}

/// Parses `--json` output: one object per line.
pub fn json_lines(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// A PNG file of a gray image.
pub fn png_bytes(img: &image::GrayImage) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).expect("encode png");
    out.into_inner()
}

/// A PNG with only a header chunk claiming `w` x `h` pixels and a token of data.
pub fn png_claiming(w: u32, h: u32) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut crc = flate2::Crc::new();
        crc.update(kind);
        crc.update(data);
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        out.extend_from_slice(&crc.sum().to_be_bytes());
    }
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &zlib(&[0u8; 1024]));
    chunk(&mut out, b"IEND", &[]);
    out
}

pub fn zlib(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(data).expect("deflate");
    enc.finish().expect("deflate")
}

/// A minimal PDF from numbered object bodies (object 1 must be the catalog), with a correct
/// cross-reference table; `trailer_extra` is added to the trailer dictionary.
pub fn pdf(objects: &[Vec<u8>], trailer_extra: &str) -> Vec<u8> {
    let mut out = b"%PDF-1.5\n%\xe2\xe3\xcf\xd3\n".to_vec();
    let mut offsets = Vec::new();
    for (i, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(b"\nendobj\n");
    }
    let xref = out.len();
    out.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes());
    for o in offsets {
        out.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!("trailer\n<< /Size {} /Root 1 0 R {trailer_extra} >>\nstartxref\n{xref}\n%%EOF\n", objects.len() + 1)
            .as_bytes(),
    );
    out
}

/// A stream object body.
pub fn stream(dict: &str, data: &[u8]) -> Vec<u8> {
    let mut b = format!("<< {dict} /Length {} >>\nstream\n", data.len()).into_bytes();
    b.extend_from_slice(data);
    b.extend_from_slice(b"\nendstream");
    b
}

/// A one-page PDF whose page draws one image XObject (object 4).
pub fn pdf_with_image(image_dict: &str, data: &[u8]) -> Vec<u8> {
    pdf(
        &[
            b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /XObject << /Im0 4 0 R >> >> /Contents 5 0 R >>".to_vec(),
            stream(&format!("/Type /XObject /Subtype /Image {image_dict}"), data),
            stream("", b"q 595 0 0 842 0 0 cm /Im0 Do Q"),
        ],
        "",
    )
}

/// A multi-page TIFF of `pages` small gray pages.
pub fn tiff_pages(pages: usize) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    {
        let mut enc = tiff::encoder::TiffEncoder::new(&mut out).expect("tiff encoder");
        let px = vec![255u8; 64 * 64];
        for _ in 0..pages {
            enc.write_image::<tiff::encoder::colortype::Gray8>(64, 64, &px).expect("tiff page");
        }
    }
    out.into_inner()
}

/// A fresh PostgreSQL database on the server XINFANG_TEST_POSTGRES_URL names, or `None`
/// (the PostgreSQL half of a test is then skipped, saying so). Returns the admin URL and the
/// new database's URL; `drop_postgres` removes it.
pub async fn fresh_postgres() -> Option<(String, String, String)> {
    let Ok(base) = std::env::var("XINFANG_TEST_POSTGRES_URL") else {
        assert!(
            std::env::var_os("XINFANG_REQUIRE_POSTGRES").is_none(),
            "XINFANG_REQUIRE_POSTGRES is set but XINFANG_TEST_POSTGRES_URL names no server"
        );
        eprintln!("XINFANG_TEST_POSTGRES_URL not set: PostgreSQL half skipped");
        return None;
    };
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let name =
        format!("xinfang_test_{}_{}", std::process::id(), chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default());
    let mut admin = sqlx::AnyConnection::connect(&base).await.expect("connect postgres");
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut admin).await.expect("create db");
    let url = match base.rfind('/') {
        Some(i) if base[..i].ends_with(|c: char| c != '/') => format!("{}/{name}", &base[..i]),
        _ => format!("{base}/{name}"),
    };
    Some((base, name, url))
}

/// Drops a database made by `fresh_postgres`.
pub async fn drop_postgres(base: &str, name: &str) {
    use sqlx::Connection;
    let mut admin = sqlx::AnyConnection::connect(base).await.expect("connect postgres");
    sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)")).execute(&mut admin).await.expect("drop db");
}

/// Runs a store test on a fresh SQLite file, then on a fresh PostgreSQL database (when one is
/// configured; see `fresh_postgres`). The test gets the opened store and its URL.
pub async fn with_each_store<F, Fut>(test: F)
where
    F: Fn(xinfang::store::Store, String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("x.db").display());
    test(xinfang::store::Store::open(&url).await.expect("open sqlite"), url).await;
    if let Some((base, name, url)) = fresh_postgres().await {
        test(xinfang::store::Store::open(&url).await.expect("open postgres"), url.clone()).await;
        drop_postgres(&base, &name).await;
    }
}

/// Kills a child with SIGKILL and reaps it.
pub fn kill9(child: &mut std::process::Child) {
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let _ = child.wait();
}

/// Stops a child with SIGTERM and waits for it.
pub fn term(child: &mut std::process::Child) -> std::process::ExitStatus {
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    child.wait().expect("wait")
}

/// Waits (polling) until `done`, failing the test after `limit`.
pub fn wait_until(what: &str, limit: std::time::Duration, mut done: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out waiting until {what}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
