//! Tests for the scheduler. Runs use a cron firing every second and assert on the order and count
//! of calls to a fake runner, never on how long things took.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveTime, Timelike, Utc};
use chrono_tz::Tz;
use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

use super::cron_tz::{fire_date, local_instant};
use super::{IngestAttempt, JobConfig, JobRunner, ScheduleConfig, ScheduleError, ValidatedSchedule, run};

/// Far longer than any wait below should take, so a slow CI machine does not fail a test.
const PATIENCE: Duration = Duration::from_secs(10);

fn utc(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

#[test]
fn default_job_fires_at_20_10_ist_and_skips_sunday() {
    let schedule = ScheduleConfig::default().validate().unwrap();
    assert_eq!(schedule.timezone(), chrono_tz::Asia::Kolkata);
    // Friday 2026-11-27, 19:30 IST.
    let friday = schedule.next_fires(utc("2026-11-27T14:00:00Z"));
    assert_eq!(friday, vec![("daily-bhavcopy".to_owned(), utc("2026-11-27T14:40:00Z"))]);
    // Strictly after: the fire instant itself yields Saturday's fire.
    let saturday = schedule.next_fires(utc("2026-11-27T14:40:00Z"));
    assert_eq!(saturday[0].1, utc("2026-11-28T14:40:00Z"));
    let monday = schedule.next_fires(saturday[0].1);
    assert_eq!(monday[0].1, utc("2026-11-30T14:40:00Z"));
}

#[test]
fn disabled_jobs_have_no_next_fire() {
    let config = ScheduleConfig {
        jobs: vec![
            JobConfig { name: "off".into(), enabled: false, ..JobConfig::default() },
            JobConfig { name: "on".into(), ..JobConfig::default() },
        ],
        ..ScheduleConfig::default()
    };
    let fires = config.validate().unwrap().next_fires(utc("2026-11-27T14:00:00Z"));
    assert_eq!(fires, vec![("on".to_owned(), utc("2026-11-27T14:40:00Z"))]);
}

#[test]
fn fire_date_is_the_local_calendar_date() {
    let kolkata = chrono_tz::Asia::Kolkata;
    // 00:30 IST on the 28th is still the 27th in UTC.
    assert_eq!(fire_date(utc("2026-11-27T19:00:00Z"), kolkata), NaiveDate::from_ymd_opt(2026, 11, 28).unwrap());
    assert_eq!(fire_date(utc("2026-11-27T14:40:00Z"), kolkata), NaiveDate::from_ymd_opt(2026, 11, 27).unwrap());
}

#[test]
fn cutoff_is_local_wall_clock_and_survives_dst_changes() {
    let hm = |h, m| NaiveTime::from_hms_opt(h, m, 0).unwrap();
    let day = |y, mo, d| NaiveDate::from_ymd_opt(y, mo, d).unwrap();
    let kolkata = chrono_tz::Asia::Kolkata;
    assert_eq!(local_instant(day(2026, 11, 27), hm(23, 45), kolkata), utc("2026-11-27T18:15:00Z"));
    let new_york = chrono_tz::America::New_York;
    // 02:30 does not exist on the spring-forward day; read with EST it is 03:30 EDT.
    assert_eq!(local_instant(day(2026, 3, 8), hm(2, 30), new_york), utc("2026-03-08T07:30:00Z"));
    // 01:30 happens twice on the fall-back day; the later (EST) one gives more time.
    assert_eq!(local_instant(day(2026, 11, 1), hm(1, 30), new_york), utc("2026-11-01T06:30:00Z"));
}

fn job_error(job: JobConfig) -> String {
    let config = ScheduleConfig { jobs: vec![job], ..ScheduleConfig::default() };
    let err = config.validate().unwrap_err();
    assert!(matches!(err, ScheduleError::Job { .. }), "{err:?}");
    err.to_string()
}

#[test]
fn config_errors_name_the_job_and_field() {
    let config = ScheduleConfig { timezone: "Asia/Bombay_Typo".into(), ..ScheduleConfig::default() };
    let err = config.validate().unwrap_err().to_string();
    assert!(err.contains("schedule.timezone") && err.contains("Asia/Bombay_Typo"), "{err}");

    let job = || JobConfig { name: "nightly".into(), ..JobConfig::default() };
    let cases = [
        (JobConfig { cron: "0 10 25 * * Mon-Sat".into(), ..job() }, "cron"),
        (JobConfig { cron: "10 20 * * 1-6".into(), ..job() }, "cron"),
        (JobConfig { retry_every: "15x".into(), ..job() }, "retry_every"),
        (JobConfig { retry_every: "15".into(), ..job() }, "retry_every"),
        (JobConfig { retry_every: "0m".into(), ..job() }, "retry_every"),
        (JobConfig { retry_until: "24:00".into(), ..job() }, "retry_until"),
        (JobConfig { retry_until: "11pm".into(), ..job() }, "retry_until"),
        (JobConfig { materialize: vec![String::new()], ..job() }, "materialize"),
    ];
    for (config, field) in cases {
        let err = job_error(config);
        assert!(err.contains("\"nightly\"") && err.contains(field), "{field}: {err}");
    }
    let five_fields = job_error(JobConfig { cron: "10 20 * * 1-6".into(), ..job() });
    assert!(five_fields.contains("seconds field comes first"), "{five_fields}");

    let twins = ScheduleConfig { jobs: vec![job(), job()], ..ScheduleConfig::default() };
    let err = twins.validate().unwrap_err().to_string();
    assert!(err.contains("\"nightly\"") && err.contains("name"), "{err}");
}

#[test]
fn config_errors_keep_their_wording() {
    let config = ScheduleConfig { timezone: "Mars/Olympus".into(), ..ScheduleConfig::default() };
    assert_eq!(
        config.validate().unwrap_err().to_string(),
        "schedule.timezone \"Mars/Olympus\": not an IANA time zone name like Asia/Kolkata (failed to parse timezone)"
    );
    let job = || JobConfig { name: "nightly".into(), ..JobConfig::default() };
    let cases = [
        (
            JobConfig { retry_every: "15".into(), ..job() },
            "retry_every \"15\": no unit; expected a whole number followed by s, m or h, like 15m",
        ),
        (
            JobConfig { retry_every: "m".into(), ..job() },
            "retry_every \"m\": expected a whole number followed by s, m or h, like 15m",
        ),
        (
            JobConfig { retry_every: "15x".into(), ..job() },
            "retry_every \"15x\": unknown unit \"x\"; expected a whole number followed by s, m or h, like 15m",
        ),
        (JobConfig { retry_every: "0m".into(), ..job() }, "retry_every \"0m\": must be greater than zero"),
        (
            JobConfig { retry_every: "18446744073709551615h".into(), ..job() },
            "retry_every \"18446744073709551615h\": too large",
        ),
        (JobConfig { materialize: vec![String::new()], ..job() }, "materialize \"\": view names must not be empty"),
        (JobConfig { name: " ".into(), ..job() }, "name \" \": must not be empty"),
        (
            JobConfig { cron: "10 20 * * 1-6".into(), ..job() },
            "cron \"10 20 * * 1-6\": has 5 fields but the seconds field comes first; expected \"sec min hour day-of-month month day-of-week [year]\", e.g. \"0 10 20 * * Mon-Sat\"",
        ),
    ];
    for (config, want) in cases {
        let name = config.name.clone();
        assert_eq!(job_error(config), format!("schedule job {name:?}: {want}"));
    }
    let until = job_error(JobConfig { retry_until: "11pm".into(), ..job() });
    assert!(
        until.starts_with("schedule job \"nightly\": retry_until \"11pm\": expected HH:MM between 00:00 and 23:59 ("),
        "{until}"
    );
}

#[test]
fn yaml_defaults_and_unknown_keys() {
    let config: ScheduleConfig = serde_norway::from_str("jobs:\n  - name: eod\n    materialize: [momentum]\n").unwrap();
    assert_eq!(config.timezone, "Asia/Kolkata");
    assert_eq!(
        config.jobs,
        vec![JobConfig { name: "eod".into(), materialize: vec!["momentum".into()], ..Default::default() }]
    );

    let typo = serde_norway::from_str::<ScheduleConfig>("jobs:\n  - name: eod\n    retry_evry: 5m\n").unwrap_err();
    assert!(typo.to_string().contains("retry_evry"), "{typo}");
    let top = serde_norway::from_str::<ScheduleConfig>("time_zone: UTC\n").unwrap_err();
    assert!(top.to_string().contains("time_zone"), "{top}");
}

#[derive(Debug, Clone, PartialEq)]
enum Call {
    Ingest(NaiveDate),
    Materialize(Vec<String>),
}

/// A runner that records calls, answers ingests from a script and can hold them on a gate.
struct FakeRunner {
    calls: Mutex<Vec<Call>>,
    /// Answers to the first ingest calls; later calls get `then`.
    script: Mutex<VecDeque<Result<IngestAttempt, ScheduleError>>>,
    then: IngestAttempt,
    /// How long each ingest takes.
    ingest_delay: Duration,
    /// When set, each ingest waits for a permit first.
    gate: Option<Arc<Semaphore>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    /// Counts calls so tests can wait for progress.
    progress: watch::Sender<usize>,
    /// Sent `true` from inside the first materialize, before it returns.
    shutdown_on_materialize: Option<watch::Sender<bool>>,
}

impl FakeRunner {
    fn new(script: Vec<Result<IngestAttempt, ScheduleError>>, then: IngestAttempt) -> Self {
        Self {
            calls: Mutex::new(Vec::new()),
            script: Mutex::new(script.into()),
            then,
            ingest_delay: Duration::ZERO,
            gate: None,
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            progress: watch::channel(0).0,
            shutdown_on_materialize: None,
        }
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    fn record(&self, call: Call) {
        self.calls.lock().unwrap().push(call);
        self.progress.send_modify(|n| *n += 1);
    }

    async fn wait_for_calls(&self, n: usize) {
        let mut progress = self.progress.subscribe();
        tokio::time::timeout(PATIENCE, progress.wait_for(|&seen| seen >= n))
            .await
            .unwrap_or_else(|_| panic!("fewer than {n} calls: {:?}", self.calls()))
            .unwrap();
    }
}

impl JobRunner for FakeRunner {
    fn ingest(&self, date: NaiveDate) -> BoxFuture<'_, Result<IngestAttempt, ScheduleError>> {
        async move {
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.max_in_flight.fetch_max(now, Ordering::SeqCst);
            self.record(Call::Ingest(date));
            if let Some(gate) = &self.gate {
                gate.acquire().await.unwrap().forget();
            }
            tokio::time::sleep(self.ingest_delay).await;
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            self.script.lock().unwrap().pop_front().unwrap_or(Ok(self.then))
        }
        .boxed()
    }

    fn materialize(&self, views: Vec<String>) -> BoxFuture<'_, Result<(), ScheduleError>> {
        async move {
            if let Some(shutdown) = &self.shutdown_on_materialize {
                shutdown.send_replace(true);
            }
            self.record(Call::Materialize(views));
            Ok(())
        }
        .boxed()
    }
}

