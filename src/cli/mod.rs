//! The binary's parts: the argument grammar, the bench runner, the printed tables.

pub mod args;
pub mod bench;
pub mod tables;
