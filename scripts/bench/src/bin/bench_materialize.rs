//! `bench-materialize`: times the release `bhavstore` binary materializing the feature views
//! over synthetic histories of different lengths: one `materialize --full` (the backfill), then
//! `--repeat` incremental runs, each after appending one new session.
//!
//! For every history length H of `--sessions` it
//!
//! 1. generates (once, cached under `--cache`) sessions 1..=H of an `H + repeat`-session history
//!    with `gen-history`, which also writes the change log (`state/bse/equity/loads/`);
//! 2. copies it to a work root with hard links (`cp -al`: every file of the canonical table and
//!    the change log is written once and never modified in place, so the cache stays intact);
//! 3. runs `bhavstore --storage WORK materialize --full` and times it;
//! 4. `--repeat` times: appends session H+i with `gen-history --from-session H+i --to-session H+i`
//!    (not timed) and times `bhavstore --storage WORK materialize`, which must run incrementally;
//! 5. reads the runs' records back with `bhavstore query 'select … from bhavstore_runs'`.
//!
//! Wall time is measured around the process (start-up, catalog, planning, writing, quality
//! figures, exit: what a user waits for); peak RSS with GNU time when `/usr/bin/time` exists.
//! The summary (markdown) goes to `--out/summary.md`, the details to `--out/results.json`,
//! the binary's logs to `--out/logs/`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use chrono::{DateTime, Utc};
use clap::Parser;
use serde_json::{Value, json};

/// Benchmark `bhavstore materialize`: full backfill and one-day incremental runs.
#[derive(Debug, Parser)]
struct Args {
    /// The `bhavstore` binary (release build).
    #[arg(long)]
    bhavstore: PathBuf,
    /// The `gen-history` binary.
    #[arg(long)]
    gen_history: PathBuf,
    /// Directory of the feature view definitions.
    #[arg(long)]
    feature_defs: PathBuf,
    /// Cache of generated histories.
    #[arg(long)]
    cache: PathBuf,
    /// Output folder (summary, logs, work roots).
    #[arg(long)]
    out: PathBuf,
    /// Securities in the universe.
    #[arg(long, default_value_t = 5000)]
    securities: usize,
    /// History lengths to benchmark, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "250,5000")]
    sessions: Vec<usize>,
    /// PRNG seed of the history.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Incremental runs per history length (each appends one new session).
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Log filter passed to `bhavstore --log`.
    #[arg(long, default_value = "info")]
    log: String,
    /// Keep the work roots (default: deleted at the end, the cached histories stay).
    #[arg(long)]
    keep_work: bool,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One `bhavstore_runs` row.
#[derive(Debug, Clone)]
struct RunRow {
    run_id: String,
    view: String,
    mode: String,
    status: String,
    rows: u64,
    compute_ms: u64,
    tail_ms: u64,
    duration_ms: u64,
    started_at_ms: i64,
    finished_at_ms: i64,
}

/// One timed `bhavstore materialize` process.
#[derive(Debug, Clone)]
struct Invocation {
    wall_s: f64,
    max_rss_kib: Option<u64>,
    /// User + system CPU seconds of the process.
    cpu_s: Option<f64>,
    load_before: String,
    spawned_ms: i64,
    exited_ms: i64,
    runs: Vec<RunRow>,
    /// Per view, when its manifest was published (from the log).
    published_ms: BTreeMap<String, i64>,
    log: PathBuf,
}

impl Invocation {
    /// The view that took longest in-process.
    fn slowest(&self) -> Option<&RunRow> {
        self.runs.iter().max_by_key(|r| r.duration_ms)
    }
    fn rows(&self) -> u64 {
        self.runs.iter().map(|r| r.rows).sum()
    }
    fn duration_ms(&self) -> u64 {
        self.slowest().map_or(0, |r| r.duration_ms)
    }
}

#[derive(Debug)]
struct HistoryResult {
    sessions: usize,
    input_rows: Option<u64>,
    generation: String,
    full: Invocation,
    incremental: Vec<Invocation>,
    append_s: Vec<f64>,
}

fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    if args.sessions.is_empty() || args.repeat == 0 {
        return Err("need at least one --sessions value and --repeat >= 1".into());
    }
    std::fs::create_dir_all(&args.cache)?;
    std::fs::create_dir_all(args.out.join("logs"))?;
    let time = Path::new("/usr/bin/time").exists();
    if !time {
        eprintln!("bench-materialize: /usr/bin/time not found, peak RSS is not measured");
    }
    let mut results = Vec::new();
    for &h in &args.sessions {
        results.push(bench_history(&args, h, time)?);
    }
    let summary = summary(&args, &results);
    std::fs::write(args.out.join("summary.md"), &summary)?;
    std::fs::write(args.out.join("results.json"), serde_json::to_vec_pretty(&to_json(&results))?)?;
    println!("{summary}");
    Ok(())
}

