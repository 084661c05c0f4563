//! A small server-rendered SVG bar chart: no JavaScript, prints well, and the
//! numbers stay in the HTML for screen readers.

/// Horizontal bars, one per `(label, value)`; values in FARE minor units.
pub(crate) fn bars(items: &[(String, i64)]) -> String {
    bars_with(items, "Revenue share per operator", |v| kippu_domain::money::format_fare(i128::from(v)))
}

/// Horizontal bars with each value shown by `show`; `title` is the chart's accessible name.
pub(crate) fn bars_with(items: &[(String, i64)], title: &str, show: impl Fn(i64) -> String) -> String {
    let max = items.iter().map(|(_, v)| *v).max().unwrap_or(0).max(1);
    let row = 34;
    let height = row * items.len().max(1) + 10;
    let mut svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 640 {height}" role="img" aria-label="{}">"##,
        escape(title)
    );
    let colors = ["#0b6e4f", "#1570ef", "#f5a524", "#7a5af8", "#b42318"];
    for (i, (label, v)) in items.iter().enumerate() {
        let y = 5 + i * row;
        let w = (*v as f64 / max as f64 * 400.0).round() as i64;
        let c = colors[i % colors.len()];
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
}
