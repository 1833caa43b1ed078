//! Registration input, parsed into types that cannot hold an invalid value (SPEC §5).

mod email;
mod password;
mod username;

pub use email::Email;
pub use password::Password;
pub use username::Username;
