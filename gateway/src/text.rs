//! The one rule for short texts people type (names, chat lines), shared by the REST API and the WebSocket, so
//! neither accepts what the other refuses.

/// A text field that breaks the rule: which field and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct TextError {
    pub field: String,
    pub message: String,
}

/// `value` trimmed: 1 to `max` characters, no control characters (line breaks included).
pub fn one_line(field: &str, value: &str, max: usize) -> Result<String, TextError> {
    let v = value.trim();
    if v.is_empty() || v.chars().count() > max || v.chars().any(char::is_control) {
        return Err(TextError {
            field: field.to_owned(),
            message: format!("must be 1..={max} characters without control characters"),
        });
    }
    Ok(v.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_lines_are_trimmed_bounded_and_printable() {
        assert_eq!(one_line("name", "  Ada  ", 10).unwrap(), "Ada");
        for bad in ["", "   ", "a\u{0}b", "two\nlines", "bell\u{7}", "x".repeat(11).as_str()] {
            assert_eq!(one_line("name", bad, 10).unwrap_err().field, "name", "{bad:?}");
        }
    }
}
