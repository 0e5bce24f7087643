//! The self-contained HTML report: summary tables and charts (throughput, latency percentiles
//! over time, errors by kind, connections, server memory) drawn by plotters' SVG backend and
//! embedded inline. No scripts, no external files.

use std::fmt::Write;

use plotters::prelude::*;

use crate::report::Report;

const W: u32 = 1000;
const H: u32 = 320;

pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    /// Dashed: a reference (what was asked for) under a solid measured line.
    pub dashed: bool,
}

fn series(label: &str, points: Vec<(f64, f64)>) -> Series {
    Series {
        label: label.to_string(),
        points,
        dashed: false,
    }
}

fn dashed(label: &str, points: Vec<(f64, f64)>) -> Series {
    Series {
        dashed: true,
        ..series(label, points)
    }
}

/// A line chart of `series` over the run's seconds, as an SVG document. With `log`, the y axis
/// is logarithmic (latencies span orders of magnitude); points at or below zero are left out.
pub fn line_chart(title: &str, y_desc: &str, x_max: f64, series: &[Series], log: bool) -> String {
    let mut svg = String::new();
    let drawn = draw(&mut svg, title, y_desc, x_max, series, log);
    if let Err(e) = drawn {
        return format!(
            "<p>chart {title:?} could not be drawn: {}</p>",
            esc(&e.to_string())
        );
    }
    svg
}