fn bench_history(args: &Args, h: usize, time: bool) -> Result<HistoryResult, BoxError> {
    let total = h + args.repeat;
    let name = format!("{}x{total}-seed{}-first{h}", args.securities, args.seed);
    let base = args.cache.join(format!("history-{name}"));
    let done = args.cache.join(format!("history-{name}.done"));
    eprintln!("== history {name}: sessions 1..={h} of a {total}-session history -> {}", base.display());
    let generation = if let Ok(line) = std::fs::read_to_string(&done) {
        eprintln!("present (remove {} to regenerate): {}", done.display(), line.trim());
        line.trim().to_string()
    } else {
        if base.exists() {
            std::fs::remove_dir_all(&base)?;
        }
        let out = generate(args, &base, total, 1, h)?;
        let line = out.lines().last().unwrap_or_default().to_string();
        std::fs::write(&done, format!("{line}\n"))?;
        line
    };
    let input_rows = generation.split_whitespace().skip_while(|w| *w != "wrote").nth(1).and_then(|n| n.parse().ok());

    let work = args.out.join(format!("work-{}x{h}", args.securities));
    if work.exists() {
        std::fs::remove_dir_all(&work)?;
    }
    run(Command::new("cp").arg("-al").arg(&base).arg(&work))?;
    let mut seen = BTreeSet::new();

    eprintln!("== H={h}: materialize --full");
    let full = materialize(args, &work, &format!("{h}-full"), true, time, &mut seen)?;
    report(&full);
    let mut incremental = Vec::new();
    let mut append_s = Vec::new();
    for i in 1..=args.repeat {
        let session = h + i;
        eprintln!("== H={h}: append session {session}, then materialize (incremental {i}/{})", args.repeat);
        let t = Instant::now();
        generate(args, &work, total, session, session)?;
        append_s.push(t.elapsed().as_secs_f64());
        let inv = materialize(args, &work, &format!("{h}-incr{i}"), false, time, &mut seen)?;
        report(&inv);
        if let Some(r) = inv.runs.iter().find(|r| r.mode != "incremental") {
            eprintln!("warning: {} ran as {:?}, not incremental", r.view, r.mode);
        }
        incremental.push(inv);
    }
    if !args.keep_work {
        std::fs::remove_dir_all(&work)?;
    }
    Ok(HistoryResult { sessions: h, input_rows, generation, full, incremental, append_s })
}

fn report(inv: &Invocation) {
    for r in &inv.runs {
        eprintln!(
            "   {}: {} {}, {} rows, duration {} ms (compute {} ms, tail {} ms)",
            r.view, r.mode, r.status, r.rows, r.duration_ms, r.compute_ms, r.tail_ms
        );
    }
    eprintln!(
        "   wall {:.2} s{}{}, load average before {}",
        inv.wall_s,
        inv.cpu_s.map(|c| format!(", CPU {c:.2} s")).unwrap_or_default(),
        inv.max_rss_kib.map(|k| format!(", peak RSS {:.0} MiB", k as f64 / 1024.0)).unwrap_or_default(),
        inv.load_before
    );
}

