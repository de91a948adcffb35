//! The direction of dependencies between the library's modules (ARCHITECTURE.md): no two
//! modules import each other, there is no circle through several, and nothing below the
//! engine imports the engine or what is built on it. `error` is the one exception: it
//! wraps every module's error type, and those modules return it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The modules built on the engine; nothing else in the library may import them.
const ABOVE_ENGINE: [&str; 4] = ["engine", "eval", "server", "bench"];

/// Top-level module of each library source file → the modules it names (`crate::x`).
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(&src).unwrap();
            let first = rel.components().next().unwrap().as_os_str().to_string_lossy();
            let module = first.trim_end_matches(".rs").to_string();
            if ["main", "lib", "cli"].contains(&module.as_str()) {
                continue; // the binary and the crate root sit above everything
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let named = out.entry(module.clone()).or_default();
            for line in text.lines() {
                let code = line.split("//").next().unwrap_or("");
                named.extend(crate_paths(code).into_iter().filter(|m| *m != module));
            }
        }
    }
    out
}

/// Module names a line of code reaches through `crate::`, including inside
/// `use crate::{a, b::c}` groups.
fn crate_paths(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for part in group[..end].split(',') {
                let name: String = part
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_' || c.is_ascii_digit())
                    .collect();
                if !name.is_empty() && name != "self" {
                    found.push(name);
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_' || c.is_ascii_digit())
                .collect();
            if !name.is_empty() {
                found.push(name);
            }
        }
    }
    found
}

#[test]
fn the_parser_sees_paths_and_groups() {
    let got =
        crate_paths("use crate::{kernel::dot, store::{A, B}, self}; crate::split::in_holdout(x)");
    assert_eq!(got, ["kernel", "store", "split"]);
    assert!(crate_paths("let x = 1;").is_empty());
}

#[test]
fn no_module_imports_one_that_imports_it() {
    let graph = imports();
    assert!(graph.len() > 15, "expected the library's modules, found {:?}", graph.keys());
    let edges = |m: &str| -> BTreeSet<String> {
        if m == "error" {
            return BTreeSet::new();
        }
        graph
            .get(m)
            .map(|s| s.iter().filter(|n| *n != "error").cloned().collect())
            .unwrap_or_default()
    };
    // A depth-first walk from every module: reaching a module on the current path is a circle.
    fn walk(
        m: &str,
        edges: &dyn Fn(&str) -> BTreeSet<String>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == m) {
            let mut circle = path[i..].to_vec();
            circle.push(m.to_string());
            return Some(circle);
        }
        if done.contains(m) {
            return None;
        }
        path.push(m.to_string());
        for n in edges(m) {
            if let Some(c) = walk(&n, edges, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(m.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for m in graph.keys() {
        if let Some(circle) = walk(m, &edges, &mut Vec::new(), &mut done) {
            panic!("modules import each other in a circle: {}", circle.join(" -> "));
        }
    }
}

#[test]
fn nothing_below_the_engine_imports_what_is_built_on_it() {
    for (module, named) in imports() {
        if ABOVE_ENGINE.contains(&module.as_str()) {
            continue;
        }
        let up: Vec<&String> =
            named.iter().filter(|n| ABOVE_ENGINE.contains(&n.as_str())).collect();
        assert!(up.is_empty(), "{module} imports {up:?}, which are built on the engine");
    }
    // The engine itself is below what uses it.
    let engine = &imports()["engine"];
    for above in ["eval", "server", "bench"] {
        assert!(!engine.contains(above), "engine imports {above}");
    }
}

/// Every library source file but tests, by its path under `src/` (`/`-separated).
fn library_sources() -> Vec<(String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = Vec::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if path.is_dir() {
                if name != "tests" {
                    stack.push(path);
                }
                continue;
            }
            if !name.ends_with(".rs") || name == "tests.rs" || name == "suite.rs" {
                continue;
            }
            let rel = path.strip_prefix(&src).unwrap().to_string_lossy().replace('\\', "/");
            out.push((rel, std::fs::read_to_string(&path).unwrap()));
        }
    }
    out
}

#[test]
fn where_an_index_lives_is_decided_in_one_place() {
    let sources = library_sources();
    assert!(sources.iter().any(|(f, _)| f == "location.rs"), "{:?}", sources.len());
    let found = |needle: &str, allowed: &dyn Fn(&str) -> bool| -> Vec<String> {
        sources
            .iter()
            .filter(|(file, text)| !allowed(file) && text.contains(needle))
            .map(|(file, _)| file.clone())
            .collect()
    };
    let edge = |f: &str| f == "location.rs" || f.starts_with("cli/") || f == "main.rs";
    // `--index` is parsed once, where it is given: the CLI (and location.rs itself).
    assert_eq!(found("Location::of(", &edge), Vec::<String>::new(), "Location::of past the edge");
    assert_eq!(found("Location::parse", &edge), Vec::<String>::new());
    // Folder or collection is told apart in location.rs and the stores only.
    let stores = |f: &str| edge(f) || f.starts_with("store/") || f.starts_with("milvus/");
    for needle in ["Location::Folder", "Location::Milvus", ".folder()"] {
        assert_eq!(found(needle, &stores), Vec::<String>::new(), "{needle} outside location.rs");
    }
    // LMDB's file is the LMDB store's business.
    assert_eq!(found("data.mdb", &|f| f == "store/lmdb.rs"), Vec::<String>::new());
}
