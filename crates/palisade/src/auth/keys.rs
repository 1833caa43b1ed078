//! Signing and strict verification of tokens.

use std::collections::HashSet;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use sha2::{Digest, Sha256};

use super::{AuthError, Claims, TokenKind};

/// Tokens longer than this are refused before any parsing: no legitimate Palisade token comes
/// near it, and it bounds the work an attacker can ask for.
const MAX_TOKEN_LEN: usize = 4096;

/// What [`JwtKeys`] needs: typed values, usually built from the application's configuration.
#[derive(Clone)]
pub struct JwtConfig {
    /// The one algorithm tokens are signed and verified with (HS256, HS384 or HS512).
    pub algorithm: Algorithm,
    /// The HMAC secret.
    pub secret: Vec<u8>,
    /// `iss` to set and require, if any.
    pub issuer: Option<String>,
    /// `aud` to set and require, if any.
    pub audience: Option<String>,
    /// Clock-skew allowance for `exp` and `nbf`, in seconds.
    pub leeway_seconds: u64,
    /// Accept tokens in the tutorial's format (`typ: JWT`, no `jti`) signed with the same secret.
    pub legacy_tokens: bool,
}

impl std::fmt::Debug for JwtConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtConfig")
            .field("algorithm", &self.algorithm)
            .field("secret", &"[redacted]")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway_seconds", &self.leeway_seconds)
            .field("legacy_tokens", &self.legacy_tokens)
            .finish()
    }
}

/// A token that passed every check but revocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    /// Its claims.
    pub claims: Claims,
    /// The key revocation uses: `j:<jti>`, or for a tutorial-format token `h:<sha256 of it>`
    /// (strict decoding makes the encoding of a token unique, so its hash is too).
    pub token_id: String,
    /// Issue time in milliseconds since the epoch: the `jti`'s UUIDv7 timestamp, or for a
    /// tutorial-format token, its expiry less `legacy_lifetime` (it carries no issue time).
    pub issued_at_ms: i64,
    /// Whether it is in the tutorial's format.
    pub legacy: bool,
}

/// Keys and rules for issuing and verifying tokens, built once at start-up.
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    algorithm: Algorithm,
    issuer: Option<String>,
    audience: Option<String>,
    validation: Validation,
    legacy_validation: Option<Validation>,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKeys")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// Why [`JwtKeys::new`] refused a configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Only the HMAC algorithms take a shared secret.
    #[error("algorithm {0:?} is not supported; use HS256, HS384 or HS512")]
    UnsupportedAlgorithm(Algorithm),
    /// An empty secret signs nothing.
    #[error("the secret is empty")]
    EmptySecret,
}

impl JwtKeys {
    /// Builds the keys. Only HMAC algorithms are accepted: the tutorial's tokens are HS256 and
    /// its secret is a shared string.
    pub fn new(config: JwtConfig) -> Result<Self, KeyError> {
        if !matches!(
            config.algorithm,
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
        ) {
            return Err(KeyError::UnsupportedAlgorithm(config.algorithm));
        }
        let encoding =
            EncodingKey::from_secret(&config.secret).map_err(|_| KeyError::EmptySecret)?;
        let decoding =
            DecodingKey::from_secret(&config.secret).map_err(|_| KeyError::EmptySecret)?;

        // The crate's default leeway is 60 s; ours is explicit (SPEC §5).
        let mut validation = Validation::new(config.algorithm);
        validation.leeway = config.leeway_seconds;
        validation.validate_nbf = true;
        validation.validate_exp = true;
        let mut required: HashSet<String> = ["exp".to_owned(), "sub".to_owned()].into();
        match &config.issuer {
            Some(iss) => {
                validation.set_issuer(&[iss]);
                required.insert("iss".to_owned());
            }
            None => validation.iss = None,
        }
        match &config.audience {
            Some(aud) => {
                validation.set_audience(&[aud]);
                required.insert("aud".to_owned());
            }
            None => validation.validate_aud = false,
        }
        validation.required_spec_claims = required;

        // Tutorial tokens never carried iss/aud, so those are not asked of them.
        let legacy_validation = config.legacy_tokens.then(|| {
            let mut v = Validation::new(config.algorithm);
            v.leeway = config.leeway_seconds;
            v.validate_nbf = true;
            v.validate_aud = false;
            v.iss = None;
            v.required_spec_claims = ["exp".to_owned(), "sub".to_owned()].into();
            v
        });

        Ok(Self {
            encoding,
            decoding,
            algorithm: config.algorithm,
            issuer: config.issuer,
            audience: config.audience,
            validation,
            legacy_validation,
        })
    }