/// A fixed-offset zone where it is now between 12:00 and 13:00, so a run's trade date cannot
/// change under the test and the default 23:45 cut-off is hours away.
fn zone_where_it_is_about_noon() -> String {
    let offset = 12 - i32::try_from(Utc::now().hour()).unwrap();
    // POSIX-style names: Etc/GMT-5 is five hours *ahead* of UTC.
    match offset {
        0 => "Etc/GMT".to_owned(),
        o if o > 0 => format!("Etc/GMT-{o}"),
        o => format!("Etc/GMT+{}", -o),
    }
}

/// `job` firing every second; its other settings are kept.
fn every_second(timezone: &str, job: JobConfig) -> ValidatedSchedule {
    let job = JobConfig { name: "test".into(), cron: "* * * * * *".into(), ..job };
    ScheduleConfig { timezone: timezone.into(), jobs: vec![job] }.validate().unwrap()
}

/// The default job, retrying every second.
fn quick_retries() -> JobConfig {
    JobConfig { retry_every: "1s".into(), ..JobConfig::default() }
}

/// The scheduler's logs in the test output (shown for failures), which is where a skipped fire or a
/// cut-off shows up.
fn show_logs() {
    let _ = tracing_subscriber::fmt().with_test_writer().with_max_level(tracing::Level::DEBUG).try_init();
}

