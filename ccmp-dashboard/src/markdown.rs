//! A task's result as Markdown, rendered to HTML with everything the agent wrote escaped: raw
//! HTML in the Markdown is shown as text, and links other than http(s), mailto and in-page
//! ones become plain text.

use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};

/// The HTML of `markdown`, safe to put in a page.
pub(crate) fn render(markdown: &str) -> String {
    let mut in_unsafe_link = 0usize;
    let events = Parser::new_ext(
        markdown,
        Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH,
    )
    .filter_map(|event| match event {
        Event::Html(html) | Event::InlineHtml(html) => Some(Event::Text(html)),
        Event::Start(Tag::Link { ref dest_url, .. }) if !safe_url(dest_url) => {
            in_unsafe_link += 1;
            None
        }
        Event::End(TagEnd::Link) if in_unsafe_link > 0 => {
            in_unsafe_link -= 1;
            None
        }
        Event::Start(Tag::Image { dest_url, .. }) => Some(Event::Text(dest_url)),
        Event::End(TagEnd::Image) => None,
        other => Some(other),
    });
    let mut html = String::new();
    pulldown_cmark::html::push_html(&mut html, events);
    html
}

fn safe_url(url: &str) -> bool {
    let lower = url.trim().to_ascii_lowercase();
    lower.starts_with("http://")
        || lower.starts_with("https://")
        || lower.starts_with("mailto:")
        || lower.starts_with('#')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_html_and_script_links_are_shown_as_text() {
        let html = render(
            "**done** <script>alert(1)</script> [x](javascript:alert(1)) [ok](https://a.b) ![i](http://t/p.png)",
        );
        assert!(html.contains("<strong>done</strong>"), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
        assert!(!html.contains("javascript:"), "{html}");
        assert!(html.contains("<a href=\"https://a.b\">ok</a>"), "{html}");
        assert!(!html.contains("<img"), "{html}");
    }
}
