//! The side-by-side table of every column's figures.

use super::*;

pub(super) fn cell_gone(f: &Figures, ttl_s: i64) -> String {
    match f.lease_gone.iter().find(|g| g.ttl_s == ttl_s) {
        Some(g) => format!("{} / {} / {}", g.min_ms, g.median_ms, g.max_ms),
        None => "—".into(),
    }
}

pub(super) fn cell_stall(f: &Figures, stall_ms: u64) -> String {
    match f.stalled.iter().find(|s| s.stall_ms == stall_ms) {
        Some(s) => {
            let answers: Vec<String> = s
                .answers_after_resume
                .iter()
                .map(|a| a.to_string())
                .collect();
            let failed = match s.failed {
                0 => String::new(),
                n => format!("; {n} failed"),
            };
            format!(
                "{} (answers {}{failed})",
                if s.gone_after_resume { "gone" } else { "kept" },
                answers.join(","),
            )
        }
        None => "—".into(),
    }
}

pub(super) fn cell<T>(v: &Option<T>, show: impl Fn(&T) -> String) -> String {
    v.as_ref().map_or_else(|| "—".into(), show)
}

/// The figures of several etcds side by side, one column each, then every probe's error.
pub fn table(columns: &[(&str, &Figures)]) -> String {
    let rows = figure_rows(columns);
    let names: Vec<&str> = columns.iter().map(|(n, _)| *n).collect();
    let mut out = aligned(&names, &rows);
    for (n, f) in columns {
        for (probe, e) in &f.errors {
            out.push_str(&format!("{n}: {probe}: {e}\n"));
        }
    }
    out
}

/// One row per figure: its name, and its cell in each column.
fn figure_rows(columns: &[(&str, &Figures)]) -> Vec<(String, Vec<String>)> {
    let mut rows: Vec<(String, Vec<String>)> = Vec::new();
    let mut row = |name: String, f: &dyn Fn(&Figures) -> String| {
        rows.push((name, columns.iter().map(|(_, c)| f(c)).collect()));
    };
    for ttl_s in GONE_TTLS_S {
        row(
            format!("lease gone after last keepalive, TTL {ttl_s} s: min / median / max ms"),
            &|f| cell_gone(f, ttl_s),
        );
    }
    for stall_ms in STALLS_MS {
        row(
            format!(
                "etcd stalled {} s, keepalives every TTL/3 (TTL {STALL_TTL_S} s)",
                stall_ms as f64 / 1000.0
            ),
            &|f| cell_stall(f, stall_ms),
        );
    }
    row("keepalive, unknown lease".into(), &|f| {
        cell(&f.keepalive_unknown_lease, |v| v.to_string())
    });
    row("keepalive after expiry".into(), &|f| {
        cell(&f.keepalive_after_expiry, |v| v.to_string())
    });
    row(
        "keepalive 20 ms past the deadline: answers; latency min / median / max ms".into(),
        &|f| {
            cell(&f.keepalive_past_deadline, |p| {
                let mut a = p.answers.clone();
                a.dedup();
                let a: Vec<String> = a.iter().map(|v| v.to_string()).collect();
                format!(
                    "{}; {} / {} / {}",
                    a.join(","),
                    p.min_ms,
                    p.median_ms,
                    p.max_ms
                )
            })
        },
    );
    row("grant TTL 1 s answers TTL".into(), &|f| {
        cell(&f.granted_ttl_for_1, |v| v.to_string())
    });
    let tokens = |t: &Tokens| {
        format!(
            "{:?}{}{}",
            t.tokens,
            if t.rise { " rise" } else { " DO NOT rise" },
            if t.waited { "" } else { " (no wait)" }
        )
    };
    row("campaign tokens (create revisions)".into(), &|f| {
        cell(&f.campaign_tokens, tokens)
    });
    row("Lock API tokens (create revisions)".into(), &|f| {
        cell(&f.lock_tokens, tokens)
    });
    row("Lock API after a wait whose lease expired".into(), &|f| {
        cell(&f.lock_after_expired_wait, |l| l.answer.short())
    });
    rows
}

/// The rows as a Markdown table under a header of the column names, every column padded to
/// its widest cell so that it reads aligned as plain text too.
pub(super) fn aligned(names: &[&str], rows: &[(String, Vec<String>)]) -> String {
    let first = rows
        .iter()
        .map(|(n, _)| n.chars().count())
        .max()
        .unwrap_or(0);
    let widths: Vec<usize> = (0..names.len())
        .map(|i| {
            rows.iter()
                .map(|(_, cells)| cells[i].chars().count())
                .chain([names[i].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let pad = |s: &str, w: usize| format!("{s}{}", " ".repeat(w.saturating_sub(s.chars().count())));
    let mut out = String::new();
    let mut line = |name: &str, cells: Vec<&str>| {
        let mut l = format!("| {} ", pad(name, first));
        for (c, w) in cells.iter().zip(&widths) {
            l.push_str(&format!("| {} ", pad(c, *w)));
        }
        out.push_str(&l);
        out.push_str("|\n");
    };
    line("probe", names.to_vec());
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    line(
        &"-".repeat(first),
        rule.iter().map(|s| s.as_str()).collect(),
    );
    for (name, cells) in rows {
        line(name, cells.iter().map(|s| s.as_str()).collect());
    }
    out
}
