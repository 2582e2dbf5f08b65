//! The side-by-side table of the Redis figures ("model against real"), Markdown that reads
//! aligned as plain text too.

use super::super::table::aligned;
use super::*;

type Row = (String, Vec<String>);
/// A row's name and how to show its cell from one column's figure.
type Line<'a, T> = (&'a str, &'a dyn Fn(&T) -> String);

fn spread_cell(s: &Spread) -> String {
    format!("{:.1} / {:.1} / {:.1}", s.min_ms, s.median_ms, s.max_ms)
}

fn cell<T>(v: Option<&T>, show: impl Fn(&T) -> String) -> String {
    v.map_or_else(|| "—".into(), show)
}

fn holder(h: &Option<String>) -> String {
    h.as_deref().map_or("(nil)".into(), |v| format!("\"{v}\""))
}

/// The rows of one figure group: a name, and each column's cell.
fn rows_for<T>(
    rows: &mut Vec<Row>,
    columns: &[(&str, &RedisFigures)],
    get: impl Fn(&RedisFigures) -> Option<&T>,
    lines: &[Line<'_, T>],
) {
    for (name, show) in lines {
        let cells = columns.iter().map(|(_, f)| cell(get(f), show)).collect();
        rows.push((name.to_string(), cells));
    }
}

fn ttl_rows(rows: &mut Vec<Row>, columns: &[(&str, &RedisFigures)]) {
    rows_for(
        rows,
        columns,
        |f| f.ttl_precision.as_ref(),
        &[
            (
                "PX 2000, polled every 1 ms: PTTL -2 after the SET's reply, min / median / max ms",
                &|t: &TtlPrecision| spread_cell(&t.gone.after_reply),
            ),
            (
                "PX 2000: a second client's SET NX wins after the SET's reply, min / median / max ms",
                &|t: &TtlPrecision| spread_cell(&t.second_client_wins.after_reply),
            ),
            (
                "PX 2000, PTTL: the key's expiry after its SET ran (estimated), min / median / max ms",
                &|t: &TtlPrecision| cell(expiry_after_set(&t.gone).as_ref(), spread_cell),
            ),
            (
                "PX 2000, SET NX: the key's expiry after its SET ran (estimated), min / median / max ms",
                &|t: &TtlPrecision| {
                    cell(expiry_after_set(&t.second_client_wins).as_ref(), spread_cell)
                },
            ),
            ("SET NX PX round trip, median ms", &|t: &TtlPrecision| {
                format!("{:.3}", t.gone.set_round_trip.median_ms)
            }),
        ],
    );
}

fn stall_rows(rows: &mut Vec<Row>, columns: &[(&str, &RedisFigures)]) {
    rows_for(
        rows,
        columns,
        |f| f.sigstop.as_ref(),
        &[(
            "stalled 3 s with a PX 2000 key: SET NX queued in the stall; its reply after the resume",
            &|s: &Sigstop| {
                format!(
                    "{} after {:.1} ms; GET {}; old unlock {}",
                    if s.queued_set_nx_won { "won" } else { "lost" },
                    s.cont_to_reply_ms,
                    holder(&s.holder_after_resume),
                    if s.first_unlock_deleted { "deleted" } else { "refused" },
                )
            },
        )],
    );
}

fn step_rows(rows: &mut Vec<Row>, columns: &[(&str, &RedisFigures)]) {
    rows_for(
        rows,
        columns,
        |f| f.wall_steps.as_ref(),
        &[
            ("wall +5000 ms, then back to 0: PTTL drop / rise, ms", &|w: &WallSteps| {
                format!("{:.1} / {:.1}", w.forward.pttl_drop_ms, w.forward.pttl_rise_back_ms)
            }),
            (
                "wall +11000 ms on a PX 10000 key: PTTL; second client's SET NX; back to 0: its PTTL",
                &|w: &WallSteps| {
                    let f = &w.forward;
                    format!(
                        "{}; {}; {} ms",
                        f.pttl_after_jump,
                        if f.second_client_won { "won" } else { "lost" },
                        f.second_key_pttl_after_back_ms
                    )
                },
            ),
            (
                "wall -5000 ms after a PX 1000 SET: PTTL 1100 ms after; gone after the SET's reply",
                &|w: &WallSteps| {
                    let b = &w.backward;
                    format!("{} ms; {:.1} ms", b.pttl_past_deadline_ms, b.gone_after_reply_ms)
                },
            ),
        ],
    );
}

fn restart_rows(rows: &mut Vec<Row>, columns: &[(&str, &RedisFigures)]) {
    for (mode, px_ms, down_ms) in RESTART_TRIALS {
        let name = format!(
            "killed and restarted, {}, PX {px_ms}, down {down_ms} ms: key; PTTL after",
            mode.as_str()
        );
        let cells = columns
            .iter()
            .map(|(_, f)| {
                let t = f.restarts.as_ref().and_then(|ts| {
                    ts.iter()
                        .find(|t| (t.mode, t.px_ms, t.down_planned_ms) == (mode, px_ms, down_ms))
                });
                cell(t, |t| {
                    format!(
                        "{}; {}",
                        if t.kept { "kept" } else { "lost" },
                        t.pttl_after_restart_ms
                    )
                })
            })
            .collect();
        rows.push((name, cells));
    }
    // What the client said while the server was down: the client library's classification
    // (not a rule of Redis), shown for the first trial.
    let cells = columns
        .iter()
        .map(|(_, f)| {
            let first = f.restarts.as_ref().and_then(|ts| ts.first());
            cell(first, |t| t.after_kill.join(", "))
        })
        .collect();
    rows.push((
        "killed: what two GETs answered while the server was down (client's classification)".into(),
        cells,
    ));
}

/// The figures of several columns (the model, a real Redis) side by side, one row per
/// figure, then every column's probe errors.
pub fn redis_table(columns: &[(&str, &RedisFigures)]) -> String {
    let mut rows = Vec::new();
    ttl_rows(&mut rows, columns);
    stall_rows(&mut rows, columns);
    step_rows(&mut rows, columns);
    restart_rows(&mut rows, columns);
    let names: Vec<&str> = columns.iter().map(|(n, _)| *n).collect();
    let mut out = aligned(&names, &rows);
    for (n, f) in columns {
        for (probe, e) in &f.errors {
            out.push_str(&format!("{n}: {probe}: {e}\n"));
        }
    }
    out
}
