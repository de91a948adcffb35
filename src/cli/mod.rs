//! The binary's parts: the argument grammar, one function per command (each calls one
//! library entry point and prints what it returns), the bench runner, the printed tables.

pub mod args;
pub mod bench;
pub mod eval;
pub mod index;
pub mod info;
pub mod items;
pub mod search;
pub mod serve;
pub mod tables;
pub mod train;

/// An error and its causes on one line, each cause once: the library's messages often
/// already end with their cause (`cannot read X: No such file`), which `{:#}` would
/// print a second time.
pub fn message(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}
