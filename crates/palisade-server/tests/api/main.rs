//! Black-box tests: the real server on port 0 with its own SQLite file, spoken to over HTTP.

mod auth_flow;
mod binary;
mod helpers;
mod rate_limits;
mod registration;
mod tokens;