    /// How long past its `exp` a token still verifies (clock-skew leeway), in seconds. A
    /// revocation must outlive the token by as much.
    pub(crate) fn leeway_seconds(&self) -> i64 {
        i64::try_from(self.validation.leeway).unwrap_or(i64::MAX)
    }

    /// The pinned algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The configured issuer, set on every token minted by [`JwtKeys::claims`].
    pub fn issuer(&self) -> Option<&str> {
        self.issuer.as_deref()
    }

    /// Claims for a new token of `kind`, valid `lifetime_seconds` from now, in session `family`.
    /// The `jti` is a fresh UUIDv7.
    pub fn claims(
        &self,
        kind: TokenKind,
        username: &str,
        user_id: &str,
        family: &str,
        lifetime_seconds: i64,
    ) -> Claims {
        let jti = uuid::Uuid::now_v7();
        let now_ms = uuid_millis(&jti).unwrap_or_else(now_millis);
        let iat = now_ms / 1000;
        Claims {
            sub: username.to_owned(),
            user_id: user_id.to_owned(),
            kind,
            exp: iat + lifetime_seconds,
            iat: Some(iat),
            nbf: None,
            jti: Some(jti.to_string()),
            fam: Some(family.to_owned()),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
        }
    }

    /// Signs `claims` with `typ` set from their kind.
    pub fn encode(&self, claims: &Claims) -> Result<String, AuthError> {
        let mut header = Header::new(self.algorithm);
        header.typ = Some(claims.kind.typ().to_owned());
        jsonwebtoken::encode(&header, claims, &self.encoding)
            .map_err(|e| AuthError::Invalid(e.to_string()))
    }

    /// Verifies `token` as a token of kind `expected`: size, pinned algorithm, `typ` header
    /// agreeing with the `type` claim, signature, `exp`/`nbf` with the leeway, `iss`/`aud` when
    /// configured, and the presence of `jti`/`iat`. Revocation is the caller's next step.
    ///
    /// `legacy_lifetime_seconds` is how long a tutorial-format token of this kind lived, used to
    /// estimate its issue time (it has none) for "log out everywhere".
    pub fn decode(
        &self,
        token: &str,
        expected: TokenKind,
        legacy_lifetime_seconds: i64,
    ) -> Result<VerifiedToken, AuthError> {
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return Err(AuthError::Malformed);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Malformed)?;
        if header.alg != self.algorithm {
            return Err(AuthError::Invalid(format!(
                "algorithm {:?} is not the configured one",
                header.alg
            )));
        }
        let header_kind = header.typ.as_deref().map(parse_typ);
        let (validation, legacy) = match header_kind {
            Some(Typ::Kind(_)) => (&self.validation, false),
            Some(Typ::Jwt) | None => match &self.legacy_validation {
                Some(v) => (v, true),
                None => return Err(AuthError::Invalid("untyped token".to_owned())),
            },
            Some(Typ::Other) => return Err(AuthError::Invalid("unknown typ".to_owned())),
        };
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, validation)
            .map_err(|e| AuthError::Invalid(e.to_string()))?;
        let claims = data.claims;
        if let Some(Typ::Kind(kind)) = header_kind
            && kind != claims.kind
        {
            return Err(AuthError::Invalid(
                "typ header and type claim disagree".to_owned(),
            ));
        }
        if claims.kind != expected {
            return Err(AuthError::WrongType);
        }
        if legacy {
            let digest = Sha256::digest(token.as_bytes());
            return Ok(VerifiedToken {
                token_id: format!("h:{}", hex::encode(digest)),
                issued_at_ms: claims
                    .exp
                    .saturating_sub(legacy_lifetime_seconds)
                    .saturating_mul(1000),
                claims,
                legacy: true,
            });
        }
        let jti = claims
            .jti
            .as_deref()
            .ok_or_else(|| AuthError::Invalid("no jti".to_owned()))?;
        let issued_at_ms = uuid::Uuid::try_parse(jti)
            .ok()
            .and_then(|u| uuid_millis(&u))
            .ok_or_else(|| AuthError::Invalid("jti is not a UUIDv7".to_owned()))?;
        if claims.iat.is_none() || claims.fam.is_none() {
            return Err(AuthError::Invalid("iat or fam missing".to_owned()));
        }
        Ok(VerifiedToken {
            token_id: format!("j:{jti}"),
            issued_at_ms,
            claims,
            legacy: false,
        })
    }
}

