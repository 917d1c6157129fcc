//! SVG charts of a run, for `--out DIR` (plotters, no fonts needed: SVG text is
//! rendered by whatever shows the file).
//!
//! - `latency-N<n>.svg` — the latency distribution per transport at one fan-out size,
//!   on a "nines" axis (50 %, 90 %, 99 %, 99.9 %) so that the tail is visible;
//! - `cost.svg` — HTTP requests and bytes on the wire per delivered message, per
//!   transport, at the largest size every transport ran;
//! - `memory.svg` — server memory per connected client against N.
//!
//! Each transport keeps its colour in every chart.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::measure::Row;
use super::report::Results;
use crate::protocol::Transport;

const SIZE: (u32, u32) = (860, 500);
/// The "nines" axis ends at 99.99 %; the maximum is drawn there.
const MAX_NINES: f64 = 4.0;

/// Writes every chart the results have data for; returns the files written.
pub fn write_all(results: &Results, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let mut sizes: Vec<usize> = results.fanout.iter().map(|r| r.subscribers).collect();
    sizes.sort_unstable();
    sizes.dedup();
    for n in sizes {
        let rows: Vec<&Row> = results
            .fanout
            .iter()
            .filter(|r| r.subscribers == n && r.latency.is_some())
            .collect();
        if !rows.is_empty() {
            let path = dir.join(format!("latency-N{n}.svg"));
            latency(&path, n, &rows)?;
            written.push(path);
        }
    }
    if let Some(rows) = widest_common_size(&results.fanout) {
        let path = dir.join("cost.svg");
        cost(&path, &rows)?;
        written.push(path);
    }
    if results.fanout.iter().any(|r| r.server.is_some()) {
        let path = dir.join("memory.svg");
        memory(&path, &results.fanout)?;
        written.push(path);
    }
    Ok(written)
}

fn colour(transport: Transport) -> RGBColor {
    match transport {
        Transport::ShortPoll => RGBColor(0xd9, 0x5f, 0x02),
        Transport::LongPoll => RGBColor(0x75, 0x70, 0xb3),
        Transport::Sse => RGBColor(0x1b, 0x9e, 0x77),
        Transport::Websocket => RGBColor(0xe7, 0x29, 0x8a),
        Transport::Webtransport => RGBColor(0x66, 0xa6, 0x1e),
    }
}

/// `p` percent on the nines axis: 0 → 0, 90 → 1, 99 → 2, 99.9 → 3.
fn nines(p: f64) -> f64 {
    (-(1.0 - p / 100.0).max(1e-4).log10()).min(MAX_NINES)
}

fn latency(path: &Path, n: usize, rows: &[&Row]) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let points = |r: &Row| -> Vec<(f64, f64)> {
        let curve = r.latency.as_ref().map_or(&[][..], |l| &l.curve);
        curve
            .iter()
            .map(|[p, ms]| (nines(*p), ms.max(0.01)))
            .collect()
    };
    let all: Vec<f64> = rows
        .iter()
        .flat_map(|r| points(r))
        .map(|(_, ms)| ms)
        .collect();
    let top = all.iter().copied().fold(1.0, f64::max) * 2.0;
    let bottom = all.iter().copied().fold(top, f64::min) / 2.0;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("Delivery latency, {n} subscribers"),
            ("sans-serif", 22),
        )
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..MAX_NINES, (bottom..top).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("percentile of deliveries")
        .y_desc("publish → receipt, ms")
        .x_labels(5)
        .x_label_formatter(&|x| format!("{}%", 100.0 * (1.0 - 10f64.powf(-x))))
        .draw()?;
    for row in rows {
        let c = colour(row.transport);
        chart
            .draw_series(LineSeries::new(points(row), c.stroke_width(2)))?
            .label(row.transport.title())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
    }
    legend(&mut chart)?;
    root.present()?;
    Ok(())
}

/// The fan-out rows at the largest N that every transport in the run reached.
fn widest_common_size(rows: &[Row]) -> Option<Vec<&Row>> {
    let mut transports: Vec<Transport> = rows.iter().map(|r| r.transport).collect();
    transports.dedup();
    let n = rows
        .iter()
        .map(|r| r.subscribers)
        .filter(|&n| {
            transports
                .iter()
                .all(|&t| rows.iter().any(|r| r.transport == t && r.subscribers == n))
        })
        .max()?;
    Some(
        rows.iter()
            .filter(|r| r.subscribers == n && r.per_delivered().is_some())
            .collect(),
    )
}

