//! `fleetsim [--seed N] [--csv DIR]`: runs the default scenarios (see [`fleetsim::default_scenarios`]) and prints
//! one Markdown table row per scenario; `--csv DIR` also writes each scenario's Ready nodes and resolver queries
//! per second over time (`DIR/<k>-ready.csv`, `DIR/<k>-qps.csv`) and `DIR/scenarios.csv` (k, name) for plots
//! (`bench/fleet.sh` draws them).

use std::io::Write;

fn main() {
    let mut seed = 1u64;
    let mut csv: Option<std::path::PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--seed", Some(v)) => match v.parse() {
                Ok(s) => seed = s,
                Err(_) => usage(&format!("--seed {v}: not a number")),
            },
            ("--csv", Some(dir)) => csv = Some(dir.into()),
            _ => usage(&format!("unknown argument {arg}")),
        }
    }
    if let Some(dir) = &csv {
        let _ = std::fs::remove_file(dir.join("scenarios.csv"));
    }
    println!(
        "| scenario | nodes (launched/alive) | Ready p50 / p99 / max | resolver q/s mean / peak | upstream queries | largest answer | voters / observers | voted sets / seedable rings | ring formed |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (k, scenario) in fleetsim::default_scenarios(seed).iter().enumerate() {
        let started = std::time::Instant::now();
        let r = fleetsim::run(scenario);
        println!(
            "| {} | {}/{} ({} Ready) | {:.0} / {:.0} / {:.0} s | {:.1} / {} | {} | {} B{} | {} / {} | {} / {} | {} |",
            r.name,
            r.launched,
            r.alive,
            r.ready,
            r.ready_p50_ms as f64 / 1000.0,
            r.ready_p99_ms as f64 / 1000.0,
            r.ready_max_ms as f64 / 1000.0,
            r.resolver_qps_mean,
            r.resolver_qps_peak,
            r.upstream_queries,
            r.answer_bytes_max,
            if r.answer_needs_tcp { " (TCP)" } else { "" },
            r.voters,
            r.observers,
            r.voted_sets,
            r.seedable_rings,
            if r.ring_formed { "yes" } else { "no" },
        );
        eprintln!("fleetsim: {} simulated in {:?}", r.name, started.elapsed());
        if let Some(dir) = &csv
            && let Err(e) = write_csv(dir, k, &r)
        {
            eprintln!("fleetsim: cannot write CSV into {}: {e}", dir.display());
            std::process::exit(1);
        }
    }
}

fn write_csv(dir: &std::path::Path, k: usize, r: &fleetsim::Report) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    // The index the plots take their legends from: one "k,name" line per scenario.
    let mut index = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("scenarios.csv"))?;
    writeln!(index, "{k},{}", r.name.replace(',', ";"))?;
    let mut ready = std::fs::File::create(dir.join(format!("{k}-ready.csv")))?;
    writeln!(ready, "second,ready")?;
    for (s, n) in &r.ready_over_time {
        writeln!(ready, "{s},{n}")?;
    }
    let mut qps = std::fs::File::create(dir.join(format!("{k}-qps.csv")))?;
    writeln!(qps, "second,queries")?;
    for (s, n) in &r.qps_over_time {
        writeln!(qps, "{s},{n}")?;
    }
    Ok(())
}

fn usage(problem: &str) -> ! {
    eprintln!("error: {problem}\nusage: fleetsim [--seed N] [--csv DIR]");
    std::process::exit(2);
}
