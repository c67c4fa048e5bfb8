//! Text that came from outside, made safe to repeat in an error or a log.

/// Longest piece of untrusted text an error repeats.
pub const PREFIX_CHARS: usize = 64;

/// The first [`PREFIX_CHARS`] characters of `text`, with `…` when cut: an
/// error names what it refuses without echoing a 60 KB value back.
pub fn prefix(text: &str) -> String {
    match text.char_indices().nth(PREFIX_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_cut_short_text_kept() {
        assert_eq!(prefix("web"), "web");
        let long = "é".repeat(1000);
        assert_eq!(prefix(&long).chars().count(), PREFIX_CHARS + 1);
    }
}
