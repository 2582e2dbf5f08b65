//! `sweep --vary`: one parameter (a rate plot) or two (the atlas' heatmaps).

use super::{csv_row, sweep_one, write_file, CSV_HEADER};
use fencelab::atlas;
use fencelab::ms::MsRange;
use fencelab::scenario::Scenario;
use fencelab::storage::Fencing;
use std::fmt::Write;
use std::path::Path;

/// Two parameters at once: the atlas' CSV on stdout, one heatmap per policy.
#[allow(clippy::too_many_arguments)]
pub(super) fn atlas_sweep(
    out: &mut String,
    scenario: &Scenario,
    policies: &[Fencing],
    range: std::ops::Range<u64>,
    jobs: usize,
    axes: atlas::Axes,
    steps: u32,
    plot: &Path,
) -> Result<(), String> {
    let maps = atlas::run(scenario, axes, steps, policies, range.clone(), jobs)?;
    let (f, k) = (axes.fault, axes.knob);
    let _ = writeln!(out, "{},{},{CSV_HEADER}", f.name(), k.name());
    for (_, cells) in &maps {
        for c in cells {
            let _ = writeln!(out, "{},{},{}", c.fault, c.knob, csv_row(&c.summary));
        }
    }
    let (xs, ys) = (f.values(steps), k.values(steps));
    let line: Option<(&str, Vec<(f64, f64)>)> = atlas::line(scenario, axes, steps)
        .map(|(name, l)| (name, l.into_iter().map(|(ttl_s, ms)| (ms, ttl_s)).collect()));
    let stem = plot.with_extension("");
    for (fencing, cells) in &maps {
        let rate = |ix: usize, iy: usize| {
            cells
                .iter()
                .find(|c| c.fault == xs[ix] && c.knob == ys[iy])
                .map_or(f64::NAN, |c| c.summary.rate)
        };
        let title = format!(
            "fencing={fencing}: violation rate, {} seeds per cell",
            range.end - range.start
        );
        let svg = fencelab::heatmap::heatmap(
            &title,
            f.label(),
            k.label(),
            &xs,
            &ys,
            rate,
            line.as_ref().map(|(name, l)| (*name, l.as_slice())),
        );
        let path = std::path::PathBuf::from(format!("{}-{fencing}.svg", stem.display()));
        write_file(&path, &svg)?;
        eprintln!("atlas written to {}", path.display());
    }
    Ok(())
}

/// The scenario of one step of `--vary`, and the x value it stands for.
fn vary_step(
    base: &Scenario,
    param: &str,
    step: u32,
    steps: u32,
) -> Result<(f64, Scenario), String> {
    use fencelab::nemesis::NemesisConfig;
    let f = if steps <= 1 {
        1.0
    } else {
        step as f64 / (steps - 1) as f64
    };
    let ttl_ms = base.ttl_s as f64 * 1000.0;
    let mut s = base.clone();
    match param {
        // Pause length over TTL, 0.25 to 2.5: timed and aimed GC pauses only.
        "pause-ttl" => {
            let x = 0.25 + f * 2.25;
            let ms = (x * ttl_ms).round() as u64;
            s.nemesis = NemesisConfig {
                pause_ms: MsRange::exactly(ms),
                ..NemesisConfig::pauses()
            };
            Ok((x, s))
        }
        // Clock drift bound, 0 to 10%, with keepalives cut by partitions, judged by a
        // client-side lease check (without it, drift alone cannot matter).
        "drift" => {
            let x = (f * 100_000.0).round();
            s.lease_check_margin_ms = s
                .lease_check_margin_ms
                .or(Some(fencelab::scenario::LOCAL_CHECK_MARGIN_MS));
            s.nemesis = NemesisConfig {
                drift_ppm_max: x as i64,
                steps_max: 0,
                ..NemesisConfig::skew()
            };
            Ok((x, s))
        }
        // Delay of held storage requests, 0 to 3 TTL.
        "delay" => {
            let x = (f * 3.0 * ttl_ms).round();
            s.nemesis = NemesisConfig {
                enabled: true,
                holds_max: 2,
                hold_ms: MsRange::exactly(x as u64),
                ..NemesisConfig::none()
            };
            Ok((x, s))
        }
        other => Err(format!(
            "--vary {other}: expected pause-ttl, drift or delay"
        )),
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) fn vary_sweep(
    out: &mut String,
    scenario: &Scenario,
    policies: &[Fencing],
    range: std::ops::Range<u64>,
    jobs: usize,
    param: &str,
    steps: u32,
    plot: &Path,
) -> Result<(), String> {
    if !(1..=100).contains(&steps) {
        return Err(format!("--steps {steps} is outside 1..=100"));
    }
    let x_label = match param {
        "pause-ttl" => "pause length / lease TTL",
        "drift" => "clock drift bound (ppm)",
        "delay" => "request delay in the network (ms)",
        other => {
            return Err(format!(
                "--vary {other}: expected pause-ttl, drift or delay"
            ))
        }
    };
    let mut series: Vec<fencelab::plot::Series> =
        policies.iter().map(|p| (p.to_string(), vec![])).collect();
    let _ = writeln!(out, "param,x,{CSV_HEADER}");
    for step in 0..steps {
        let (x, s) = vary_step(scenario, param, step, steps)?;
        // Printed values stay short: 1.6, not 1.5999999999999999.
        let x = (x * 1e6).round() / 1e6;
        s.validate()?;
        for (i, &fencing) in policies.iter().enumerate() {
            let summary = sweep_one(&s, fencing, range.clone(), jobs);
            let _ = writeln!(out, "{param},{x},{}", csv_row(&summary));
            series[i]
                .1
                .push((x, summary.rate, summary.rate_low, summary.rate_high));
        }
    }
    let title = format!(
        "violation rate vs {x_label} ({} seeds/point)",
        range.end - range.start
    );
    write_file(plot, &fencelab::plot::rate_plot(&title, x_label, &series))?;
    eprintln!("plot written to {}", plot.display());
    Ok(())
}