fn draw(
    svg: &mut String,
    title: &str,
    y_desc: &str,
    x_max: f64,
    series: &[Series],
    log: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::with_string(svg, (W, H)).into_drawing_area();
    root.fill(&WHITE)?;
    let x_max = x_max.max(1.0);
    let ys = series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
    let y_max = ys.clone().fold(0.0, f64::max);
    let empty = series.iter().all(|s| s.points.is_empty());
    let caption = if empty {
        format!("{title} (nothing recorded)")
    } else {
        title.to_string()
    };
    let mut b = ChartBuilder::on(&root);
    b.caption(caption, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(70);
    let label = |s: &Series, i: usize| (s.label.clone(), Palette99::pick(i).to_rgba());
    if log {
        let y_min = ys.filter(|y| *y > 0.0).fold(f64::MAX, f64::min);
        let (lo, hi) = if y_min == f64::MAX {
            (0.01, 10.0)
        } else {
            (y_min / 2.0, y_max * 2.0)
        };
        let mut c = b.build_cartesian_2d(0f64..x_max, (lo..hi).log_scale())?;
        c.configure_mesh()
            .x_desc("seconds")
            .y_desc(y_desc)
            .y_label_formatter(&log_label)
            .draw()?;
        for (i, s) in series.iter().enumerate() {
            let (name, color) = label(s, i);
            let pts = s.points.iter().copied().filter(|p| p.1 > 0.0);
            c.draw_series(LineSeries::new(pts, color.stroke_width(2)))?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
        legend(&mut c, series)?;
    } else {
        let mut c = b.build_cartesian_2d(0f64..x_max, 0f64..(y_max * 1.15).max(1.0))?;
        c.configure_mesh().x_desc("seconds").y_desc(y_desc).draw()?;
        for (i, s) in series.iter().enumerate() {
            let (name, color) = label(s, i);
            c.draw_series(LineSeries::new(
                s.points.iter().copied(),
                color.stroke_width(2),
            ))?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        }
        legend(&mut c, series)?;
    }
    root.present()?;
    Ok(())
}

/// Log-axis labels only at 1, 2 and 5 times a power of ten: the others crowd each other.
fn log_label(v: &f64) -> String {
    if *v <= 0.0 {
        return String::new();
    }
    let mantissa = v / 10f64.powf(v.log10().floor());
    let nice = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .any(|m| (mantissa - m).abs() < 0.05);
    if !nice {
        String::new()
    } else if *v >= 1.0 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

fn legend<'a, DB: DrawingBackend + 'a, CT: plotters::coord::CoordTranslate>(
    c: &mut ChartContext<'a, DB, CT>,
    series: &[Series],
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    if series.is_empty() {
        return Ok(());
    }
    c.configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .label_font(("sans-serif", 14))
        .draw()
}

pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The report's charts, in order: (title, svg).
pub fn charts(r: &Report) -> Vec<(String, String)> {
    let tl = &r.timeline;
    let x_max = tl.last().map(|s| s.t as f64 + 1.0).unwrap_or(1.0);
    // A second's values are drawn at its middle.
    let per = |f: &dyn Fn(&crate::recorder::Second) -> f64| -> Vec<(f64, f64)> {
        tl.iter().map(|s| (s.t as f64 + 0.5, f(s))).collect()
    };
    let with_latency = |f: &dyn Fn(&crate::recorder::Latency) -> f64| -> Vec<(f64, f64)> {
        tl.iter()
            .filter(|s| s.latency.count > 0)
            .map(|s| (s.t as f64 + 0.5, f(&s.latency)))
            .collect()
    };
    let mut out = Vec::new();
    let throughput = [
        dashed("sent/s", per(&|s| s.sent as f64)),
        series("ok/s", per(&|s| s.ok as f64)),
        series("errors/s", per(&|s| s.errors as f64)),
    ];
    out.push((
        "Throughput".to_string(),
        line_chart(
            "Throughput",
            "messages per second",
            x_max,
            &throughput,
            false,
        ),
    ));
    let latency = [
        series("p50", with_latency(&|l| l.p50_ms)),
        series("p90", with_latency(&|l| l.p90_ms)),
        series("p99", with_latency(&|l| l.p99_ms)),
        series("p99.9", with_latency(&|l| l.p999_ms)),
        series("max", with_latency(&|l| l.max_ms)),
    ];
    out.push((
        "Latency".to_string(),
        line_chart(
            "Latency percentiles per second (from scheduled send time)",
            "milliseconds (log)",
            x_max,
            &latency,
            true,
        ),
    ));
    let errors: Vec<Series> = r
        .totals
        .errors_by_kind
        .keys()
        .map(|k| {
            series(
                k,
                per(&|s| s.errors_by_kind.get(k).copied().unwrap_or(0) as f64),
            )
        })
        .collect();
    out.push((
        "Errors".to_string(),
        line_chart("Errors by kind", "errors per second", x_max, &errors, false),
    ));
    let mut conns = vec![
        dashed("target clients", per(&|s| s.target_clients as f64)),
        series("connected clients", per(&|s| s.connections as f64)),
    ];
    for u in &r.setup.metrics_urls {
        let pts = r
            .scrapes
            .iter()
            .filter(|s| &s.url == u)
            .filter_map(|s| Some((s.t, s.sessions_active?)))
            .collect::<Vec<_>>();
        if !pts.is_empty() {
            conns.push(series(&format!("sessions on {u}"), pts));
        }
    }
    out.push((
        "Connections".to_string(),
        line_chart("Connections and sessions", "count", x_max, &conns, false),
    ));
    let memory: Vec<Series> = r
        .setup
        .metrics_urls
        .iter()
        .map(|u| {
            let pts = r
                .scrapes
                .iter()
                .filter(|s| &s.url == u)
                .filter_map(|s| Some((s.t, s.rss_bytes? / 1_048_576.0)))
                .collect();
            series(&format!("RSS {u}"), pts)
        })
        .collect();
    out.push((
        "Server memory".to_string(),
        line_chart("Server memory (resident set)", "MiB", x_max, &memory, false),
    ));
    out
}

fn row(out: &mut String, cells: &[String]) {
    out.push_str("<tr>");
    for c in cells {
        let _ = write!(out, "<td>{c}</td>");
    }
    out.push_str("</tr>\n");
}

fn head(out: &mut String, cells: &[&str]) {
    out.push_str("<tr>");
    for c in cells {
        let _ = write!(out, "<th>{c}</th>");
    }
    out.push_str("</tr>\n");
}

fn f(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

fn opt_mib(v: Option<f64>) -> String {
    v.map(|b| format!("{:.1}", b / 1_048_576.0))
        .unwrap_or_else(|| "–".into())
}

fn count(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.0}")).unwrap_or_else(|| "–".into())
}

fn opt(v: Option<f64>, unit: &str) -> String {
    v.map(|x| format!("{}{unit}", f(x)))
        .unwrap_or_else(|| "–".into())
}

const STYLE: &str = "body{font-family:sans-serif;max-width:1040px;margin:24px auto;color:#222}\
h1{font-size:24px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd}\
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}\
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}.ok{color:#070}.bad{color:#b00;font-weight:bold}\
.chart{margin:12px 0}code{background:#f3f3f3;padding:1px 4px}";

pub fn render(r: &Report) -> String {
    let mut h = String::new();
    let p = &r.plan.profile;
    let t = &r.totals;
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>erlmcp-load: {sc}</title><style>{STYLE}</style></head><body>\n\
         <h1>erlmcp-load report: {sc}</h1>\n<p>Profile <code>{pn}</code>: {cl} clients × {rate} msg/s × {sz} B; family <code>{fam}</code> \
         (protocol {ver}); transports {tr}; {el:.1} s elapsed. Latency is measured from each request's scheduled send time (open loop).</p>\n",
        sc = esc(&r.scenario),
        pn = esc(&p.name),
        cl = p.clients,
        rate = p.rate_per_client,
        sz = p.message_bytes,
        fam = esc(&r.setup.family),
        ver = esc(&r.setup.protocol_version),
        tr = esc(&r.setup.transports.join(", ")),
        el = r.elapsed_s,
    );
    let verdict = if t.errors == 0 {
        "<span class=\"ok\">no errors</span>".to_string()
    } else {
        format!(
            "<span class=\"bad\">{} errors ({:.3} %)</span>",
            t.errors,
            t.error_rate * 100.0
        )
    };
    h.push_str("<h2>Summary</h2>\n<table>\n");
    head(&mut h, &["", "value"]);
    for (k, v) in [
        ("targets", esc(&r.setup.urls.join(", "))),
        ("sent", t.sent.to_string()),
        ("answered correctly", t.ok.to_string()),
        ("errors", verdict),
        ("throughput (ok/s over the run)", f(t.throughput_per_s)),
        ("offered at peak (msg/s)", f(t.offered_peak_per_s)),
        ("peak connected clients", t.peak_connections.to_string()),
        (
            "connections made / failed",
            format!("{} / {}", t.connects_ok, t.connect_errors),
        ),
        ("SSE events", t.sse_events.to_string()),
    ] {
        row(&mut h, &[k.to_string(), v]);
    }
    h.push_str("</table>\n<h2>Latency (ms)</h2>\n<table>\n");
    head(
        &mut h,
        &[
            "phase", "from s", "to s", "ok", "errors", "ok/s", "p50", "p90", "p99", "p99.9", "max",
        ],
    );
    let lat_cells = |name: String,
                     from: String,
                     to: String,
                     ok: u64,
                     err: u64,
                     tput: f64,
                     l: &crate::recorder::Latency| {
        vec![
            name,
            from,
            to,
            ok.to_string(),
            err.to_string(),
            f(tput),
            f(l.p50_ms),
            f(l.p90_ms),
            f(l.p99_ms),
            f(l.p999_ms),
            f(l.max_ms),
        ]
    };
    for ph in &r.phases {
        row(
            &mut h,
            &lat_cells(
                esc(&ph.name),
                f(ph.start_s),
                f(ph.end_s),
                ph.ok,
                ph.errors,
                ph.throughput_per_s,
                &ph.latency,
            ),
        );
    }
    row(
        &mut h,
        &lat_cells(
            "<b>overall</b>".into(),
            "0".into(),
            f(r.elapsed_s),
            t.ok,
            t.errors,
            t.throughput_per_s,
            &r.latency,
        ),
    );
    h.push_str("</table>\n");
    if !t.errors_by_kind.is_empty() {
        h.push_str("<h2>Errors by kind</h2>\n<table>\n");
        head(&mut h, &["kind", "count"]);
        for (k, v) in &t.errors_by_kind {
            row(&mut h, &[esc(k), v.to_string()]);
        }
        h.push_str("</table>\n");
    }
    h.push_str("<h2>Servers</h2>\n");
    if r.servers.is_empty() {
        h.push_str("<p>No <code>--metrics-url</code> given: no server metrics.</p>\n");
    } else {
        h.push_str("<table>\n");
        head(
            &mut h,
            &[
                "metrics URL",
                "scrapes (failed)",
                "RSS first MiB",
                "RSS last MiB",
                "RSS peak MiB",
                "peak sessions",
                "requests counted",
                "errors counted",
            ],
        );
        for s in &r.servers {
            row(
                &mut h,
                &[
                    esc(&s.url),
                    format!("{} ({})", s.scrapes, s.scrape_errors),
                    opt_mib(s.first_rss_bytes),
                    opt_mib(s.last_rss_bytes),
                    opt_mib(s.peak_rss_bytes),
                    count(s.peak_sessions),
                    count(s.requests_counted),
                    count(s.request_errors_counted),
                ],
            );
        }
        h.push_str("</table>\n");
    }
    let d = &r.drift;
    let _ = writeln!(
        h,
        "<h2>Drift</h2>\n<p>First {w:.1} s against the last {w:.1} s: server memory {rf} → {rl} MiB ({rc}), \
         median per-second p99 {pf} → {pl} ({pc}).</p>",
        w = d.window_s,
        rf = opt_mib(d.rss_first_bytes),
        rl = opt_mib(d.rss_last_bytes),
        rc = opt(d.rss_change_percent, " %"),
        pf = opt(d.p99_first_ms, " ms"),
        pl = opt(d.p99_last_ms, " ms"),
        pc = opt(d.p99_change_percent, " %"),
    );
    h.push_str("<h2>Charts</h2>\n");
    for (title, svg) in charts(r) {
        let _ = writeln!(
            h,
            "<div class=\"chart\" title=\"{}\">{svg}</div>",
            esc(&title)
        );
    }
    h.push_str("</body></html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::fixture;

    #[test]
    fn the_report_is_one_file_with_five_inline_charts() {
        let html = render(&fixture());
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert_eq!(html.matches("<svg").count(), 5, "five charts");
        assert!(!html.contains("<script"), "no scripts");
        assert!(!html.contains("src=\""), "nothing loaded from elsewhere");
        for title in [
            "Throughput",
            "Latency percentiles",
            "Errors by kind",
            "Connections and sessions",
            "Server memory",
        ] {
            assert!(html.contains(title), "missing {title}");
        }
        assert!(html.contains("http_503"));
    }

    #[test]
    fn an_empty_chart_says_so() {
        let svg = line_chart("Errors by kind", "errors", 10.0, &[], false);
        assert!(svg.contains("<svg") && svg.contains("nothing recorded"));
    }

    #[test]
    fn log_axis_labels_only_round_values() {
        let shown: Vec<String> = [0.1, 0.3, 1.0, 2.0, 3.0, 5.0, 7.0, 20.0, 500.0]
            .iter()
            .map(log_label)
            .filter(|l| !l.is_empty())
            .collect();
        assert_eq!(shown, ["0.1", "1", "2", "5", "20", "500"]);
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(esc("<a href=\"x\">&"), "&lt;a href=&quot;x&quot;&gt;&amp;");
    }
}
