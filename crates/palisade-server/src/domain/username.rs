use std::fmt;

/// A username: 3 to 32 characters of ASCII letters, digits, `_`, `.` and `-`. The charset keeps
/// usernames printable, unambiguous and safe in logs and URLs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    /// Minimum length.
    pub const MIN: usize = 3;
    /// Maximum length.
    pub const MAX: usize = 32;

    /// Parses a username, saying what is wrong.
    pub fn parse(s: &str) -> Result<Self, String> {
        let len = s.chars().count();
        if !(Self::MIN..=Self::MAX).contains(&len) {
            return Err(format!(
                "username must be {} to {} characters long",
                Self::MIN,
                Self::MAX
            ));
        }
        if !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        {
            return Err("username may only contain letters, digits, '_', '.' and '-'".to_owned());
        }
        Ok(Self(s.to_owned()))
    }

    /// The username.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn newlines_spaces_and_empty_names_are_refused() {
        for bad in [
            "",
            "ab",
            "bob\nINFO admin",
            "a b c",
            "x".repeat(33).as_str(),
            "ünï",
        ] {
            assert!(Username::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            Username::parse("new.user-1_x").expect("valid").as_str(),
            "new.user-1_x"
        );
    }

    proptest! {
        #[test]
        fn every_accepted_username_is_printable_ascii(s in "\\PC{0,40}") {
            if let Ok(u) = Username::parse(&s) {
                prop_assert!(u.as_str().bytes().all(|b| b.is_ascii_graphic()));
            }
        }
    }
}
