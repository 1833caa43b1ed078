//! Black-box tests: the real server on port 0 with its own SQLite file, spoken to over HTTP.

mod auth_flow;
mod binary;
mod cli;
mod helpers;
mod registration;
mod shared_state;
mod tokens;
