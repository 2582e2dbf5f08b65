//! A timeline's reads and writes: a mark at each client's send, a line to the answer and one
//! to the storage's apply, and a mark at each apply, tagged with tokens.
//!
//! Drawn in passes, each its own function, in paint order: the wires from each send to its
//! apply (under everything), the clients' marks, the local lease refusals and restarts, and
//! the storage's marks.

use super::layout::{
    Frame, Rows, CLIENT_LABEL_Y_PX, CLIENT_MARK_Y_PX, LABEL_ROW_PX, SESSION_Y_PX,
    STORAGE_LABEL_Y_PX, STORAGE_MARK_Y_PX,
};
use super::model::Lane;
use crate::fault::STORAGE;
use crate::history::{Event, EventKind, History, OpResult, OpView};
use crate::protocol::Op;
use crate::svg::{svg, text_width_px, xml_escape};
use std::collections::{BTreeMap, BTreeSet};

const UNKNOWN_COLOUR: &str = "#ef6c00";

/// The CSS of the classes this file draws with, written into the picture's `<style>` by
/// `defs` in `draw`: one table, next to its use. Classes, not inline colours: they keep a
/// picture small (a standard run has hundreds of marks).
pub(super) const OPS_CSS: &str = "\
.mark{stroke-width:1.4}\n\
.outcome-ok{fill:#2e7d32;stroke:#2e7d32}\n\
.outcome-rejected{fill:#c62828;stroke:#c62828}\n\
.outcome-failed{fill:#9e9e9e;stroke:#9e9e9e}\n\
.outcome-unanswered{fill:#ef6c00;stroke:#ef6c00}\n\
.hollow{fill:#fff}\n\
.cross{fill:none;stroke-width:1.8}\n\
.reply{stroke-width:1}\n\
.wire-accepted{stroke:#2e7d32;stroke-width:0.8;stroke-opacity:0.45}\n\
.wire-rejected{stroke:#c62828;stroke-width:1.2;stroke-opacity:0.7}\n\
.wire-flagged{stroke:#d50000;stroke-width:2.2;stroke-opacity:0.9}\n";

/// The class of an operation's label under its mark (defined in `defs`: belief and leader
/// labels share it).
const LABEL_CLASS: &str = "label";

/// How an operation ended, as the client saw it, or as the storage applied it.
#[derive(Clone, Copy)]
enum Outcome {
    Ok,
    Rejected,
    Failed,
    Unanswered,
}

impl Outcome {
    fn of(result: Option<&OpResult>) -> Outcome {
        match result {
            Some(OpResult::Ok { .. }) => Outcome::Ok,
            Some(OpResult::Rejected { .. }) => Outcome::Rejected,
            Some(OpResult::Failed { .. }) => Outcome::Failed,
            Some(OpResult::Unknown { .. }) | None => Outcome::Unanswered,
        }
    }

    /// The CSS class of a mark and reply line (see [`OPS_CSS`]).
    fn class(self) -> &'static str {
        match self {
            Outcome::Ok => "outcome-ok",
            Outcome::Rejected => "outcome-rejected",
            Outcome::Failed => "outcome-failed",
            Outcome::Unanswered => "outcome-unanswered",
        }
    }

    /// The word for it in a mark's title.
    fn word(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Rejected => "rejected",
            Outcome::Failed => "failed",
            Outcome::Unanswered => "no answer",
        }
    }

    /// Unanswered marks are hollow: nobody knows whether they took effect.
    fn fill(self) -> Fill {
        match self {
            Outcome::Unanswered => Fill::Hollow,
            _ => Fill::Solid,
        }
    }

    /// Rejected marks are crossed.
    fn cross(self) -> Cross {
        match self {
            Outcome::Rejected => Cross::Crossed,
            _ => Cross::Plain,
        }
    }
}

/// Whether a mark is filled with its outcome's colour or hollow.
#[derive(Clone, Copy)]
enum Fill {
    Solid,
    Hollow,
}

/// Whether a mark has an X over it.
#[derive(Clone, Copy)]
enum Cross {
    Plain,
    Crossed,
}

/// One mark: a read is a circle, a write a square.
struct Mark {
    op: Op,
    x: f64,
    y: f64,
    outcome: Outcome,
    fill: Fill,
    cross: Cross,
}

