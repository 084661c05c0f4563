//! A small server-rendered SVG bar chart: no JavaScript, prints well, and the
//! numbers stay in the HTML for screen readers.

/// Horizontal bars, one per `(label, value)`; values in FARE minor units.
pub(crate) fn bars(items: &[(String, i64)]) -> String {
    bars_with(items, "Revenue share per operator", |v| kippu_domain::money::format_fare(i128::from(v)))
}

/// Horizontal bars with each value shown by `show`; `title` is the chart's accessible name.
pub(crate) fn bars_with(items: &[(String, i64)], title: &str, show: impl Fn(i64) -> String) -> String {
    bars_coloured(items, &["#0b6e4f", "#1570ef", "#f5a524", "#7a5af8", "#b42318"], title, show)
}

/// [`bars_with`], the `i`-th bar in `colors[i]` (cycling), for bars whose colour means something
/// (a state: red for failed, green for confirmed).
pub(crate) fn bars_coloured(
    items: &[(String, i64)],
    colors: &[&str],
    title: &str,
    show: impl Fn(i64) -> String,
) -> String {
    let max = items.iter().map(|(_, v)| *v).max().unwrap_or(0).max(1);
    let row = 34;
    let height = row * items.len().max(1) + 10;
    let mut svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 640 {height}" role="img" aria-label="{}">"##,
        escape(title)
    );
    for (i, (label, v)) in items.iter().enumerate() {
        let y = 5 + i * row;
        let w = (*v as f64 / max as f64 * 400.0).round() as i64;
        let c = escape(colors.get(i % colors.len().max(1)).copied().unwrap_or("#0b6e4f"));
        svg.push_str(&format!(
            r##"<text x="0" y="{ty}" font-size="14" fill="#1b1f24">{label}</text><rect x="150" y="{y}" width="{w}" height="24" rx="4" fill="{c}"/><text x="{tx}" y="{ty}" font-size="14" fill="#1b1f24">{val}</text>"##,
            ty = y + 17,
            label = escape(label),
            tx = 150 + w + 8,
            val = escape(&show(*v)),
        ));
    }
    svg.push_str("</svg>");
    svg
}

/// One column of a [`columns`] chart: a label under it, its value, and where it links to.
pub(crate) struct Column {
    /// Label under the column (e.g. `07-14`).
    pub(crate) label: String,
    /// Value; negative values draw as empty columns.
    pub(crate) value: i64,
    /// The drill-down behind the figure, if any.
    pub(crate) href: Option<String>,
}

/// Vertical columns, one per day (or any ordered bucket), each a link to the
/// figures behind it; the value is written above each column with `show`.
pub(crate) fn columns(items: &[Column], title: &str, show: impl Fn(i64) -> String) -> String {
    // Sized for a phone as much as a desk: the 640-unit view box is drawn about 380 px wide there.
    let (width, height, top, bottom) = (640usize, 250usize, 30usize, 34usize);
    let max = items.iter().map(|c| c.value).max().unwrap_or(0).max(1);
    let slot = (width - 20) / items.len().max(1);
    let bar = (slot * 7 / 10).clamp(2, 90);
    // Label every column when they fit, otherwise every n-th (and always the last).
    let every = (64 / slot.max(1)).max(1);
    let plot = height - top - bottom;
    let mut svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" aria-label="{}">"##,
        escape(title)
    );
    svg.push_str(&format!(
        r##"<line x1="10" y1="{y}" x2="{x2}" y2="{y}" stroke="#98a2b3" stroke-width="1"/>"##,
        y = height - bottom,
        x2 = width - 10
    ));
    for (i, c) in items.iter().enumerate() {
        let h = (c.value.max(0) as f64 / max as f64 * plot as f64).round() as usize;
        let x = 10 + i * slot + (slot - bar) / 2;
        let y = height - bottom - h;
        let cx = x + bar / 2;
        let mut col = format!(
            r##"<title>{label}: {val}</title><rect x="{x}" y="{y}" width="{bar}" height="{h}" rx="3" fill="#0b6e4f"/>"##,
            label = escape(&c.label),
            val = escape(&show(c.value)),
        );
        if every == 1 || i % every == 0 || i + 1 == items.len() {
            col.push_str(&format!(
                r##"<text x="{cx}" y="{ly}" font-size="18" text-anchor="middle" fill="#5b6470">{label}</text>"##,
                ly = height - bottom + 24,
                label = escape(&c.label),
            ));
        }
        if items.len() <= 10 {
            col.push_str(&format!(
                r##"<text x="{cx}" y="{vy}" font-size="20" text-anchor="middle" fill="#1b1f24">{val}</text>"##,
                vy = y.saturating_sub(6).max(20),
                val = escape(&show(c.value)),
            ));
        }
        match &c.href {
            Some(href) => svg.push_str(&format!(r##"<a href="{}">{col}</a>"##, escape(href))),
            None => svg.push_str(&format!("<g>{col}</g>")),
        }
    }
    svg.push_str("</svg>");
    svg
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    #[test]
    fn bars_scale_to_the_largest() {
        let svg = super::bars(&[("Metro".into(), 200), ("Bus <x>".into(), 100)]);
        assert!(svg.contains(r#"width="400""#));
        assert!(svg.contains(r#"width="200""#));
        assert!(svg.contains("Bus &lt;x&gt;"));
        assert!(svg.contains("2.00"));
    }

    #[test]
    fn coloured_bars_take_their_colour_in_order() {
        let items = [("Failed".to_owned(), 2), ("Confirmed".to_owned(), 4)];
        let svg = super::bars_coloured(&items, &["#b42318", "#0b6e4f"], "Writes", |v| v.to_string());
        assert!(svg.contains(r##"width="200" height="24" rx="4" fill="#b42318""##), "{svg}");
        assert!(svg.contains(r##"width="400" height="24" rx="4" fill="#0b6e4f""##), "{svg}");
        assert!(svg.contains(">4<"), "{svg}");
    }

    #[test]
    fn columns_scale_link_and_escape() {
        let cols = [
            super::Column { label: "07-14".into(), value: 300, href: Some("/e?day=2025-07-14&kind=LegSold".into()) },
            super::Column { label: "07-15".into(), value: 150, href: None },
        ];
        let svg = super::columns(&cols, "Revenue <per day>", |v| format!("{v} F"));
        assert!(svg.contains(r#"aria-label="Revenue &lt;per day&gt;""#), "{svg}");
        // 186 units of plot height for the largest value, half of it for the other.
        assert!(svg.contains(r#"height="186""#) && svg.contains(r#"height="93""#), "{svg}");
        assert!(svg.contains(r#"<a href="/e?day=2025-07-14&amp;kind=LegSold">"#), "{svg}");
        assert_eq!(svg.matches("<a ").count(), 1);
        assert!(svg.contains(">300 F<") && svg.contains(">07-15<"), "{svg}");
    }
}
