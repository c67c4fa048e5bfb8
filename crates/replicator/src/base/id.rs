//! Validation of container references that arrive from outside.
//!
//! Every id or name a caller sends passes through [`ContainerRef::parse`]
//! before anything reaches the engine, so a path trick (`..`, `%2F`, NUL)
//! can never turn into a different Engine API call.

use std::fmt;

/// Longest reference accepted: a full id is 64 hex digits, names rarely pass 60.
pub const MAX_LEN: usize = 128;

/// A syntactically valid container id (full or short) or name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ContainerRef(String);

/// Why a reference was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefError {
    /// Nothing was given; the field says what was expected (`container id`, `group name`).
    #[error("{0} missing")]
    Empty(&'static str),
    /// More than [`MAX_LEN`] bytes.
    #[error("{0} longer than {MAX_LEN} characters")]
    TooLong(&'static str),
    /// A character outside `[A-Za-z0-9_.-]`, or a first character that is not a letter or digit.
    #[error("{0} must start with a letter or digit and contain only letters, digits, '_', '.' and '-'")]
    BadCharacters(&'static str),
}

/// The one syntax for names that come from outside (`what` names them in errors).
fn check(raw: &str, what: &'static str) -> Result<(), RefError> {
    if raw.is_empty() {
        return Err(RefError::Empty(what));
    }
    if raw.len() > MAX_LEN {
        return Err(RefError::TooLong(what));
    }
    let mut chars = raw.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if first_ok && rest_ok {
        Ok(())
    } else {
        Err(RefError::BadCharacters(what))
    }
}

impl ContainerRef {
    /// The only way to build one: `raw` must be a letter or digit, then letters, digits, `_`, `.` or `-`.
    pub fn parse(raw: &str) -> Result<Self, RefError> {
        check(raw, "container id").map(|()| Self(raw.to_owned()))
    }

    /// The reference as given, safe to put in an Engine API path.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ContainerRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A syntactically valid group name (same syntax as container names).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GroupName(String);

impl GroupName {
    /// Checks `raw` with the container-name syntax; errors call it a group name.
    pub fn parse(raw: &str) -> Result<Self, RefError> {
        check(raw, "group name").map(|()| Self(raw.to_owned()))
    }

    /// The name as given, safe to put in a path or a label.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ids_and_names() {
        for ok in ["web", "0123456789ab", &"a".repeat(64), "my_app.web-1", "A9"] {
            assert_eq!(ContainerRef::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn refuses_empty_long_and_tricky_input() {
        assert_eq!(ContainerRef::parse(""), Err(RefError::Empty("container id")));
        assert_eq!(ContainerRef::parse(&"a".repeat(129)), Err(RefError::TooLong("container id")));
        assert!(ContainerRef::parse(&"a".repeat(128)).is_ok());
        for bad in ["..", ".", "-x", "_x", ".hidden", "a/b", "../etc", "a\0b", "a b", "a%2Fb", "é", "a?b", "a#b", "/a"]
        {
            assert_eq!(ContainerRef::parse(bad), Err(RefError::BadCharacters("container id")), "{bad:?}");
            assert!(GroupName::parse(bad).unwrap_err().to_string().starts_with("group name"));
        }
    }
}
