//! Text from untrusted input (names in a tarball, a snapshot or an etcd
//! database) on its way into a message for a person.

use std::borrow::Cow;

/// `s` with every character a terminal acts on instead of showing written
/// as a Rust escape (`\n`, `\u{1b}`, `\u{202e}`): control characters (C0,
/// DEL, C1) and the invisible formatting ones that reorder or hide text
/// (bidirectional overrides and isolates, zero-width characters). A name
/// from a hostile tarball then cannot move the cursor, recolour the
/// terminal or forge the rest of the line it is printed on. Printable text,
/// non-ASCII letters included, passes unchanged and unallocated.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(acts_on_terminal) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if acts_on_terminal(c) {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn acts_on_terminal(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}'
                | '\u{200b}'..='\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{2069}'
                | '\u{feff}'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_escaped_and_the_rest_kept() {
        assert!(matches!(escape("web-1.ns"), Cow::Borrowed("web-1.ns")));
        assert_eq!(escape("Grüße/日本"), "Grüße/日本");
        assert_eq!(escape("a\nb\tc\r"), "a\\nb\\tc\\r");
        assert_eq!(escape("\u{1b}[31mred"), "\\u{1b}[31mred");
        assert_eq!(escape("x\u{9b}y\u{7f}"), "x\\u{9b}y\\u{7f}");
        assert_eq!(escape("abc\u{202e}fdp.exe"), "abc\\u{202e}fdp.exe");
        assert_eq!(escape("zero\u{200b}width"), "zero\\u{200b}width");
        // Quotes and backslashes are not the terminal's business.
        assert_eq!(escape(r#"a"b'c\d"#), r#"a"b'c\d"#);
    }
}
