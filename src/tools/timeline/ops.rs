//! A timeline's reads and writes: a mark at each client's send, a line to the answer and one
//! to the storage's apply, and a mark at each apply, tagged with tokens.

use super::layout::{
    Frame, Rows, CLIENT_LABEL_Y_PX, CLIENT_MARK_Y_PX, LABEL_ROW_PX, SESSION_Y_PX,
    STORAGE_LABEL_Y_PX, STORAGE_MARK_Y_PX,
};
use super::model::Lane;
use crate::fault::STORAGE;
use crate::history::{EventKind, History, OpResult};
use crate::protocol::Op;
use crate::svg::{svg, text_width_px, xml_escape};
use std::collections::{BTreeMap, BTreeSet};

const UNKNOWN_COLOUR: &str = "#ef6c00";

/// The CSS class of a client's mark (see `defs` in `draw`) by how the operation ended, as the
/// client saw it, and the word for it. Classes, not inline colours: they keep a picture small.
fn outcome_class(outcome: Option<&OpResult>) -> (&'static str, &'static str) {
    match outcome {
        Some(OpResult::Ok { .. }) => ("mo", "ok"),
        Some(OpResult::Rejected { .. }) => ("mr", "rejected"),
        Some(OpResult::Failed { .. }) => ("mf", "failed"),
        Some(OpResult::Unknown { .. }) | None => ("mu", "no answer"),
    }
}

/// A read is a circle, a write a square; `filled` or hollow; `crossed` adds an X.
fn mark(out: &mut String, op: Op, x: f64, y: f64, class: &str, filled: bool, crossed: bool) {
    let hollow = if filled { "" } else { " hol" };
    match op {
        Op::Read => svg!(
            out,
            "<circle class=\"m {class}{hollow}\" cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"3.8\"/>"
        ),
        Op::Write => svg!(
            out,
            "<rect class=\"m {class}{hollow}\" x=\"{:.1}\" y=\"{:.1}\" width=\"7\" height=\"7\"/>",
            x - 3.5,
            y - 3.5
        ),
    }
    if crossed {
        svg!(
            out,
            "<path class=\"{class} x\" d=\"M{:.1} {:.1}l10 10m0 -10l-10 10\"/>",
            x - 5.0,
            y - 5.0
        );
    }
}

