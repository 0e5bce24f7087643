use std::io::IsTerminal;

use anyhow::{Context, Result};
use clap::Parser;
use erlmcp_load::{cli::Args, html, run};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

fn progress(quiet: bool) -> ProgressBar {
    let bar = ProgressBar::new(0);
    if quiet || !std::io::stderr().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::hidden());
        return bar;
    }
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {percent:>3}% {msg}",
        )
        .expect("valid template"),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}

/// `--hold`: open, hold idle, check; hold.json in the output directory.
fn hold(args: &Args, opts: erlmcp_load::hold::HoldOptions) -> Result<()> {
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let r = rt.block_on(erlmcp_load::hold::run(opts))?;
    let json = args.out.join("hold.json");
    std::fs::write(&json, serde_json::to_string_pretty(&r)?)?;
    if !args.quiet {
        let mib = |b: Option<f64>| b.map_or("?".into(), |b| format!("{:.1}", b / 1048576.0));
        eprintln!(
            "hold {} {}: {} of {} open in {:.1} s ({} errors), RSS {} -> {} MiB ({} B each), \
             {} closed during the hold, {}/{} answered at the end\nwrote {}",
            r.kind,
            r.transport,
            r.opened,
            r.requested,
            r.open_s,
            r.open_errors,
            mib(r.rss_before_bytes),
            mib(r.rss_held_bytes),
            r.rss_per_item_bytes
                .map_or("?".into(), |b| format!("{b:.0}")),
            r.closed_during_hold,
            r.check_ok,
            r.checked,
            json.display()
        );
    }
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    Ok(())
}

fn main() -> Result<()> {
    let args = Args::parse();
    if let Some(h) = args.hold_options()? {
        return hold(&args, h);
    }
    let opts = args.options()?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = rt.block_on(run::run(opts, progress(args.quiet)));
    let json = args.out.join("report.json");
    let page = args.out.join("report.html");
    std::fs::write(&json, serde_json::to_string_pretty(&report)?)?;
    std::fs::write(&page, html::render(&report))?;
    if !args.quiet {
        let t = &report.totals;
        let l = &report.latency;
        eprintln!(
            "{}: {} ok, {} errors, {:.1} ok/s, p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms\nwrote {} and {}",
            report.scenario, t.ok, t.errors, t.throughput_per_s, l.p50_ms, l.p99_ms, l.max_ms,
            json.display(), page.display()
        );
    }
    // Stop the runtime without waiting for stray connection tasks (all are bounded anyway).
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    Ok(())
}
