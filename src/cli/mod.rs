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

/// An error and its causes on one line (`error: cause: cause`): the library's errors
/// leave their causes to `source()`, so each is printed once.
pub fn message(e: &anyhow::Error) -> String {
    format!("{e:#}")
}
