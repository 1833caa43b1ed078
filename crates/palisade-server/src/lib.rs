//! Palisade server: the tutorial's API (register, login, refresh, logout, protected and
//! optionally-authenticated routes) built on the `palisade` library, none of its flaws included.
//!
//! `main.rs` is a shim over [`cli::main`]; tests build an [`startup::Application`] directly.

pub mod cli;
pub mod config;
pub mod domain;
pub mod error;
pub mod passwords;
pub mod routes;
pub mod startup;
pub mod state;
pub mod store;
pub mod telemetry;