fn start(schedule: ValidatedSchedule, runner: &Arc<FakeRunner>, shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
    show_logs();
    let runner: Arc<dyn JobRunner> = Arc::clone(runner) as Arc<dyn JobRunner>;
    tokio::spawn(run(schedule, runner, shutdown))
}

async fn finishes(handle: JoinHandle<()>) {
    tokio::time::timeout(PATIENCE, handle).await.expect("run() did not return").unwrap();
}

#[tokio::test]
async fn retries_until_loaded_then_materializes_once() {
    let tz = zone_where_it_is_about_noon();
    let today = Utc::now().with_timezone(&tz.parse::<Tz>().unwrap()).date_naive();
    let (stop, shutdown) = watch::channel(false);
    let mut fake =
        FakeRunner::new(vec![Ok(IngestAttempt::NotPublished), Ok(IngestAttempt::NotPublished)], IngestAttempt::Loaded);
    // Stopping from inside materialize makes the call count exact: no later fire can start.
    fake.shutdown_on_materialize = Some(stop);
    let fake = Arc::new(fake);
    let views = vec!["momentum".to_owned(), "volatility".to_owned()];
    let job = JobConfig { materialize: views.clone(), ..quick_retries() };
    let handle = start(every_second(&tz, job), &fake, shutdown);
    fake.wait_for_calls(4).await;
    finishes(handle).await;
    let ingest = Call::Ingest(today);
    assert_eq!(fake.calls(), vec![ingest.clone(), ingest.clone(), ingest, Call::Materialize(views)]);
}