/// Runs gen-history for sessions `from..=to` of a `total`-session history; returns its stdout.
fn generate(args: &Args, root: &Path, total: usize, from: usize, to: usize) -> Result<String, BoxError> {
    let out = Command::new(&args.gen_history)
        .arg("--root")
        .arg(root)
        .args(["--securities", &args.securities.to_string()])
        .args(["--sessions", &total.to_string()])
        .args(["--seed", &args.seed.to_string()])
        .args(["--from-session", &from.to_string(), "--to-session", &to.to_string()])
        .stderr(Stdio::inherit())
        .output()?;
    if !out.status.success() {
        return Err(format!("gen-history failed: {}", out.status).into());
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    eprint!("{text}");
    Ok(text)
}

fn run(cmd: &mut Command) -> Result<(), BoxError> {
    let status = cmd.status()?;
    if !status.success() {
        return Err(format!("{cmd:?} failed: {status}").into());
    }
    Ok(())
}

fn bhavstore(args: &Args, root: &Path) -> Command {
    let mut c = Command::new(&args.bhavstore);
    c.arg("--storage").arg(root).arg("--feature-defs").arg(&args.feature_defs).arg("--log").arg(&args.log);
    c.env_remove("RUST_LOG");
    c
}

/// One timed `bhavstore materialize` (the views of `--feature-defs`, all of them).
fn materialize(
    args: &Args,
    root: &Path,
    label: &str,
    full: bool,
    time: bool,
    seen: &mut BTreeSet<String>,
) -> Result<Invocation, BoxError> {
    let log = args.out.join("logs").join(format!("{label}.log"));
    let rss_file = args.out.join("logs").join(format!("{label}.time"));
    let mut cmd = if time {
        let mut c = Command::new("/usr/bin/time");
        c.arg("-f").arg("%M %U %S").arg("-o").arg(&rss_file).arg(&args.bhavstore);
        c.arg("--storage").arg(root).arg("--feature-defs").arg(&args.feature_defs).arg("--log").arg(&args.log);
        c.env_remove("RUST_LOG");
        c
    } else {
        bhavstore(args, root)
    };
    cmd.arg("materialize");
    if full {
        cmd.arg("--full");
    }
    let load_before = std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    let spawned_ms = Utc::now().timestamp_millis();
    let t = Instant::now();
    let output = cmd.stdout(Stdio::piped()).stderr(std::fs::File::create(&log)?).output()?;
    let wall_s = t.elapsed().as_secs_f64();
    let exited_ms = Utc::now().timestamp_millis();
    let stdout = String::from_utf8_lossy(&output.stdout);
    std::fs::OpenOptions::new().append(true).open(&log).and_then(|mut f| {
        use std::io::Write;
        write!(f, "--- stdout\n{stdout}")
    })?;
    if !output.status.success() {
        return Err(format!("bhavstore materialize failed ({}), see {}", output.status, log.display()).into());
    }
    // GNU time's last line: "%M %U %S" (peak RSS KiB, user s, system s).
    let measured: Vec<f64> = if time {
        std::fs::read_to_string(&rss_file)
            .ok()
            .and_then(|s| s.lines().last().map(|l| l.split_whitespace().filter_map(|x| x.parse().ok()).collect()))
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let max_rss_kib = measured.first().map(|k| *k as u64);
    let cpu_s = (measured.len() == 3).then(|| measured[1] + measured[2]);
    let runs: Vec<RunRow> = runs(args, root)?.into_iter().filter(|r| seen.insert(r.run_id.clone())).collect();
    if runs.is_empty() {
        return Err(format!("no new run records after {label}").into());
    }
    let published_ms = published_from_log(&std::fs::read_to_string(&log)?);
    Ok(Invocation { wall_s, max_rss_kib, cpu_s, load_before, spawned_ms, exited_ms, runs, published_ms, log })
}

/// The materialization runs recorded under `root`.
fn runs(args: &Args, root: &Path) -> Result<Vec<RunRow>, BoxError> {
    let sql = "SELECT run_id, \"view\", mode, status, \"rows\", compute_ms, tail_ms, duration_ms, \
               CAST(started_at AS BIGINT) AS started_ms, CAST(finished_at AS BIGINT) AS finished_ms \
               FROM bhavstore_runs WHERE kind = 'materialize' ORDER BY started_at";
    let out = bhavstore(args, root).args(["query", "--format", "json", sql]).stderr(Stdio::inherit()).output()?;
    if !out.status.success() {
        return Err(format!("bhavstore query failed: {}", out.status).into());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<Value> = serde_json::from_str(text.trim()).map_err(|e| format!("query output: {e}: {text}"))?;
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    let u = |v: &Value, k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
    let i = |v: &Value, k: &str| v.get(k).and_then(Value::as_i64).unwrap_or(0);
    Ok(rows
        .iter()
        .map(|v| RunRow {
            run_id: s(v, "run_id"),
            view: s(v, "view"),
            mode: s(v, "mode"),
            status: s(v, "status"),
            rows: u(v, "rows"),
            compute_ms: u(v, "compute_ms"),
            tail_ms: u(v, "tail_ms"),
            duration_ms: u(v, "duration_ms"),
            started_at_ms: i(v, "started_ms"),
            finished_at_ms: i(v, "finished_ms"),
        })
        .collect())
}

/// `view -> time` of the "manifest published" log lines (tracing's default format: RFC 3339
/// timestamp first, then level, span, message and fields).
fn published_from_log(log: &str) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for line in log.lines().filter(|l| l.contains("manifest published")) {
        let Some(ts) = line.split_whitespace().next().and_then(|t| DateTime::parse_from_rfc3339(t).ok()) else {
            continue;
        };
        let Some(view) = line.rsplit("view=").next().and_then(|rest| rest.split_whitespace().next()) else { continue };
        out.insert(view.to_string(), ts.with_timezone(&Utc).timestamp_millis());
    }
    out
}

fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => f64::midpoint(v[n / 2 - 1], v[n / 2]),
    }
}