fn draw_mark(out: &mut String, m: &Mark) {
    let (x, y, class) = (m.x, m.y, m.outcome.class());
    let hollow = match m.fill {
        Fill::Solid => "",
        Fill::Hollow => " hollow",
    };
    match m.op {
        Op::Read => svg!(
            out,
            "<circle class=\"mark {class}{hollow}\" cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"3.8\"/>"
        ),
        Op::Write => svg!(
            out,
            "<rect class=\"mark {class}{hollow}\" x=\"{:.1}\" y=\"{:.1}\" width=\"7\" height=\"7\"/>",
            x - 3.5,
            y - 3.5
        ),
    }
    if let Cross::Crossed = m.cross {
        svg!(
            out,
            "<path class=\"{class} cross\" d=\"M{:.1} {:.1}l10 10m0 -10l-10 10\"/>",
            x - 5.0,
            y - 5.0
        );
    }
}

/// What every pass reads: the drawn events, their operations, and where things go.
struct Ops<'a> {
    events: &'a [Event],
    ops: Vec<OpView<'a>>,
    /// Index in `ops` of each operation's invocation, by op id: the storage's side of a wire.
    invoked: BTreeMap<u64, usize>,
    storage: Option<&'a Lane>,
    frame: &'a Frame,
    lane_of: &'a BTreeMap<&'a str, &'a Lane>,
}

impl<'a> Ops<'a> {
    fn invocation(&self, op_id: Option<u64>) -> Option<&'a Event> {
        op_id
            .and_then(|id| self.invoked.get(&id))
            .map(|k| self.ops[*k].invoke)
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
    let mut ops = history.ops();
    ops.retain(|o| o.invoke_index < drawn);
    let mut invoked: BTreeMap<u64, usize> = BTreeMap::new();
    for (k, o) in ops.iter().enumerate() {
        if let EventKind::Invoke { op_id, .. } = o.invoke.kind {
            invoked.insert(op_id, k);
        }
    }
    let view = Ops {
        events: &history.events[..drawn],
        ops,
        invoked,
        storage: lane_of.get(STORAGE).copied(),
        frame,
        lane_of,
    };
    // Lines first, so that marks sit on top of them.
    draw_wires(out, &view, finding_events);
    out.push_str("<g class=\"ops\">\n");
    draw_client_marks(out, &view);
    draw_refusals_and_starts(out, &view);
    draw_storage_marks(out, &view);
    out.push_str("</g>\n");
}

/// A line from each send to the storage's apply: red when refused, bold when flagged.
fn draw_wires(out: &mut String, view: &Ops<'_>, finding_events: &BTreeSet<usize>) {
    out.push_str("<g class=\"wires\">\n");
    for (i, e) in view.events.iter().enumerate() {
        let EventKind::StorageApplied {
            op_id, accepted, ..
        } = &e.kind
        else {
            continue;
        };
        let (Some(storage), Some(inv)) = (view.storage, view.invocation(*op_id)) else {
            continue;
        };
        let Some(client) = view.lane_of.get(inv.node.as_str()) else {
            continue;
        };
        let class = match (finding_events.contains(&i), accepted) {
            (true, _) => "wire-flagged",
            (false, true) => "wire-accepted",
            (false, false) => "wire-rejected",
        };
        svg!(
            out,
            "<line class=\"{class}\" x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\"/>\n",
            view.frame.x(inv.true_us),
            client.top_px + CLIENT_MARK_Y_PX,
            view.frame.x(e.true_us),
            storage.top_px + STORAGE_MARK_Y_PX
        );
    }
    out.push_str("</g>\n");
}

