use std::fmt;

/// An email address: `local@domain`, syntax checked the way pydantic's `EmailStr` broadly does
/// (one `@`, a non-empty local part, a dotted domain of letters, digits and hyphens), at most 254
/// characters (RFC 5321 §4.5.3.1.3). Stored as given; compared case-insensitively by the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// Parses an address, saying what is wrong.
    pub fn parse(s: &str) -> Result<Self, String> {
        let invalid = || "value is not a valid email address".to_owned();
        if s.len() > 254 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid());
        }
        let (local, domain) = s.rsplit_once('@').ok_or_else(invalid)?;
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c));
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && labels.iter().all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            })
            && labels
                .last()
                .is_some_and(|tld| tld.len() >= 2 && !tld.chars().all(|c| c.is_ascii_digit()));
        if local_ok && domain_ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(invalid())
        }
    }

    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plausible_addresses_pass_and_malformed_ones_do_not() {
        for good in [
            "user@example.com",
            "a.b+tag@sub.example.co.uk",
            "x@ex-ample.io",
        ] {
            assert!(Email::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "user",
            "@example.com",
            "user@",
            "user@localhost",
            "a@b@c.com",
            "a b@c.com",
            "a@-x.com",
            "a..b@c.com",
            "a@c.123",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }
}