fn best(xs: &[f64]) -> f64 {
    xs.iter().copied().fold(f64::INFINITY, f64::min)
}

fn secs(ms: f64) -> String {
    format!("{:.2} s", ms / 1000.0)
}

fn mib(k: Option<u64>) -> String {
    k.map_or_else(|| "-".into(), |k| format!("{:.0} MiB", k as f64 / 1024.0))
}

/// Where the time of one incremental invocation went, from the slowest view's record and log:
/// (process start-up to the run's record, the rest of the run before compute plus publishing,
/// compute, tail, publish to finish (cleanup + quality figures), finish to process exit), in ms.
fn phases(inv: &Invocation) -> Option<[i64; 6]> {
    let r = inv.slowest()?;
    let published = *inv.published_ms.get(&r.view)?;
    let (compute, tail) = (r.compute_ms as i64, r.tail_ms as i64);
    let startup = r.started_at_ms - inv.spawned_ms;
    let after_publish = r.finished_at_ms - published;
    // The rest of duration_ms: version record, latest manifest, change log, input narrowing,
    // planning, and publishing the manifest.
    let prepare = r.duration_ms as i64 - compute - tail - after_publish;
    let exit = inv.exited_ms - r.finished_at_ms;
    Some([startup, prepare, compute, tail, after_publish, exit])
}