/// Client marks: at the send, with a thin line to the answer, and the token under it.
fn draw_client_marks(out: &mut String, view: &Ops<'_>) {
    let mut rows: BTreeMap<&str, Rows> = BTreeMap::new();
    for o in &view.ops {
        let EventKind::Invoke { op, token, .. } = &o.invoke.kind else {
            continue;
        };
        let Some(lane) = view.lane_of.get(o.invoke.node.as_str()) else {
            continue;
        };
        let x = view.frame.x(o.invoke.true_us);
        let y = lane.top_px + CLIENT_MARK_Y_PX;
        let outcome = Outcome::of(o.outcome());
        let class = outcome.class();
        if let Some(c) = o.complete {
            svg!(
                out,
                "<line class=\"reply {class}\" x1=\"{x:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\"/>",
                view.frame.x(c.true_us)
            );
        }
        svg!(
            out,
            "<g class=\"op\"><title>{}</title>",
            xml_escape(&client_op_title(o, outcome))
        );
        let (fill, cross) = (outcome.fill(), outcome.cross());
        draw_mark(
            out,
            &Mark {
                op: *op,
                x,
                y,
                outcome,
                fill,
                cross,
            },
        );
        out.push_str("</g>\n");
        let label = format!("{}{token}", &op.as_str()[..1]);
        let row_set = rows.entry(o.invoke.node.as_str()).or_insert_with(Rows::new);
        draw_label(out, row_set, &label, x, lane.top_px + CLIENT_LABEL_Y_PX);
    }
}

/// A client mark's title: who sent what, with which token, and what came back.
fn client_op_title(o: &OpView<'_>, outcome: Outcome) -> String {
    let EventKind::Invoke {
        op,
        key,
        val,
        token,
        version,
        ..
    } = &o.invoke.kind
    else {
        return String::new();
    };
    let what = match op {
        Op::Read => format!("read {key}"),
        Op::Write => format!("write {key}={val:?}"),
    };
    let detail = match o.outcome() {
        Some(OpResult::Ok { val, version }) => format!("ok: {val:?} v{version}"),
        Some(OpResult::Rejected { err })
        | Some(OpResult::Failed { err })
        | Some(OpResult::Unknown { err }) => format!("{}: {err}", outcome.word()),
        None => "never answered".to_string(),
    };
    format!(
        "{} at {:.3} s: {what}, token {token}, version {version} → {detail}",
        o.invoke.node,
        o.invoke.true_us as f64 / 1e6
    )
}

/// A mark's label in the first free row under `top_px`, or none when every row is taken.
fn draw_label(out: &mut String, rows: &mut Rows, label: &str, x: f64, top_px: f64) {
    let w = text_width_px(label, 8.5);
    if let Some(row) = rows.place(x - w / 2.0, w) {
        svg!(
            out,
            "<text class=\"{LABEL_CLASS}\" x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{label}</text>\n",
            top_px + row as f64 * LABEL_ROW_PX
        );
    }
}

/// Local lease checks that refused to write, and restarts.
fn draw_refusals_and_starts(out: &mut String, view: &Ops<'_>) {
    for e in view.events {
        let Some(lane) = view.lane_of.get(e.node.as_str()) else {
            continue;
        };
        let x = view.frame.x(e.true_us);
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
}

/// Storage marks: accepted filled green, rejected hollow, crossed and red.
fn draw_storage_marks(out: &mut String, view: &Ops<'_>) {
    let Some(storage) = view.storage else {
        return;
    };
    let mut rows = Rows::new();
    for e in view.events {
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
        let x = view.frame.x(e.true_us);
        let y = storage.top_px + STORAGE_MARK_Y_PX;
        let (who, token) = match view.invocation(*op_id).map(|i| (&i.node, &i.kind)) {
            Some((node, EventKind::Invoke { token, .. })) => (node.as_str(), Some(*token)),
            _ => ("?", None),
        };
        let verdict = match accepted {
            true => "ACCEPTED".to_string(),
            false => format!("REJECTED ({err})"),
        };
        svg!(
            out,
            "<g class=\"applied\"><title>{}</title>",
            xml_escape(&format!(
                "storage at {:.3} s: {} {key} from {who} with version {version}: {verdict}",
                e.true_us as f64 / 1e6,
                op.as_str(),
            ))
        );
        let mark = match accepted {
            true => Mark {
                op: *op,
                x,
                y,
                outcome: Outcome::Ok,
                fill: Fill::Solid,
                cross: Cross::Plain,
            },
            false => Mark {
                op: *op,
                x,
                y,
                outcome: Outcome::Rejected,
                fill: Fill::Hollow,
                cross: Cross::Crossed,
            },
        };
        draw_mark(out, &mark);
        out.push_str("</g>\n");
        let label = match token {
            Some(t) => format!("{}{t}", &op.as_str()[..1]),
            None => format!("{}?", &op.as_str()[..1]),
        };
        draw_label(
            out,
            &mut rows,
            &label,
            x,
            storage.top_px + STORAGE_LABEL_Y_PX,
        );
    }
}
