//! A hostile catalogue of over 1,000 files — truncated, garbage and empty photos, text
//! with image names, header-only giants, decompression bombs, non-UTF-8 names, dangling,
//! outside and looping links, FIFOs, repeated ids, a semicolon-separated Windows-1252 CSV
//! with a repeated column — is generated here and indexed: the run completes, every bad
//! file is reported with its reason, the good ones are indexed, and the indexer's peak
//! memory stays under 1 GB (the indexing process's own peak, whatever else the test
//! binary runs at the same time).

#![cfg(unix)]

use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::common::*;
use serde_json::Value;

/// Files of each kind, and the words their reason must contain.
const KINDS: [(&str, usize, &str); 10] = [
    ("trunc", 250, "corrupt or truncated"),
    ("garbage", 200, ""),
    ("text", 100, "not an image"),
    ("empty", 50, "empty file"),
    ("huge", 100, "too large"),
    ("bomb", 50, "megapixels"),
    ("dangling", 50, "dangling"),
    ("outside", 20, "outside the catalogue"),
    ("fifo", 30, "not a regular file"),
    ("loop", 1, "loop"),
];
const GOOD: usize = 100;
const NON_UTF8: usize = 50;
const REPEATED: usize = 10;

/// Seeded pseudo-random bytes (SplitMix64), so the corpus is the same on every run.
fn noise(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            (z ^ (z >> 31)) as u8
        })
        .collect()
}