fn summary(args: &Args, results: &[HistoryResult]) -> String {
    let mut s = String::new();
    let views: BTreeSet<&str> = results.iter().flat_map(|r| r.full.runs.iter().map(|x| x.view.as_str())).collect();
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let _ = writeln!(s, "# bhavstore materialization benchmark ({})\n", Utc::now().format("%Y-%m-%d %H:%M UTC"));
    let _ = writeln!(
        s,
        "{} securities, seed {}, views: {} (run concurrently by one `bhavstore materialize`), {} incremental \
         runs per history (each appends one session), {cores} cores. Wall = the whole `bhavstore` process; \
         duration/compute/tail = `bhavstore_runs` of the slowest view.\n",
        args.securities,
        args.seed,
        views.iter().copied().collect::<Vec<_>>().join(", "),
        args.repeat
    );
    let cpu = |c: Option<f64>| c.map_or_else(|| "-".into(), |c| format!("{c:.1} s"));
    let _ = writeln!(s, "## Full backfill (`materialize --full`)\n");
    let _ = writeln!(
        s,
        "| sessions | input rows | wall | CPU (user+sys) | rows written (all views) | rows/s (wall) | duration_ms (slowest view) \
         | compute_ms / tail_ms (slowest view) | peak RSS | load avg before |"
    );
    let _ = writeln!(s, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for r in results {
        let slow = r.full.slowest();
        let _ = writeln!(
            s,
            "| {} | {} | {:.1} s | {} | {} | {:.0} | {} | {} / {} | {} | {} |",
            r.sessions,
            r.input_rows.map_or_else(|| "-".into(), |n| n.to_string()),
            r.full.wall_s,
            cpu(r.full.cpu_s),
            r.full.rows(),
            r.full.rows() as f64 / r.full.wall_s,
            r.full.duration_ms(),
            slow.map_or(0, |x| x.compute_ms),
            slow.map_or(0, |x| x.tail_ms),
            mib(r.full.max_rss_kib),
            r.full.load_before,
        );
    }
    let (Some(small), Some(large)) = (results.first(), results.last()) else { return s };
    if results.len() > 1 {
        let _ = writeln!(
            s,
            "| **{} / {}** | {} | **{:.1}×** | {} | | | **{:.1}×** | | | |",
            large.sessions,
            small.sessions,
            match (large.input_rows, small.input_rows) {
                (Some(a), Some(b)) => format!("{:.1}×", a as f64 / b.max(1) as f64),
                _ => String::new(),
            },
            large.full.wall_s / small.full.wall_s,
            match (large.full.cpu_s, small.full.cpu_s) {
                (Some(a), Some(b)) => format!("{:.1}×", a / b),
                _ => String::new(),
            },
            large.full.duration_ms() as f64 / small.full.duration_ms().max(1) as f64,
        );
    }

    let _ = writeln!(s, "\n## Incremental (one new session per run, {} runs)\n", args.repeat);
    let _ = writeln!(
        s,
        "| sessions | wall best / median | CPU median | duration_ms best / median | compute_ms | tail_ms \
         | other ms (prepare, publish, quality) | rows written (all views) | peak RSS |"
    );
    let _ = writeln!(s, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let incr_wall = |r: &HistoryResult| median(&r.incremental.iter().map(|i| i.wall_s).collect::<Vec<_>>());
    let incr_dur =
        |r: &HistoryResult| median(&r.incremental.iter().map(|i| i.duration_ms() as f64).collect::<Vec<_>>());
    let incr_cpu = |r: &HistoryResult| median(&r.incremental.iter().filter_map(|i| i.cpu_s).collect::<Vec<_>>());
    for r in results {
        let walls: Vec<f64> = r.incremental.iter().map(|i| i.wall_s).collect();
        let durs: Vec<f64> = r.incremental.iter().map(|i| i.duration_ms() as f64).collect();
        let med = |f: &dyn Fn(&RunRow) -> u64| {
            median(&r.incremental.iter().filter_map(|i| i.slowest().map(|x| f(x) as f64)).collect::<Vec<_>>())
        };
        let (compute, tail) = (med(&|x| x.compute_ms), med(&|x| x.tail_ms));
        let other = median(&durs) - compute - tail;
        let rss = r.incremental.iter().filter_map(|i| i.max_rss_kib).max();
        let _ = writeln!(
            s,
            "| {} | {:.2} / {:.2} s | {} | {:.0} / {:.0} | {:.0} | {:.0} | {:.0} | {} | {} |",
            r.sessions,
            best(&walls),
            median(&walls),
            cpu(Some(incr_cpu(r)).filter(|c| c.is_finite())),
            best(&durs),
            median(&durs),
            compute,
            tail,
            other,
            median(&r.incremental.iter().map(|i| i.rows() as f64).collect::<Vec<_>>()),
            mib(rss),
        );
    }
    if results.len() > 1 {
        let _ = writeln!(
            s,
            "| **{} / {}** | **{:.2}×** (median) | **{:.2}×** | **{:.2}×** (median) | | | | | |",
            large.sessions,
            small.sessions,
            incr_wall(large) / incr_wall(small),
            incr_cpu(large) / incr_cpu(small),
            incr_dur(large) / incr_dur(small).max(1.0),
        );
    }

    let _ = writeln!(s, "\n## Targets\n\n| target | measured | met |\n|---|---:|:---:|");
    let yes = |b: bool| if b { "yes" } else { "**no**" };
    for r in results {
        let (w, d, c) = (incr_wall(r), incr_dur(r), incr_cpu(r));
        let _ = writeln!(
            s,
            "| incremental (one new day) ≤ 1 s, {} sessions: wall / in-process duration (medians; CPU {c:.1} s) \
             | {w:.2} s / {} | {} / {} |",
            r.sessions,
            secs(d),
            yes(w <= 1.0),
            yes(d <= 1000.0)
        );
    }
    if results.len() > 1 {
        let (rw, rd) = (incr_wall(large) / incr_wall(small), incr_dur(large) / incr_dur(small).max(1.0));
        let _ = writeln!(
            s,
            "| incremental time at {} sessions ≤ 1.5× at {}: wall / duration (medians; CPU {:.2}×) \
             | {rw:.2}× / {rd:.2}× | {} / {} |",
            large.sessions,
            small.sessions,
            incr_cpu(large) / incr_cpu(small),
            yes(rw <= 1.5),
            yes(rd <= 1.5)
        );
    }

    let _ = writeln!(
        s,
        "\n## Incremental runs, where the time goes (slowest view, ms)\n\n\
         start-up = process start to the run's record (config, feature defs, catalog, planning every view); \
         prepare = version record, latest manifest, change log, input narrowing, planning, and \
         publishing the manifest; \
         compute = compute + write the new day's rows; tail = write the new tail; \
         after publish = cleanup + quality figures; exit = run finished to process exit.\n"
    );
    let _ = writeln!(
        s,
        "| sessions | run | view | rows | wall ms | start-up | prepare | compute | tail | after publish | exit | load avg before |"
    );
    let _ = writeln!(s, "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for r in results {
        for (i, inv) in r.incremental.iter().enumerate() {
            let Some(x) = inv.slowest() else { continue };
            let p = phases(inv).map_or_else(|| vec!["-".to_string(); 6], |p| p.iter().map(i64::to_string).collect());
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {:.0} | {} | {} | {} | {} | {} | {} | {} |",
                r.sessions,
                i + 1,
                x.view,
                x.rows,
                inv.wall_s * 1000.0,
                p[0],
                p[1],
                p[2],
                p[3],
                p[4],
                p[5],
                inv.load_before
            );
        }
    }
    let _ = writeln!(
        s,
        "\nPer view (every run):\n\n| sessions | run | view | mode | rows | duration_ms | compute_ms | tail_ms |"
    );
    let _ = writeln!(s, "|---:|---|---|---|---:|---:|---:|---:|");
    for r in results {
        let all = std::iter::once(("full".to_string(), &r.full))
            .chain(r.incremental.iter().enumerate().map(|(i, inv)| (format!("incr {}", i + 1), inv)));
        for (label, inv) in all {
            for x in &inv.runs {
                let _ = writeln!(
                    s,
                    "| {} | {label} | {} | {} | {} | {} | {} | {} |",
                    r.sessions, x.view, x.mode, x.rows, x.duration_ms, x.compute_ms, x.tail_ms
                );
            }
        }
    }
    let _ = writeln!(s, "\nGeneration of the cached histories (not timed by the benchmark):\n");
    for r in results {
        let appends: Vec<String> = r.append_s.iter().map(|a| format!("{a:.1} s")).collect();
        let _ =
            writeln!(s, "* {} sessions: {} (appending one session: {})", r.sessions, r.generation, appends.join(", "));
    }
    s
}

fn to_json(results: &[HistoryResult]) -> Value {
    let inv = |i: &Invocation| {
        json!({
            "wall_s": i.wall_s,
            "max_rss_kib": i.max_rss_kib,
            "cpu_s": i.cpu_s,
            "load_before": i.load_before,
            "log": i.log.display().to_string(),
            "phases_ms": phases(i),
            "runs": i.runs.iter().map(|r| json!({
                "run_id": r.run_id, "view": r.view, "mode": r.mode, "status": r.status, "rows": r.rows,
                "compute_ms": r.compute_ms, "tail_ms": r.tail_ms, "duration_ms": r.duration_ms,
            })).collect::<Vec<_>>(),
        })
    };
    Value::Array(
        results
            .iter()
            .map(|r| {
                json!({
                    "sessions": r.sessions,
                    "input_rows": r.input_rows,
                    "generation": r.generation,
                    "full": inv(&r.full),
                    "incremental": r.incremental.iter().map(inv).collect::<Vec<_>>(),
                    "append_s": r.append_s,
                })
            })
            .collect(),
    )
}
