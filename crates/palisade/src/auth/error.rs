//! Why a token was not accepted.

/// Why a bearer or refresh token was refused. [`AuthError::detail`] is the text clients see;
/// the variants themselves are for logs and metrics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The `Authorization` header is not `Bearer <token>`, or the token is empty or oversized.
    #[error("malformed authorization header or token")]
    Malformed,
    /// Signature, algorithm, header or claims did not verify (includes expired and not-yet-valid).
    #[error("invalid token: {0}")]
    Invalid(String),
    /// A valid token of the other kind (a refresh token used as access token or vice versa).
    #[error("wrong token type")]
    WrongType,
    /// The token, its session or every session of its user was revoked.
    #[error("token revoked")]
    Revoked,
    /// The revocation store did not answer, so the token cannot be trusted (fail closed).
    #[error("revocation store unavailable: {0}")]
    StoreUnavailable(String),
}

impl AuthError {
    /// The `detail` sent to the client: the tutorial's messages, and nothing that helps an
    /// attacker tell which check failed beyond what the tutorial already told.
    pub fn detail(&self) -> &'static str {
        match self {
            AuthError::Malformed | AuthError::Invalid(_) => "Could not validate credentials",
            AuthError::WrongType => "Invalid token type",
            AuthError::Revoked => "Token has been revoked",
            AuthError::StoreUnavailable(_) => "Authentication is temporarily unavailable",
        }
    }

    /// Whether this is the server's fault (answer 503) rather than the client's (401).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, AuthError::StoreUnavailable(_))
    }
}
