//! The user database behind a trait, one implementation per SQL backend (SPEC §1: SQLite by
//! default, PostgreSQL to follow), picked from the `DATABASE_URL` scheme.

mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;

pub use sqlite::SqliteUserStore;

use crate::config::{ConfigError, DatabaseUrl, Settings};

/// A stored user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The id, a string in the API (the tutorial's `user_id`).
    pub id: i64,
    /// The username as registered.
    pub username: String,
    /// The email as registered.
    pub email: String,
    /// Argon2id (or legacy bcrypt) PHC string.
    pub password_hash: String,
}

/// What a new user is made of, already validated.
#[derive(Debug, Clone)]
pub struct NewUser<'a> {
    /// The username.
    pub username: &'a str,
    /// The email.
    pub email: &'a str,
    /// The password hash.
    pub password_hash: &'a str,
}

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint refused the write.
    #[error("{0} already registered")]
    Conflict(Field),
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// Which unique field conflicted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// `username`.
    Username,
    /// `email`.
    Email,
}

impl std::fmt::Display for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Field::Username => "username",
            Field::Email => "email",
        })
    }
}

/// User storage.
#[async_trait]
pub trait UserStore: Send + Sync + 'static {
    /// Inserts a user; [`StoreError::Conflict`] when the username or email is taken.
    async fn create(&self, user: NewUser<'_>) -> Result<User, StoreError>;
    /// Finds a user by username, case-insensitively.
    async fn find_by_username(&self, username: &str) -> Result<Option<User>, StoreError>;
    /// Finds a user by id.
    async fn find_by_id(&self, id: i64) -> Result<Option<User>, StoreError>;
    /// Replaces a user's password hash (legacy bcrypt → Argon2id).
    async fn set_password_hash(&self, id: i64, hash: &str) -> Result<(), StoreError>;
    /// Checks the database answers.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// Opens the configured database and applies its migrations. Errors name `DATABASE_URL`.
pub async fn connect(settings: &Settings) -> Result<Arc<dyn UserStore>, ConfigError> {
    match &settings.database_url {
        DatabaseUrl::Sqlite(url) => {
            let store = SqliteUserStore::connect(url).await.map_err(|reason| ConfigError::Invalid {
                var: "DATABASE_URL".to_owned(),
                value: format!("{url:?}"),
                reason,
                expected: "a SQLite URL whose directory exists and is writable, e.g. sqlite://palisade.db".to_owned(),
            })?;
            Ok(Arc::new(store))
        }
    }
}