fn cost(path: &Path, rows: &[&Row]) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let (n, rate) = rows.first().map_or((0, 0.0), |r| (r.subscribers, r.rate));
    let root = root.titled(
        &format!("Cost per delivered message, {n} subscribers at {rate} msg/s"),
        ("sans-serif", 22),
    )?;
    let panels = root.split_evenly((1, 2));
    let requests: Vec<(Transport, f64)> = rows
        .iter()
        .filter_map(|r| Some((r.transport, r.per_delivered()?.0)))
        .collect();
    let bytes: Vec<(Transport, f64)> = rows
        .iter()
        .filter_map(|r| Some((r.transport, r.per_delivered()?.1)))
        .collect();
    bars(&panels[0], "HTTP requests", &requests)?;
    bars(&panels[1], "bytes on the wire", &bytes)?;
    root.present()?;
    Ok(())
}

fn bars(
    area: &DrawingArea<SVGBackend, Shift>,
    what: &str,
    values: &[(Transport, f64)],
) -> anyhow::Result<()> {
    let top = values.iter().map(|(_, v)| *v).fold(0.0, f64::max).max(1.0) * 1.15;
    let names: Vec<&str> = values.iter().map(|(t, _)| Transport::title(*t)).collect();
    let mut chart = ChartBuilder::on(area)
        .caption(what, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d((0..values.len() as i32 - 1).into_segmented(), 0.0..top)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_label_formatter(&|x| match x {
            SegmentValue::CenterOf(i) => names
                .get(*i as usize)
                .map_or(String::new(), |s| s.to_string()),
            _ => String::new(),
        })
        .draw()?;
    for (i, (transport, value)) in values.iter().enumerate() {
        let i = i as i32;
        let mut bar = Rectangle::new(
            [
                (SegmentValue::Exact(i), 0.0),
                (SegmentValue::Exact(i + 1), *value),
            ],
            colour(*transport).filled(),
        );
        bar.set_margin(0, 0, 6, 6);
        chart.draw_series(std::iter::once(bar))?;
        let label = ("sans-serif", 14)
            .into_font()
            .into_text_style(area)
            .pos(Pos::new(HPos::Center, VPos::Bottom));
        chart.draw_series(std::iter::once(Text::new(
            format!("{value:.2}"),
            (SegmentValue::CenterOf(i), *value),
            label,
        )))?;
    }
    Ok(())
}

fn memory(path: &Path, rows: &[Row]) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let kib = |r: &Row| {
        r.server
            .as_ref()
            .map(|s| (s.rss_per_client / 1024.0).max(0.01))
    };
    let max_n = rows.iter().map(|r| r.subscribers).max().unwrap_or(10) as f64;
    let top = rows.iter().filter_map(kib).fold(1.0, f64::max);
    let mut chart = ChartBuilder::on(&root)
        .caption("Server memory per connected client", ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(64)
        .build_cartesian_2d(
            (5.0..max_n * 2.0).log_scale(),
            (0.01..top * 2.0).log_scale(),
        )?;
    chart
        .configure_mesh()
        .x_desc("connected clients (N)")
        .y_desc("RSS growth / client, KiB")
        .draw()?;
    for transport in Transport::ALL {
        let mut points: Vec<(f64, f64)> = rows
            .iter()
            .filter(|r| r.transport == transport)
            .filter_map(|r| Some((r.subscribers as f64, kib(r)?)))
            .collect();
        if points.is_empty() {
            continue;
        }
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        let c = colour(transport);
        chart
            .draw_series(LineSeries::new(points.clone(), c.stroke_width(2)))?
            .label(transport.title())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
        chart.draw_series(points.into_iter().map(|p| Circle::new(p, 3, c.filled())))?;
    }
    legend(&mut chart)?;
    root.present()?;
    Ok(())
}

fn legend<'a, X: Ranged, Y: Ranged>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
) -> anyhow::Result<()> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nines_axis_spreads_the_tail() {
        assert_eq!(nines(0.0), 0.0);
        assert!((nines(90.0) - 1.0).abs() < 1e-9);
        assert!((nines(99.0) - 2.0).abs() < 1e-9);
        assert!((nines(99.9) - 3.0).abs() < 1e-9);
        assert_eq!(nines(100.0), MAX_NINES);
    }
}
