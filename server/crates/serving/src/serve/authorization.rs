//! `Authorization` header values, read the same way by REST and Flight.

/// The token of a `Bearer` authorization value (the scheme is case-insensitive, RFC 7235).
#[must_use]
pub(crate) fn bearer(header: &str) -> Option<&str> {
    scheme_value(header, "bearer")
}

/// The value after `scheme` (case-insensitive) in an authorization header.
#[must_use]
pub(crate) fn scheme_value<'a>(header: &'a str, scheme: &str) -> Option<&'a str> {
    let (s, value) = header.trim().split_once(' ')?;
    s.eq_ignore_ascii_case(scheme).then(|| value.trim())
}

#[cfg(test)]
mod tests {
    use super::{bearer, scheme_value};

    #[test]
    fn schemes_are_case_insensitive() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer abc"), Some("abc"));
        assert_eq!(bearer("BEARER  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(scheme_value("basic dXNlcjpwdw==", "basic"), Some("dXNlcjpwdw=="));
    }
}
