//! A report as one self-contained HTML page: inline CSS, inline SVG, one small inline script
//! that marks the page when anything is wider than its box; no link, image or font to fetch,
//! so the page reads the same offline, years later.

use std::fmt::Write as _;

use super::column::{Align, Column, cells};
use super::meta::Meta;

/// Everything the page's reader gets: the width check sets `data-overflow` on <body> to the
/// ids of the boxes whose content is wider than they are ("" when none).
const STYLE: &str = "body{font-family:sans-serif;margin:1.5em auto;max-width:62em;padding:0 1em;\
color:#222;line-height:1.4}h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em}\
.box{overflow-x:auto;max-width:100%}table{border-collapse:collapse;font-size:13px}\
th,td{padding:2px 7px;border-bottom:1px solid #ddd;vertical-align:top}th{background:#f3f3f3}\
td.r,th.r{text-align:right;font-variant-numeric:tabular-nums}tr.why td{color:#444;\
border-bottom:1px solid #bbb;padding-bottom:6px;font-size:12.5px}code{background:#f3f3f3;\
padding:1px 4px;overflow-wrap:anywhere}svg{max-width:100%;height:auto}\
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px;font-size:13px}\
dd{margin:0;overflow-wrap:anywhere}";

const CHECK: &str = "window.addEventListener('load',function(){var w=[];\
document.querySelectorAll('.box,body').forEach(function(e){if(e.scrollWidth>e.clientWidth+1)\
w.push(e.id||e.tagName.toLowerCase())});document.body.setAttribute('data-overflow',w.join(' '))\
;document.body.setAttribute('data-checked','yes')});";

/// The whole page: `title`, the command and the machine at the top, `body` (sections made
/// with [`section`]), the run's metadata at the end.
pub(crate) fn page(title: &str, meta: &Meta, body: &str) -> String {
    let mut html = String::new();
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{t}</title>\n<style>{STYLE}</style>\n<script>{CHECK}</script>\n</head>\n<body>\n\
         <h1>{t}</h1>\n<p>{host}, {kernel}, {cores} cores; {date}</p>\n<p><code>{cmd}</code></p>\n",
        t = escape(title),
        host = escape(&meta.host),
        kernel = escape(&meta.kernel),
        cores = meta.cores,
        date = escape(&meta.date_utc),
        cmd = escape(&meta.command),
    );
    html.push_str(body);
    html.push_str(&section("run", "The run", &metadata(meta)));
    html.push_str("</body>\n</html>\n");
    html
}

/// A titled section whose content sits in a box that the width check watches.
pub(crate) fn section(id: &str, title: &str, content: &str) -> String {
    format!(
        "<h2>{}</h2>\n<div class=\"box\" id=\"{}\">\n{content}</div>\n",
        escape(title),
        escape(id)
    )
}

/// `items` in `columns` as a table; with `note`, each item's note on a row of its own under
/// it, across every column.
pub(crate) fn table<T>(
    columns: &[Column<T>],
    items: &[T],
    note: Option<fn(&T) -> String>,
) -> String {
    let class = |c: &Column<T>| match c.align {
        Align::Left => "",
        Align::Right => " class=\"r\"",
    };
    let mut html = String::from("<table>\n<tr>");
    for c in columns {
        let _ = write!(html, "<th{}>{}</th>", class(c), escape(c.head));
    }
    html.push_str("</tr>\n");
    for (item, row) in items.iter().zip(cells(columns, items)) {
        html.push_str("<tr>");
        for (c, cell) in columns.iter().zip(&row) {
            let _ = write!(html, "<td{}>{}</td>", class(c), escape(cell));
        }
        html.push_str("</tr>\n");
        if let Some(note) = note {
            let _ = writeln!(
                html,
                "<tr class=\"why\"><td colspan=\"{}\">{}</td></tr>",
                columns.len(),
                escape(&note(item))
            );
        }
    }
    html.push_str("</table>\n");
    html
}

/// Notes as paragraphs.
pub(crate) fn paragraphs<I>(notes: I) -> String
where
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    notes
        .into_iter()
        .map(|n| format!("<p>{}</p>\n", escape(n.as_ref())))
        .collect()
}

/// An SVG document as an inline element: its XML prologue dropped.
pub(crate) fn inline_svg(svg: &str) -> String {
    match svg.find("<svg") {
        Some(at) => svg[at..].to_string(),
        None => String::new(),
    }
}

/// The metadata as a list of names and values.
fn metadata(meta: &Meta) -> String {
    let mut html = String::from("<dl>\n");
    for (name, value) in meta.fields() {
        let _ = writeln!(
            html,
            "<dt>{}</dt><dd>{}</dd>",
            escape(&name),
            escape(&value)
        );
    }
    html.push_str("</dl>\n");
    html
}

pub(crate) fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use serde_json::Map;

    use super::*;

    #[test]
    fn a_page_fetches_nothing_and_escapes_its_text() {
        let columns = vec![
            Column::left("name", |s: &(&str, u32)| s.0.to_string()),
            Column::right("n", |s: &(&str, u32)| s.1.to_string()),
        ];
        let items = [("a<b", 1), ("c&d", 22)];
        let body = section(
            "t",
            "Table",
            &table(&columns, &items, Some(|s| format!("why {}", s.0))),
        );
        let page = page("lab <1>", &Meta::now(Map::new()), &body);
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert!(page.contains("<td>a&lt;b</td><td class=\"r\">1</td>"));
        assert!(page.contains("<td colspan=\"2\">why c&amp;d</td>"));
        assert!(page.contains("<h1>lab &lt;1&gt;</h1>"));
        for fetch in ["src=", "href=", "url(", "@import", "http"] {
            assert!(!page.contains(fetch), "{fetch} in the page");
        }
    }
}
