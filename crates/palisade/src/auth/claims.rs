//! The claims Palisade puts in its tokens, and the two kinds of token.

use serde::{Deserialize, Serialize};

/// What a token is for. Carried twice, as RFC 8725 §3.11 asks: in the `type` claim (the
/// tutorial's contract) and in the header's `typ` (`at+jwt` / `rt+jwt`); both must agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    /// A short-lived token sent as `Authorization: Bearer …`.
    Access,
    /// A long-lived token exchanged at `/auth/refresh`, rotated on every use.
    Refresh,
}

impl TokenKind {
    /// The JOSE header `typ` for this kind (RFC 9068 §2.1 for access tokens).
    pub fn typ(self) -> &'static str {
        match self {
            TokenKind::Access => "at+jwt",
            TokenKind::Refresh => "rt+jwt",
        }
    }

    /// The value of the `type` claim.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Access => "access",
            TokenKind::Refresh => "refresh",
        }
    }
}

/// The claims of a Palisade token (and, with the optional ones absent, of a tutorial token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The username.
    pub sub: String,
    /// The user's id, as a string (the tutorial's contract).
    pub user_id: String,
    /// `access` or `refresh`.
    #[serde(rename = "type")]
    pub kind: TokenKind,
    /// Expiry, seconds since the Unix epoch.
    pub exp: i64,
    /// Issued at, seconds since the Unix epoch. Absent only in tutorial-format tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// Not before, seconds since the Unix epoch; checked when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// The token's unique id: a UUIDv7, whose timestamp is the issue time in milliseconds.
    /// Absent only in tutorial-format tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// The session (refresh-token family) this token belongs to; shared by the access and
    /// refresh tokens of one login and by every rotation of it (RFC 9700 §4.14.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fam: Option<String>,
    /// Issuer, when configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Audience, when configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
}