#[tokio::test]
async fn ingest_errors_are_retried() {
    let tz = zone_where_it_is_about_noon();
    let (stop, shutdown) = watch::channel(false);
    let mut fake =
        FakeRunner::new(vec![Err(ScheduleError::Ingest("connection reset".into()))], IngestAttempt::AlreadyLoaded);
    fake.shutdown_on_materialize = Some(stop);
    let fake = Arc::new(fake);
    let handle = start(every_second(&tz, quick_retries()), &fake, shutdown);
    fake.wait_for_calls(3).await;
    finishes(handle).await;
    let calls = fake.calls();
    assert_eq!(calls.len(), 3, "{calls:?}");
    assert!(matches!(calls[..], [Call::Ingest(_), Call::Ingest(_), Call::Materialize(ref v)] if v.is_empty()));
}

#[tokio::test]
async fn a_holiday_is_not_retried_and_not_materialized() {
    let tz = zone_where_it_is_about_noon();
    let (stop, shutdown) = watch::channel(false);
    let fake = Arc::new(FakeRunner::new(vec![], IngestAttempt::Holiday));
    // An hour between retries: two ingest calls within the test's patience come from two fires,
    // never from a retry of one.
    let job = JobConfig { retry_every: "1h".into(), ..JobConfig::default() };
    let handle = start(every_second(&tz, job), &fake, shutdown);
    fake.wait_for_calls(2).await;
    stop.send_replace(true);
    finishes(handle).await;
    let calls = fake.calls();
    assert!(calls.iter().all(|c| matches!(c, Call::Ingest(_))), "a holiday materialized: {calls:?}");
    assert!(calls.len() >= 2, "{calls:?}");
}

