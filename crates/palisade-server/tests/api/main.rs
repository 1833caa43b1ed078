//! Black-box tests: the real server on port 0 with its own SQLite file, spoken to over HTTP.

mod auth_flow;
mod binary;
mod cli;
mod cors_browser;
mod helpers;
mod limits;
mod rate_limits;
mod registration;
mod security_headers;
mod shared_state;
mod tokens;
mod trusted_hosts;
