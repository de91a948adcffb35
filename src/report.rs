//! A stand-alone HTML page showing sample queries beside their top-k results, so that a
//! person can see what the numbers of an evaluation mean and where search fails.

use std::fmt::Write as _;
use std::path::Path;

use crate::error::{Error, Result};

/// One result tile.
#[derive(Debug, Clone)]
pub struct Tile {
    /// Image location: an absolute path (shown through `file://`) or a URL.
    pub image: String,
    pub caption: String,
    /// Green or red frame: is this result correct for the query?
    pub correct: Option<bool>,
}

/// One row of the page: the query and its results.
#[derive(Debug, Clone)]
pub struct Row {
    pub query: Tile,
    pub results: Vec<Tile>,
}

/// A table of figures shown above the sample rows (e.g. per-class precision).
#[derive(Debug, Clone)]
pub struct Table {
    pub title: String,
    pub header: Vec<String>,
    /// Cells as they are shown; numbers are right-aligned by the page's style.
    pub rows: Vec<Vec<String>>,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn src(image: &str) -> String {
    if image.starts_with('/') { format!("file://{}", esc(image)) } else { esc(image) }
}

fn tile(out: &mut String, t: &Tile, class: &str) {
    let frame = match t.correct {
        Some(true) => " ok",
        Some(false) => " bad",
        None => "",
    };
    let _ = write!(
        out,
        "<figure class=\"{class}{frame}\"><img loading=\"lazy\" src=\"{}\" alt=\"\"><figcaption>{}</figcaption></figure>",
        src(&t.image),
        esc(&t.caption)
    );
}

/// Write the page: a title, a summary block (preformatted), the tables and the rows.
pub fn write_html(
    path: &Path,
    title: &str,
    summary: &str,
    tables: &[Table],
    rows: &[Row],
) -> Result<()> {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>{t}</title>\
         <style>body{{font:14px system-ui,sans-serif;margin:1.5rem;color:#222}}\
         .row{{display:flex;gap:.5rem;align-items:flex-start;margin:.75rem 0;padding-bottom:.75rem;border-bottom:1px solid #eee}}\
         figure{{margin:0;width:120px}}figure img{{width:120px;height:150px;object-fit:contain;background:#fafafa;border:3px solid #ddd}}\
         figure.q img{{border-color:#333}}figure.ok img{{border-color:#2a9d4b}}figure.bad img{{border-color:#d43c3c}}\
         figcaption{{font-size:11px;word-break:break-word}}pre{{background:#f6f6f6;padding:1rem;overflow:auto}}\
         table{{border-collapse:collapse;margin:.5rem 0 1rem}}th,td{{padding:.2rem .6rem;border-bottom:1px solid #eee}}\
         td{{text-align:right}}td:first-child,th:first-child{{text-align:left}}</style>\
         <h1>{t}</h1><pre>{s}</pre>",
        t = esc(title),
        s = esc(summary)
    );
    for t in tables {
        let _ = write!(out, "<section><h2>{}</h2><table><tr>", esc(&t.title));
        for h in &t.header {
            let _ = write!(out, "<th>{}</th>", esc(h));
        }
        out.push_str("</tr>");
        for r in &t.rows {
            out.push_str("<tr>");
            for c in r {
                let _ = write!(out, "<td>{}</td>", esc(c));
            }
            out.push_str("</tr>");
        }
        out.push_str("</table></section>");
    }
    for r in rows {
        out.push_str("<div class=\"row\">");
        tile(&mut out, &r.query, "q");
        for t in &r.results {
            tile(&mut out, t, "r");
        }
        out.push_str("</div>");
    }
    out.push_str("</html>\n");
    std::fs::write(path, out).map_err(|source| Error::Io {
        action: "write",
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_escapes_and_marks_results() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.html");
        let row = Row {
            query: Tile { image: "/x/q.jpg".into(), caption: "<query>".into(), correct: None },
            results: vec![Tile {
                image: "/x/1.jpg".into(),
                caption: "1 Tshirts".into(),
                correct: Some(true),
            }],
        };
        let table = Table {
            title: "Per class".into(),
            header: vec!["class".into(), "P@5".into()],
            rows: vec![vec!["T-Shirt <b>".into(), "0.950".into()]],
        };
        write_html(&p, "Eval & more", "P@5 0.5", &[table], &[row]).unwrap();
        let html = std::fs::read_to_string(&p).unwrap();
        assert!(html.contains("&lt;query&gt;") && html.contains("Eval &amp; more"));
        assert!(html.contains("<h2>Per class</h2>") && html.contains("<td>T-Shirt &lt;b&gt;</td>"));
        assert!(html.contains("file:///x/q.jpg") && html.contains("class=\"r ok\""));
    }
}
