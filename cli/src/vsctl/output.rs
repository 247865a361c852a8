//! Table output of `list` and `find`, in OVS's formats (`lib/table.c`):
//! list (the default), table, csv, html and json, with string, bare or json
//! cells, plus OVS's JSON writer (sorted keys, its own pretty style).

use serde_json::Value;

use crate::db::{json_string, Datum, Type};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableFormat {
    List,
    Table,
    Csv,
    Html,
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CellFormat {
    String,
    Bare,
    Json,
}

/// `--format`, `--data`, `--no-headings`, `--pretty`, `--bare`, `--max-column-width`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableStyle {
    pub format: TableFormat,
    pub cell: CellFormat,
    pub headings: bool,
    pub pretty: bool,
    pub max_column_width: usize,
}

/// One cell: a datum and its column type.
#[derive(Clone, Debug)]
pub struct Cell {
    pub datum: Datum,
    pub ty: Type,
}

impl Cell {
    fn text(&self, style: &TableStyle) -> String {
        match style.cell {
            CellFormat::String => self.datum.to_string(&self.ty),
            CellFormat::Bare => self.datum.to_bare(),
            CellFormat::Json => ovs_json(&self.datum.to_json(), false),
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Table {
    pub headings: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
}

/// Prints tables; like OVS it separates successive tables (of the list,
/// table and csv formats) by a blank line.
#[derive(Default)]
pub struct Printer {
    printed: usize,
}

impl Printer {
    pub fn print(&mut self, t: &Table, style: &TableStyle) -> String {
        let mut s = String::new();
        let separate = |s: &mut String, n: &mut usize| {
            if *n > 0 {
                s.push('\n');
            }
            *n += 1;
        };
        match style.format {
            TableFormat::List => {
                separate(&mut s, &mut self.printed);
                for (y, row) in t.rows.iter().enumerate() {
                    if y > 0 {
                        s.push('\n');
                    }
                    for (x, cell) in row.iter().enumerate() {
                        if style.headings {
                            s += &format!("{:<20}: ", t.headings[x]);
                        }
                        s += &cell.text(style);
                        s.push('\n');
                    }
                }
            }
            TableFormat::Table => {
                separate(&mut s, &mut self.printed);
                let texts: Vec<Vec<String>> = t
                    .rows
                    .iter()
                    .map(|r| r.iter().map(|c| c.text(style)).collect())
                    .collect();
                let widths: Vec<usize> = (0..t.headings.len())
                    .map(|x| {
                        let mut w = texts.iter().map(|r| r[x].len()).max().unwrap_or(0);
                        if style.max_column_width > 0 {
                            w = w.min(style.max_column_width);
                        }
                        if style.headings {
                            w = w.max(t.headings[x].len());
                        }
                        w
                    })
                    .collect();
                let line = |s: &mut String, cells: &mut dyn Iterator<Item = String>| {
                    let l: Vec<String> = cells.collect();
                    *s += l.join(" ").trim_end_matches(' ');
                    s.push('\n');
                };
                if style.headings {
                    line(
                        &mut s,
                        &mut t.headings.iter().zip(&widths).map(|(h, w)| pad(h, *w)),
                    );
                    line(&mut s, &mut widths.iter().map(|w| "-".repeat(*w)));
                }
                for r in &texts {
                    line(
                        &mut s,
                        &mut r.iter().zip(&widths).map(|(c, w)| pad(truncate(c, *w), *w)),
                    );
                }
            }
            TableFormat::Csv => {
                separate(&mut s, &mut self.printed);
                let csv = |c: &str| {
                    if c.contains(['\n', '"', ',']) {
                        format!("\"{}\"", c.replace('"', "\"\""))
                    } else {
                        c.to_string()
                    }
                };
                if style.headings {
                    s += &t
                        .headings
                        .iter()
                        .map(|h| csv(h))
                        .collect::<Vec<_>>()
                        .join(",");
                    s.push('\n');
                }
                for r in &t.rows {
                    s += &r
                        .iter()
                        .map(|c| csv(&c.text(style)))
                        .collect::<Vec<_>>()
                        .join(",");
                    s.push('\n');
                }
            }
            TableFormat::Html => {
                s += "<table border=1>\n";
                if style.headings {
                    s += "  <tr>\n";
                    for h in &t.headings {
                        s += &html_cell("th", h);
                    }
                    s += "  </tr>\n";
                }
                for r in &t.rows {
                    s += "  <tr>\n";
                    for (x, c) in r.iter().enumerate() {
                        let text = c.text(style);
                        if t.headings[x] == "_uuid" {
                            s += &format!(
                                "    <td><a name=\"{}\">{}</a></td>\n",
                                html_escape(&text),
                                html_escape(truncate(&text, 8))
                            );
                        } else {
                            s += &html_cell("td", &text);
                        }
                    }
                    s += "  </tr>\n";
                }
                s += "</table>\n";
            }
            TableFormat::Json => {
                let data: Vec<Value> = t
                    .rows
                    .iter()
                    .map(|r| Value::Array(r.iter().map(|c| c.datum.to_json()).collect()))
                    .collect();
                let headings: Vec<Value> =
                    t.headings.iter().map(|h| Value::from(h.as_str())).collect();
                let json = serde_json::json!({ "data": data, "headings": headings });
                s += &ovs_json(&json, style.pretty);
                s.push('\n');
            }
        }
        s
    }
}

/// `s` padded with spaces to `w` bytes (C's `%-*s` counts bytes).
fn pad(s: &str, w: usize) -> String {
    format!("{s}{}", " ".repeat(w.saturating_sub(s.len())))
}

/// The first `n` bytes of `s`, backing off to a character boundary.
fn truncate(s: &str, mut n: usize) -> &str {
    if n >= s.len() {
        return s;
    }
    while !s.is_char_boundary(n) {
        n -= 1;
    }
    &s[..n]
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A cell whose UUIDs become links to the rows they name, as OVS does.
fn html_cell(element: &str, content: &str) -> String {
    let mut out = format!("    <{element}>");
    let mut rest = content;
    while !rest.is_empty() {
        if rest.len() >= 36
            && rest.is_char_boundary(36)
            && crate::db::Uuid::parse(&rest[..36]).is_some()
        {
            out += &format!("<a href=\"#{}\">{}</a>", &rest[..36], &rest[..8]);
            rest = &rest[36..];
        } else {
            let c = rest.chars().next().unwrap_or(' ');
            out += &html_escape(&c.to_string());
            rest = &rest[c.len_utf8()..];
        }
    }
    out + &format!("</{element}>\n")
}

/// OVS's JSON writer (`json_to_ds` with `JSSF_SORT`, optionally
/// `JSSF_PRETTY`): members sorted, and in pretty mode a new line with two
/// spaces per level before each element, closing brackets kept on the line.
pub fn ovs_json(v: &Value, pretty: bool) -> String {
    let mut out = String::new();
    write_json(v, pretty, 0, &mut out);
    out
}

fn write_json(v: &Value, pretty: bool, depth: usize, out: &mut String) {
    let indent = |out: &mut String, depth: usize| {
        if pretty {
            out.push('\n');
            out.push_str(&" ".repeat(2 * depth));
        }
    };
    match v {
        Value::Array(a) => {
            out.push('[');
            if !a.is_empty() {
                indent(out, depth + 1);
                for (i, e) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                        indent(out, depth + 1);
                    }
                    write_json(e, pretty, depth + 1, out);
                }
            }
            out.push(']');
        }
        Value::Object(o) => {
            out.push('{');
            indent(out, depth + 1);
            let mut members: Vec<_> = o.iter().collect();
            members.sort_by(|a, b| a.0.cmp(b.0));
            for (i, (k, e)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                    indent(out, depth + 1);
                }
                out.push_str(&json_string(k));
                out.push(':');
                if pretty {
                    out.push(' ');
                }
                write_json(e, pretty, depth + 1, out);
            }
            out.push('}');
        }
        Value::String(s) => out.push_str(&json_string(s)),
        other => out.push_str(&other.to_string()),
    }
}
