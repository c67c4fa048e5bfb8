//! Quoting refused input in error messages: never more than a short prefix,
//! so a 60 KB parameter or header cannot come back in the answer or the log.

/// Most characters of refused input an error message quotes.
pub const MAX_QUOTED: usize = 64;

/// `text`, or its first [`MAX_QUOTED`] characters and an ellipsis.
pub fn clip(text: &str) -> String {
    clip_to(text, MAX_QUOTED)
}

/// `text`, or its first `max` characters and an ellipsis (for messages of
/// other parsers that may quote their input).
pub fn clip_to(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_input_is_cut_at_a_character_boundary() {
        assert_eq!(clip("short"), "short");
        assert_eq!(clip(&"a".repeat(64)), "a".repeat(64));
        assert_eq!(clip(&"é".repeat(60_000)), format!("{}…", "é".repeat(64)));
    }
}
