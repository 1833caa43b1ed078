//! What every handler can reach.

use std::sync::Arc;

use palisade::auth::Auth;

use crate::passwords::PasswordHasher;
use crate::store::UserStore;

/// Shared application state, cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The user database.
    pub users: Arc<dyn UserStore>,
    /// Token issuance, verification and revocation.
    pub auth: Auth,
    /// Password hashing off the async workers.
    pub hasher: PasswordHasher,
}
