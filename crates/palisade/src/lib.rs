//! # Palisade
//!
//! Tower/axum middleware that protects an HTTP API:
//!
//! - [`auth`]: JWT verification with a pinned algorithm, explicit token types, revocation and
//!   refresh-token families, run as a layer *before* the rate limiter so that limits can key on
//!   the verified user (and so that failed token checks are limited too).
//! - [`error_response`]: the `{"detail": …}` JSON error body every layer rejects with.
//!
//! The library never reads the environment and holds no SQL: the application builds typed values
//! (usually from its own configuration) and hands them to the layers.
#![warn(missing_docs)]

pub mod auth;
pub mod error_response;