pub(super) fn draw_ops(
    out: &mut String,
    history: &History,
    drawn: usize,
    frame: &Frame,
    lane_of: &BTreeMap<&str, &Lane>,
    finding_events: &BTreeSet<usize>,
) {
    let events = &history.events[..drawn];
    let mut ops = history.ops();
    ops.retain(|o| o.invoke_index < drawn);
    // Invocations by op id, for the storage's side.
    let mut invoked: BTreeMap<u64, usize> = BTreeMap::new();
    for (k, o) in ops.iter().enumerate() {
        if let EventKind::Invoke { op_id, .. } = o.invoke.kind {
            invoked.insert(op_id, k);
        }
    }
    let storage = lane_of.get(STORAGE).copied();

    // Lines first, so that marks sit on top of them.
    out.push_str("<g class=\"wires\">\n");
    for (i, e) in events.iter().enumerate() {
        let EventKind::StorageApplied {
            op_id, accepted, ..
        } = &e.kind
        else {
            continue;
        };
        let (Some(storage), Some(k)) = (storage, op_id.and_then(|id| invoked.get(&id))) else {
            continue;
        };
        let inv = ops[*k].invoke;
        let Some(client) = lane_of.get(inv.node.as_str()) else {
            continue;
        };
        let flagged = finding_events.contains(&i);
        let class = match (flagged, accepted) {
            (true, _) => "wf",
            (false, true) => "wa",
            (false, false) => "wr",
        };
        svg!(
            out,
            "<line class=\"{class}\" x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\"/>\n",
            frame.x(inv.true_us),
            client.top_px + CLIENT_MARK_Y_PX,
            frame.x(e.true_us),
            storage.top_px + STORAGE_MARK_Y_PX
        );
    }
    out.push_str("</g>\n");

    // Client marks: at the send, with a thin line to the answer.
    out.push_str("<g class=\"ops\">\n");
    let mut rows: BTreeMap<&str, Rows> = BTreeMap::new();
    for o in &ops {
        let EventKind::Invoke {
            op,
            key,
            val,
            token,
            version,
            ..
        } = &o.invoke.kind
        else {
            continue;
        };
        let Some(lane) = lane_of.get(o.invoke.node.as_str()) else {
            continue;
        };
        let x = frame.x(o.invoke.true_us);
        let y = lane.top_px + CLIENT_MARK_Y_PX;
        let outcome = o.outcome();
        let (class, said) = outcome_class(outcome);
        if let Some(c) = o.complete {
            svg!(
                out,
                "<line class=\"rl {class}\" x1=\"{x:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\"/>",
                frame.x(c.true_us)
            );
        }
        let what = match op {
            Op::Read => format!("read {key}"),
            Op::Write => format!("write {key}={val:?}"),
        };
        let detail = match outcome {
            Some(OpResult::Ok { val, version }) => format!("ok: {val:?} v{version}"),
            Some(OpResult::Rejected { err })
            | Some(OpResult::Failed { err })
            | Some(OpResult::Unknown { err }) => format!("{said}: {err}"),
            None => "never answered".to_string(),
        };
        svg!(
            out,
            "<g class=\"op\"><title>{}</title>",
            xml_escape(&format!(
                "{} at {:.3} s: {what}, token {token}, version {version} → {detail}",
                o.invoke.node,
                o.invoke.true_us as f64 / 1e6
            ))
        );
        let rejected = matches!(outcome, Some(OpResult::Rejected { .. }));
        mark(
            out,
            *op,
            x,
            y,
            class,
            !matches!(outcome, Some(OpResult::Unknown { .. }) | None),
            rejected,
        );
        out.push_str("</g>\n");
        let label = format!("{}{token}", &op.as_str()[..1]);
        let row_set = rows.entry(o.invoke.node.as_str()).or_insert_with(Rows::new);
        let w = text_width_px(&label, 8.5);
        if let Some(row) = row_set.place(x - w / 2.0, w) {
            svg!(
                out,
                "<text class=\"ol\" x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{label}</text>\n",
                lane.top_px + CLIENT_LABEL_Y_PX + row as f64 * LABEL_ROW_PX
            );
        }
    }

    // Local lease checks that refused to write, and restarts.
    for e in events {
        let Some(lane) = lane_of.get(e.node.as_str()) else {
            continue;
        };
        let x = frame.x(e.true_us);
        match &e.kind {
            EventKind::LocalCheckRefused { token, deadline_us } => svg!(
                out,
                "<g class=\"refused\"><title>{}</title><path d=\"M{x:.1} {:.1}l5 9h-10z\" \
                 fill=\"#fff\" stroke=\"{UNKNOWN_COLOUR}\" stroke-width=\"1.5\"/></g>\n",
                xml_escape(&format!(
                    "{} at {:.3} s: local lease check refused to write with token {token} \
                     (deadline {:.3} s by its clock)",
                    e.node,
                    e.true_us as f64 / 1e6,
                    *deadline_us as f64 / 1e6
                )),
                lane.top_px + CLIENT_MARK_Y_PX - 5.0
            ),
            EventKind::NodeStarted { incarnation } => svg!(
                out,
                "<g class=\"start\"><title>{} starts (incarnation {incarnation}) at {:.3} s</title>\
                 <path d=\"M{x:.1} {:.1}v10l6 -5z\" fill=\"#555\"/></g>\n",
                xml_escape(&e.node),
                e.true_us as f64 / 1e6,
                lane.top_px + SESSION_Y_PX - 5.0
            ),
            _ => {}
        }
    }

    // Storage marks: accepted filled green, rejected crossed red.
    let mut storage_rows = Rows::new();
    if let Some(storage) = storage {
        for e in events {
            let EventKind::StorageApplied {
                op_id,
                op,
                key,
                version,
                accepted,
                err,
                ..
            } = &e.kind
            else {
                continue;
            };
            let x = frame.x(e.true_us);
            let y = storage.top_px + STORAGE_MARK_Y_PX;
            let inv = op_id
                .and_then(|id| invoked.get(&id))
                .map(|k| ops[*k].invoke);
            let (who, token) = match inv.map(|i| (&i.node, &i.kind)) {
                Some((node, EventKind::Invoke { token, .. })) => (node.as_str(), Some(*token)),
                _ => ("?", None),
            };
            let class = if *accepted { "mo" } else { "mr" };
            svg!(
                out,
                "<g class=\"applied\"><title>{}</title>",
                xml_escape(&format!(
                    "storage at {:.3} s: {} {key} from {who} with version {version}: {}",
                    e.true_us as f64 / 1e6,
                    op.as_str(),
                    if *accepted {
                        "ACCEPTED".to_string()
                    } else {
                        format!("REJECTED ({err})")
                    }
                ))
            );
            mark(out, *op, x, y, class, *accepted, !*accepted);
            out.push_str("</g>\n");
            let label = match token {
                Some(t) => format!("{}{t}", &op.as_str()[..1]),
                None => format!("{}?", &op.as_str()[..1]),
            };
            let w = text_width_px(&label, 8.5);
            if let Some(row) = storage_rows.place(x - w / 2.0, w) {
                svg!(
                    out,
                    "<text class=\"ol\" x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{label}</text>\n",
                    storage.top_px + STORAGE_LABEL_Y_PX + row as f64 * LABEL_ROW_PX
                );
            }
        }
    }
    out.push_str("</g>\n");
}
