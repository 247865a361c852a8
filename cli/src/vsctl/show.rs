//! `show`: the tree ovs-vsctl 3.1 prints (its `cmd_show_tables`), four
//! spaces per level, a column shown only when it is not at its default.

use std::collections::BTreeSet;

use crate::db::{schema, Uuid};

use super::commands::{Ctx, Out, R};
use super::Command;

/// (table, column naming the row, columns shown beneath it in order).
const SHOW: &[(&str, Option<&str>, &[&str])] = &[
    (
        "Open_vSwitch",
        None,
        &["manager_options", "bridges", "ovs_version"],
    ),
    (
        "Bridge",
        Some("name"),
        &["controller", "fail_mode", "datapath_type", "ports"],
    ),
    ("Port", Some("name"), &["tag", "trunks", "interfaces"]),
    (
        "Interface",
        Some("name"),
        &["type", "options", "error", "bfd_status"],
    ),
    ("Controller", Some("target"), &["is_connected"]),
    ("Manager", Some("target"), &["is_connected"]),
];

pub(crate) fn cmd_show(ctx: &mut Ctx, _: &Command) -> R<Out> {
    let mut out = String::new();
    let mut shown = BTreeSet::new();
    for (u, _) in ctx.data.rows("Open_vSwitch") {
        show_row(ctx, "Open_vSwitch", u, 0, &mut shown, &mut out);
    }
    Ok(Out::Text(out))
}

fn show_row(
    ctx: &Ctx,
    table: &'static str,
    uuid: Uuid,
    level: usize,
    shown: &mut BTreeSet<&str>,
    out: &mut String,
) {
    let ts = &schema().tables[table];
    let show = SHOW.iter().find(|(t, _, _)| *t == table);
    let Some(row) = ctx.data.row(table, uuid) else {
        return;
    };
    out.push_str(&" ".repeat(level * 4));
    match show.and_then(|s| s.1) {
        Some(name_col) => {
            let d = row
                .get(name_col)
                .cloned()
                .unwrap_or_else(|| ts.columns[name_col].ty.default_datum());
            out.push_str(&format!(
                "{table} {}\n",
                d.to_string(&ts.columns[name_col].ty)
            ));
        }
        None => out.push_str(&format!("{uuid}\n")),
    }
    let Some((_, _, columns)) = show else { return };
    if !shown.insert(table) {
        return;
    }
    for col in *columns {
        let cs = &ts.columns[*col];
        let datum = row
            .get(col)
            .cloned()
            .unwrap_or_else(|| cs.ty.default_datum());
        if let Some(ref_table) = cs.ty.key.ref_table.as_deref() {
            if let Some((rt, _, _)) = SHOW.iter().find(|(t, _, _)| *t == ref_table) {
                for u in datum.uuids() {
                    if ctx.data.row(rt, u).is_some() {
                        show_row(ctx, rt, u, level + 1, shown, out);
                    }
                }
                continue;
            }
        }
        if !datum.is_default(&cs.ty) {
            out.push_str(&" ".repeat((level + 1) * 4));
            out.push_str(&format!("{col}: {}\n", datum.to_string(&cs.ty)));
        }
    }
    shown.remove(table);
}