enum Typ {
    Kind(TokenKind),
    Jwt,
    Other,
}

/// Media-type names compare case-insensitively, and `application/` may be spelled out
/// (RFC 7515 §4.1.9).
fn parse_typ(typ: &str) -> Typ {
    let lower = typ.to_ascii_lowercase();
    let short = lower.strip_prefix("application/").unwrap_or(&lower);
    match short {
        "at+jwt" => Typ::Kind(TokenKind::Access),
        "rt+jwt" => Typ::Kind(TokenKind::Refresh),
        "jwt" => Typ::Jwt,
        _ => Typ::Other,
    }
}

fn uuid_millis(id: &uuid::Uuid) -> Option<i64> {
    if id.get_version_num() != 7 {
        return None;
    }
    let (secs, nanos) = id.get_timestamp()?.to_unix();
    i64::try_from(secs)
        .ok()
        .map(|s| s * 1000 + i64::from(nanos / 1_000_000))
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(legacy: bool) -> JwtKeys {
        JwtKeys::new(JwtConfig {
            algorithm: Algorithm::HS256,
            secret: b"0123456789abcdef0123456789abcdef".to_vec(),
            issuer: None,
            audience: None,
            leeway_seconds: 30,
            legacy_tokens: legacy,
        })
        .expect("keys")
    }

    #[test]
    fn a_minted_token_round_trips_with_its_kind() {
        let k = keys(true);
        let claims = k.claims(TokenKind::Access, "alice", "1", "fam", 60);
        let token = k.encode(&claims).expect("encode");
        let verified = k.decode(&token, TokenKind::Access, 60).expect("decode");
        assert_eq!(verified.claims, claims);
        assert!(!verified.legacy);
        assert_eq!(
            verified.token_id,
            format!("j:{}", claims.jti.as_deref().unwrap_or(""))
        );
        assert_eq!(
            k.decode(&token, TokenKind::Refresh, 60),
            Err(AuthError::WrongType)
        );
    }

    #[test]
    fn a_typ_that_disagrees_with_the_type_claim_is_refused() {
        let k = keys(true);
        let claims = k.claims(TokenKind::Refresh, "alice", "1", "fam", 60);
        let mut header = Header::new(Algorithm::HS256);
        header.typ = Some("at+jwt".to_owned());
        let secret = EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef").expect("key");
        let token = jsonwebtoken::encode(&header, &claims, &secret).expect("encode");
        assert!(matches!(
            k.decode(&token, TokenKind::Access, 60),
            Err(AuthError::Invalid(_))
        ));
        assert!(matches!(
            k.decode(&token, TokenKind::Refresh, 60),
            Err(AuthError::Invalid(_))
        ));
    }

    #[test]
    fn untyped_tokens_are_refused_when_legacy_is_off() {
        let k = keys(false);
        let claims = serde_json::json!({"sub": "a", "user_id": "1", "type": "access", "exp": 4_000_000_000_i64});
        let secret = EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef").expect("key");
        let token =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &secret).expect("encode");
        assert!(matches!(
            k.decode(&token, TokenKind::Access, 60),
            Err(AuthError::Invalid(_))
        ));
        let verified = keys(true)
            .decode(&token, TokenKind::Access, 60)
            .expect("legacy");
        assert!(verified.legacy && verified.token_id.starts_with("h:"));
    }

    #[test]
    fn non_hmac_algorithms_and_empty_secrets_are_configuration_errors() {
        let mut cfg = JwtConfig {
            algorithm: Algorithm::RS256,
            secret: b"x".to_vec(),
            issuer: None,
            audience: None,
            leeway_seconds: 0,
            legacy_tokens: false,
        };
        assert!(matches!(
            JwtKeys::new(cfg.clone()),
            Err(KeyError::UnsupportedAlgorithm(_))
        ));
        cfg.algorithm = Algorithm::HS256;
        cfg.secret.clear();
        assert!(matches!(JwtKeys::new(cfg), Err(KeyError::EmptySecret)));
    }
}
