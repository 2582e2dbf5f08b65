//! The cluster figures of several clusters side by side as a markdown table.

use super::*;

fn cell_lease(l: &LeaseThroughStall) -> String {
    let answers: Vec<String> = l
        .answers_after_resume
        .iter()
        .map(|a| a.to_string())
        .collect();
    format!(
        "{} (answers after resume {}; {} failed)",
        word(l.kept),
        if answers.is_empty() {
            "none".to_string()
        } else {
            answers.join(",")
        },
        l.failed
    )
}

fn cell_failover(k: Option<&KeepaliveFailover>) -> String {
    k.map_or_else(
        || "—".to_string(),
        |k| {
            let first = k
                .first_answer_ms
                .map_or_else(|| "none".to_string(), |v| format!("{v} ms"));
            format!(
                "{}; first keepalive answered after the stall's start: {first}",
                cell_lease(&k.lease)
            )
        },
    )
}

/// The cluster figures of several clusters side by side as a markdown table, one column each,
/// then every probe's error.
pub fn cluster_table(columns: &[(&str, &ClusterFigures)]) -> String {
    let none = || "—".to_string();
    type Row<'a> = (&'a str, Box<dyn Fn(&ClusterFigures) -> String + 'a>);
    let rows: Vec<Row> = vec![
        (
            "write through a follower after the leader stalled 5 s: min / median / max ms",
            Box::new(move |f| {
                f.failover.as_ref().map_or_else(none, |v| {
                    format!("{} / {} / {}", v.min_ms, v.median_ms, v.max_ms)
                })
            }),
        ),
        (
            "the same, every trial (ms)",
            Box::new(move |f| {
                f.failover.as_ref().map_or_else(none, |v| {
                    let s: Vec<String> = v.samples_ms.iter().map(|s| s.to_string()).collect();
                    s.join(", ")
                })
            }),
        ),
        (
            "lease TTL 2 s kept alive through a follower, leader stalled 5 s",
            Box::new(move |f| f.lease_leader_paused.as_ref().map_or_else(none, cell_lease)),
        ),
        (
            "lease TTL 2 s kept alive through one member, every member stalled 5 s",
            Box::new(move |f| f.lease_all_paused.as_ref().map_or_else(none, cell_lease)),
        ),
        (
            "lease TTL 2 s kept alive through a failover client pinned to a follower stalled 5 s, keepalives bounded by 1 s",
            Box::new(move |f| cell_failover(f.keepalive_failover.as_ref())),
        ),
        (
            "the same, keepalives bounded by 500 ms",
            Box::new(move |f| cell_failover(f.keepalive_failover_short.as_ref())),
        ),
    ];
    let mut out = String::from("| probe |");
    for (name, _) in columns {
        out.push_str(&format!(" {name} |"));
    }
    out.push_str("\n|---|");
    for _ in columns {
        out.push_str("---|");
    }
    out.push('\n');
    for (name, cell) in &rows {
        out.push_str(&format!("| {name} |"));
        for (_, f) in columns {
            out.push_str(&format!(" {} |", cell(f)));
        }
        out.push('\n');
    }
    for (n, f) in columns {
        for (probe, e) in &f.errors {
            out.push_str(&format!("\n{n}: {probe}: {e}"));
        }
    }
    out
}