#[tokio::test]
async fn past_cutoff_gives_up_without_materializing() {
    let tz = zone_where_it_is_about_noon();
    let (stop, shutdown) = watch::channel(false);
    let fake = Arc::new(FakeRunner::new(vec![], IngestAttempt::NotPublished));
    // The cut-off is midnight at the start of the fire date, long past; an hour's retry interval
    // means two ingest calls within the test's patience must come from two separate fires.
    let job = JobConfig { retry_until: "00:00".into(), retry_every: "1h".into(), ..JobConfig::default() };
    let schedule = every_second(&tz, job);
    let handle = start(schedule, &fake, shutdown);
    fake.wait_for_calls(2).await;
    stop.send_replace(true);
    finishes(handle).await;
    assert!(fake.calls().iter().all(|c| matches!(c, Call::Ingest(_))), "{:?}", fake.calls());
}

#[tokio::test]
async fn a_fire_during_a_run_is_skipped() {
    let tz = zone_where_it_is_about_noon();
    let (stop, shutdown) = watch::channel(false);
    let mut fake = FakeRunner::new(vec![], IngestAttempt::Loaded);
    // Longer than two cron periods, so fires land while a run is busy.
    fake.ingest_delay = Duration::from_millis(2500);
    let fake = Arc::new(fake);
    let handle = start(every_second(&tz, quick_retries()), &fake, shutdown);
    // Ingest, materialize, then the next run's ingest.
    fake.wait_for_calls(3).await;
    stop.send_replace(true);
    finishes(handle).await;
    assert_eq!(fake.max_in_flight.load(Ordering::SeqCst), 1);
    let calls = fake.calls();
    assert!(matches!(calls[..3], [Call::Ingest(_), Call::Materialize(_), Call::Ingest(_)]), "{calls:?}");
}

#[tokio::test]
async fn shutdown_while_sleeping_returns_promptly() {
    let (stop, shutdown) = watch::channel(false);
    let fake = Arc::new(FakeRunner::new(vec![], IngestAttempt::Loaded));
    // The default job fires once a day: run() is asleep when the signal comes.
    let handle = start(ScheduleConfig::default().validate().unwrap(), &fake, shutdown);
    tokio::task::yield_now().await;
    stop.send_replace(true);
    finishes(handle).await;
    assert!(fake.calls().is_empty());
}

#[tokio::test]
async fn dropped_sender_counts_as_shutdown() {
    let (stop, shutdown) = watch::channel(false);
    let fake = Arc::new(FakeRunner::new(vec![], IngestAttempt::Loaded));
    let handle = start(ScheduleConfig::default().validate().unwrap(), &fake, shutdown);
    drop(stop);
    finishes(handle).await;
}

#[tokio::test]
async fn shutdown_during_ingest_waits_for_it_then_skips_materialize() {
    let tz = zone_where_it_is_about_noon();
    let (stop, shutdown) = watch::channel(false);
    let gate = Arc::new(Semaphore::new(0));
    let mut fake = FakeRunner::new(vec![], IngestAttempt::Loaded);
    fake.gate = Some(Arc::clone(&gate));
    let fake = Arc::new(fake);
    let mut handle = start(every_second(&tz, quick_retries()), &fake, shutdown);
    fake.wait_for_calls(1).await;
    stop.send_replace(true);
    // The ingest is still held, so run() must still be waiting for it.
    assert!(tokio::time::timeout(Duration::from_millis(300), &mut handle).await.is_err());
    gate.add_permits(1);
    finishes(handle).await;
    assert!(matches!(fake.calls()[..], [Call::Ingest(_)]), "{:?}", fake.calls());
}
