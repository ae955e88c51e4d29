//! The latency CDF of `tideflow bench compare --plot`: one line per mode, as SVG.

use std::path::Path;

use hdrhistogram::Histogram;
use plotters::prelude::*;

use tideflow::Error;

/// Writes the cumulative distribution of each `(mode, histogram of µs)` to `path` as SVG: x is
/// the latency in ms on a log scale, y the fraction of samples at or below it. Empty
/// histograms are left out.
pub(crate) fn write_cdf(
    path: &Path,
    title: &str,
    runs: &[(String, &Histogram<u64>)],
) -> Result<(), Error> {
    let runs: Vec<(&str, Vec<(f64, f64)>)> = runs
        .iter()
        .filter(|(_, histogram)| !histogram.is_empty())
        .map(|(mode, histogram)| (mode.as_str(), cdf_points(histogram)))
        .collect();
    let mut svg = String::new();
    draw(&mut svg, title, &runs)
        .map_err(|e| Error::Internal(format!("cannot draw the plot {}: {e}", path.display())))?;
    std::fs::write(path, svg)
        .map_err(|e| Error::io(format!("writing the plot {}", path.display()), e))
}

/// The steps of a histogram's CDF: `(latency ms, fraction at or below it)`.
fn cdf_points(histogram: &Histogram<u64>) -> Vec<(f64, f64)> {
    let mut points = Vec::new();
    let mut below = 0.0;
    for step in histogram.iter_recorded() {
        let ms = (step.value_iterated_to() as f64 / 1_000.0).max(0.001);
        points.push((ms, below));
        below = step.quantile();
        points.push((ms, below));
    }
    points
}

fn draw(
    svg: &mut String,
    title: &str,
    runs: &[(&str, Vec<(f64, f64)>)],
) -> Result<(), Box<dyn std::error::Error>> {
    let xs = || {
        runs.iter()
            .flat_map(|(_, points)| points.iter().map(|p| p.0))
    };
    let low = xs().fold(f64::INFINITY, f64::min);
    let high = xs().fold(0.0, f64::max);
    let (low, high) = if low.is_finite() && high > 0.0 {
        (low / 1.5, high * 1.5)
    } else {
        (0.01, 1_000.0)
    };
    let root = SVGBackend::with_string(svg, (900, 540)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(56)
        .build_cartesian_2d((low..high).log_scale(), 0.0..1.0)?;
    chart
        .configure_mesh()
        .x_desc("latency (ms, log scale)")
        .y_desc("fraction of samples at or below")
        .x_label_formatter(&|ms| format!("{ms}"))
        .draw()?;
    for (index, (mode, points)) in runs.iter().enumerate() {
        let color = Palette99::pick(index).to_rgba();
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))?
            .label(*mode)
            .legend(move |(x, y)| Rectangle::new([(x, y - 4), (x + 18, y + 4)], color.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
