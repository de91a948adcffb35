//! Indexes of the sample catalogue, each built once per test run, on the first test that
//! asks for it, and shared by every test of the run.
//!
//! They are read-only: a test searches, evaluates or opens them, and one that writes
//! (adds, removes, trains, damages a file) works on a copy of its own ([`copy_index`]; a
//! folder index of the sample is about 16 MB), so that no test sees another's writes.
//! They live in this run's folder ([`run_dir`]), removed when the test process exits.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::{ok, p, require_ort, sample};

/// What the run's folders are called in the temp dir: this prefix and the process id.
const RUN_DIR_PREFIX: &str = "lookalike-test-run-";

static RUN_DIR: OnceLock<PathBuf> = OnceLock::new();

/// This test process's folder for fixtures, made on the first call. Statics are never
/// dropped, so a `TempDir` in one would stay behind: the folder is removed by an `atexit`
/// handler instead (the test harness ends the process through `exit`), and a folder left
/// by a run that was killed is removed by the next run.
pub fn run_dir() -> &'static Path {
    RUN_DIR.get_or_init(|| {
        let tmp = std::env::temp_dir();
        remove_dead_runs(&tmp);
        let dir = tmp.join(format!("{RUN_DIR_PREFIX}{}", std::process::id()));
        // One of an earlier process with this id (it was killed, then the id reused).
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        extern "C" fn remove_run_dir() {
            if let Some(dir) = RUN_DIR.get() {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
        // SAFETY: registers a function that takes nothing and cannot unwind (it ignores
        // errors); it runs once, at exit, after the tests have ended.
        let registered = unsafe { libc::atexit(remove_run_dir) };
        assert_eq!(registered, 0, "atexit");
        dir
    })
}

/// Remove the run folders in `tmp` whose process is gone (killed before its `atexit`).
fn remove_dead_runs(tmp: &Path) {
    let Ok(entries) = std::fs::read_dir(tmp) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(RUN_DIR_PREFIX)) else {
            continue;
        };
        let Ok(pid) = pid.parse::<libc::pid_t>() else { continue };
        // SAFETY: signal 0 sends nothing; it only asks whether the process exists.
        let gone = unsafe { libc::kill(pid, 0) } != 0
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        if gone {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// A shared index: its folder, and the JSON report of the `index` run that built it.
#[derive(Debug)]
pub struct SharedIndex {
    pub dir: PathBuf,
    pub report: serde_json::Value,
}

impl SharedIndex {
    /// Index the whole sample catalogue into `name` in the run's folder, with `extra`
    /// arguments.
    fn build(name: &str, extra: &[&str]) -> Self {
        require_ort();
        let (catalog, dir) = (sample(), run_dir().join(name));
        // What a panicked earlier attempt of this run left, so that this one starts anew.
        let _ = std::fs::remove_dir_all(&dir);
        let mut args = vec!["index", p(&catalog), "--index", p(&dir), "--json"];
        args.extend_from_slice(extra);
        let report = serde_json::from_str(&ok(&args)).unwrap();
        Self { dir, report }
    }

    /// Its folder as `--index` takes it.
    pub fn path(&self) -> &str {
        p(&self.dir)
    }
}

/// The sample catalogue indexed with the defaults (the fashion model). Read-only.
pub fn sample_index() -> &'static SharedIndex {
    static INDEX: OnceLock<SharedIndex> = OnceLock::new();
    INDEX.get_or_init(|| SharedIndex::build("sample", &[]))
}

/// The sample catalogue indexed with the ImageNet model (lite0), whose plain features the
/// trained projection (`lookalike train`) is made for. Read-only.
pub fn sample_lite0_index() -> &'static SharedIndex {
    static INDEX: OnceLock<SharedIndex> = OnceLock::new();
    INDEX.get_or_init(|| SharedIndex::build("sample-lite0", &["--model", "lite0"]))
}

/// A private copy of a folder index, for a test that changes it while others read the
/// original. LMDB's lock file is not copied: it describes the original's readers, and
/// the copy's first opening makes its own.
pub fn copy_index(index: &SharedIndex) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&index.dir, dir.path());
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&src, &dst);
        } else if entry.file_name() != "lock.mdb" {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}
