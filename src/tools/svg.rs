//! What the hand-written SVG pictures share: the [timeline](crate::timeline) of one run and
//! the [plot](crate::plot) of a sweep. Escaping, a rough text width, and a macro that appends
//! formatted text. No font library: the same input gives the same bytes.

/// Escapes text for XML content and attribute values.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Control characters are not allowed in XML 1.0 at all: show them as a space.
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A rough width of text in a sans-serif font: enough to keep labels from overlapping.
pub(crate) fn text_width_px(s: &str, font_px: f64) -> f64 {
    s.chars().count() as f64 * font_px * 0.58
}

/// Appends formatted text to the SVG; writing into a `String` cannot fail.
macro_rules! svg {
    ($out:expr, $($arg:tt)*) => {{
        use ::std::fmt::Write as _;
        let _ = write!($out, $($arg)*);
    }};
}
pub(crate) use svg;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_xml() {
        assert_eq!(
            xml_escape("a<b>&\"c'\u{1}"),
            "a&lt;b&gt;&amp;&quot;c&apos; "
        );
    }

    #[test]
    fn appends_formatted_text() {
        let mut out = String::from("<g>");
        svg!(out, "<text x=\"{:.1}\">{}</text>", 2.04, xml_escape("a&b"));
        assert_eq!(out, "<g><text x=\"2.0\">a&amp;b</text>");
    }
}