/// Write the corpus into `cat` (with `outside` beside it); returns the good ids.
fn make_corpus(cat: &Path, outside: &Path) -> Vec<String> {
    std::fs::create_dir_all(cat.join("sub")).unwrap();
    std::fs::create_dir_all(outside).unwrap();
    let photos: Vec<(String, Vec<u8>)> = std::fs::read_dir(sample().join("images"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .take(GOOD)
        .map(|p| {
            (p.file_stem().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap())
        })
        .collect();
    let jpeg = &photos[0].1;
    let write = |name: &str, bytes: &[u8]| std::fs::write(cat.join(name), bytes).unwrap();
    let mut good = Vec::new();
    // The good photos, and a semicolon-separated Windows-1252 CSV naming them, with a
    // repeated column.
    let mut csv = b"id;articleType;productDisplayName;articleType\n".to_vec();
    for (id, bytes) in &photos {
        write(&format!("{id}.jpg"), bytes);
        csv.extend_from_slice(format!("{id};Tshirts;Caf").as_bytes());
        csv.extend_from_slice(b"\xe9 shirt;Shoes\n"); // "é" in Windows-1252
        good.push(id.clone());
    }
    std::fs::write(cat.join("styles.csv"), csv).unwrap();
    // The same ids again in a subfolder: repeated ids, the first kept.
    for (id, bytes) in photos.iter().take(REPEATED) {
        std::fs::write(cat.join("sub").join(format!("{id}.jpg")), bytes).unwrap();
    }
    // Names that are not UTF-8 and differ only in their invalid byte.
    for i in 0..NON_UTF8 {
        let mut name = b"shopper-\xff".to_vec();
        name.push(0x80 + i as u8);
        name.extend_from_slice(b".jpg");
        std::fs::write(cat.join(std::ffi::OsStr::from_bytes(&name)), &photos[i % GOOD].1).unwrap();
        good.push(String::new()); // counted, not named
    }
    let huge = std::fs::read(fixture("bad/huge.png")).unwrap();
    let bomb = std::fs::read(fixture("hostile/bomb.png")).unwrap();
    for (kind, n, _) in KINDS {
        for i in 0..n {
            let name = format!("{kind}-{i}.jpg");
            match kind {
                "trunc" => write(&name, &jpeg[..jpeg.len() * (5 + i % 90) / 100]),
                "garbage" => {
                    let mut b = if i % 2 == 0 { b"\x89PNG\r\n\x1a\n".to_vec() } else { Vec::new() };
                    b.extend(noise(i as u64, 64 + i * 7));
                    write(&name, &b);
                }
                "text" => write(&name, format!("not a photo, file {i}\n").as_bytes()),
                "empty" => write(&name, b""),
                "huge" => write(&format!("{kind}-{i}.png"), &huge),
                "bomb" => write(&format!("{kind}-{i}.png"), &bomb),
                "dangling" => {
                    std::os::unix::fs::symlink(format!("/nonexistent/{i}.jpg"), cat.join(&name))
                        .unwrap();
                }
                "outside" => {
                    let target = outside.join(&name);
                    std::fs::write(&target, jpeg).unwrap();
                    std::os::unix::fs::symlink(&target, cat.join(&name)).unwrap();
                }
                "fifo" => {
                    let made = std::process::Command::new("mkfifo").arg(cat.join(&name)).status();
                    assert!(made.unwrap().success());
                }
                "loop" => std::os::unix::fs::symlink("..", cat.join("sub").join("up")).unwrap(),
                _ => unreachable!(),
            }
        }
    }
    good
}

/// Run `lookalike args` to its end, its output into files in `dir`: its exit status,
/// stdout and stderr, and its peak resident memory in bytes. The peak is that process's
/// own (its `wait4` usage), not the largest of every child this test binary has had
/// (`RUSAGE_CHILDREN`): the other tests run theirs at the same time.
fn run_measured(args: &[&str], dir: &Path) -> (std::process::ExitStatus, Vec<u8>, String, u64) {
    use std::os::unix::process::ExitStatusExt as _;
    let (out, err) = (dir.join("stdout"), dir.join("stderr"));
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_lookalike"))
        .args(args)
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid value; wait4 fills it and the status.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `pid` is this process's child, not yet waited for (`child` never is: the
        // value is dropped unwaited below, which neither waits nor kills).
        let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if rc == pid {
            break;
        }
        let e = std::io::Error::last_os_error();
        assert_eq!(e.kind(), std::io::ErrorKind::Interrupted, "wait4: {e}");
    }
    drop(child);
    let peak = usage.ru_maxrss as u64 * 1024; // kilobytes on Linux
    let stderr = String::from_utf8_lossy(&std::fs::read(&err).unwrap()).into_owned();
    (std::process::ExitStatus::from_raw(status), std::fs::read(&out).unwrap(), stderr, peak)
}

#[test]
fn a_hostile_catalogue_is_indexed_with_every_bad_file_named() {
    require_ort();
    let dir = tempfile::tempdir().unwrap();
    let cat = dir.path().join("cat");
    let good = make_corpus(&cat, &dir.path().join("elsewhere"));
    let files = walk_count(&cat);
    assert!(files >= 1000, "the corpus has {files} entries");
    let idx = dir.path().join("idx");
    let (status, stdout, stderr, peak) =
        run_measured(&["index", p(&cat), "--index", p(&idx), "--json"], dir.path());
    assert!(status.success(), "{stderr}");
    let report: Value = serde_json::from_slice(&stdout).unwrap();
    let skipped: HashMap<String, String> = skipped(&report).into_iter().collect();
    for (kind, n, reason) in KINDS {
        let of_kind: Vec<(&String, &String)> = skipped
            .iter()
            .filter(|(path, _)| {
                path.starts_with(&format!("{kind}-")) || (kind == "loop" && path.ends_with("up"))
            })
            .collect();
        assert_eq!(of_kind.len(), n, "{kind}: {of_kind:?}");
        for (path, why) in of_kind {
            assert!(!why.is_empty() && why.contains(reason), "{path}: {why}");
        }
    }
    assert_eq!(report["total_items"], good.len(), "{report}");
    assert_eq!(report["duplicate_photo_ids"], REPEATED);
    assert_eq!(report["csv_delimiter"], ";");
    assert_eq!(report["csv_encoding"], "windows-1252");
    assert_eq!(report["csv_repeated_columns"][0], "articleType");
    // Metadata survived the encoding: the first of the repeated columns, "é" decoded.
    let search = ["search", "--index", p(&idx), "--json", "--similar-to", &good[0]];
    let (status, stdout, stderr, search_peak) = run_measured(&search, dir.path());
    assert!(status.success(), "{stderr}");
    let hit = &json_lines(&String::from_utf8(stdout).unwrap())[0];
    let catalogued: Vec<&Value> = hit["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| good.contains(&r["id"].as_str().unwrap().to_string()))
        .collect();
    assert!(!catalogued.is_empty(), "{hit}");
    for r in catalogued {
        let md = &r["metadata"];
        assert_eq!(
            (md["articleType"].as_str(), md["productDisplayName"].as_str()),
            (Some("Tshirts"), Some("Café shirt")),
            "{hit}"
        );
    }
    // Neither run, the indexing nor a search of what it made, goes over it.
    let peak = peak.max(search_peak);
    assert!(peak < 1 << 30, "peak memory {} MB", peak >> 20);
    eprintln!("hostile corpus: {files} entries, peak memory {} MB", peak >> 20);
}

fn walk_count(dir: &Path) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        n += 1;
        if e.file_type().unwrap().is_dir() {
            n += walk_count(&e.path());
        }
    }
    n
}
