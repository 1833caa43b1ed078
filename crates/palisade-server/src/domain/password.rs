use std::collections::HashSet;
use std::sync::LazyLock;

/// The 10,000 most common passwords of 8 or more characters (see the file's header).
static COMMON: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("../../data/common-passwords.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect()
});

/// A new password: 8 to 128 characters and not one of the most common passwords (OWASP ASVS
/// 6.2.1, 6.2.9, 6.2.11). No composition rules. The bound is in characters; Argon2 has no
/// 72-byte truncation, unlike bcrypt (SPEC §9.15).
pub struct Password(String);

impl Password {
    /// Minimum length in characters.
    pub const MIN: usize = 8;
    /// Maximum length in characters.
    pub const MAX: usize = 128;

    /// Parses a new password, saying what is wrong (never echoing it).
    pub fn parse(s: &str) -> Result<Self, String> {
        let len = s.chars().count();
        if len < Self::MIN {
            return Err(format!(
                "password must be at least {} characters long",
                Self::MIN
            ));
        }
        if len > Self::MAX {
            return Err(format!(
                "password must be at most {} characters long",
                Self::MAX
            ));
        }
        if COMMON.contains(s.to_lowercase().as_str()) {
            return Err("password is too common; choose another".to_owned());
        }
        Ok(Self(s.to_owned()))
    }

    /// The password.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_long_and_common_passwords_are_refused() {
        assert!(Password::parse("").is_err());
        assert!(Password::parse("1234567").is_err());
        assert!(Password::parse(&"x".repeat(129)).is_err());
        assert!(Password::parse("password").is_err());
        assert!(
            Password::parse("PassWord1").is_err(),
            "compared case-insensitively"
        );
        assert!(Password::parse("qwertyuiop").is_err());
        assert!(
            Password::parse("securepass123").is_ok(),
            "the tutorial's example password"
        );
        assert!(
            Password::parse(&"é".repeat(128)).is_ok(),
            "length counts characters, not bytes"
        );
        assert_eq!(COMMON.len(), 10_000);
    }
}
