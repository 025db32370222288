//! Names going into SQL text.

/// `name` as a double-quoted SQL identifier: embedded quotes doubled, case kept. Every name
/// spliced into SQL (view, column, table) goes through here, so a name cannot end the
/// identifier and start SQL of its own.
#[must_use]
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::quote_ident;

    #[test]
    fn quotes_and_doubles_embedded_quotes() {
        assert_eq!(quote_ident("close"), "\"close\"");
        assert_eq!(quote_ident("Mixed Case"), "\"Mixed Case\"");
        assert_eq!(quote_ident("a\"; drop table x; --"), "\"a\"\"; drop table x; --\"");
    }
}
