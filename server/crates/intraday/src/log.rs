//! The one log writer (group commit) and the live engine behind it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use bhavstore_lake::bars::{Applied, Bar, wal};
use bhavstore_storage::{Created, paths};

use crate::{Changes, Inner, IntradayError, PushOutcome, Request};

fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// Collects the pushes that arrive while one write is prepared (up to the flush interval) and
/// commits them together.
pub(crate) async fn writer(inner: Arc<Inner>, mut rx: mpsc::Receiver<Request>, live: mpsc::UnboundedSender<Changes>) {
    let flush = Duration::from_millis(inner.cfg.flush_interval_ms);
    while let Some(first) = rx.recv().await {
        let mut rows = first.parsed.bars.len();
        let mut group = vec![first];
        let deadline = tokio::time::Instant::now() + flush;
        // `timeout_at` polls the channel first, so with a zero interval this still takes every
        // push already waiting.
        while rows < inner.cfg.max_group_rows {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(r)) => {
                    rows += r.parsed.bars.len();
                    group.push(r);
                }
                _ => break,
            }
        }
        commit(&inner, group, &live).await;
    }
    tracing::debug!("intraday log writer stopped");
}

async fn commit(inner: &Inner, group: Vec<Request>, live: &mpsc::UnboundedSender<Changes>) {
    let now = now_micros();
    let mut bars: Vec<Bar> = Vec::new();
    let mut rejected = Vec::new();
    let mut outcomes = Vec::with_capacity(group.len());
    let mut replies = Vec::with_capacity(group.len());
    let current_seq;
    {
        let Ok(st) = inner.state.read() else {
            for r in group {
                let _ = r.reply.send(Err(IntradayError::Poisoned));
            }
            return;
        };
        current_seq = st.seq;
        // Keys written earlier in this group, to order a group's own repeats and corrections.
        let mut in_group: HashMap<(Arc<str>, i64), usize> = HashMap::new();
        for req in group {
            let mut o = PushOutcome {
                accepted: 0,
                new: 0,
                duplicates: 0,
                corrections: 0,
                rejected: req.parsed.rejected.iter().map(|r| (r.index, r.reason.clone())).collect(),
                seq: 0,
                durable_at: 0,
            };
            for (_, mut bar) in req.parsed.bars {
                bar.received_at = now;
                let key = (Arc::clone(&bar.instrument), bar.ts);
                let previous = match in_group.get(&key) {
                    Some(i) => Some(&bars[*i]),
                    None => st.store.get(&bar.instrument, bar.ts),
                };
                o.accepted += 1;
                let (applied, revision) = Applied::against(previous, &bar);
                match applied {
                    Applied::New => o.new += 1,
                    Applied::Duplicate => {
                        o.duplicates += 1;
                        continue;
                    }
                    Applied::Corrected(_) => o.corrections += 1,
                }
                bar.revision = revision;
                in_group.insert(key, bars.len());
                bars.push(bar);
            }
            rejected.extend(req.parsed.rejected.into_iter().map(|mut r| {
                r.received_at = now;
                r
            }));
            outcomes.push(o);
            replies.push(req.reply);
        }
    }
    let finish = |outcomes: Vec<PushOutcome>, replies: Vec<tokio::sync::oneshot::Sender<_>>, seq: u64| {
        let at = now_micros();
        for (mut o, reply) in outcomes.into_iter().zip(replies) {
            o.seq = seq;
            o.durable_at = at;
            let _ = reply.send(Ok(o));
        }
    };
    if bars.is_empty() && rejected.is_empty() {
        // Only repeats: already durable.
        finish(outcomes, replies, current_seq);
        return;
    }
    let seq = current_seq + 1;
    let written = match wal::encode(&bars, &rejected) {
        Ok(bytes) => match inner.storage.put_create(&paths::intraday_wal_segment(seq), bytes).await {
            Ok(Created::New) => Ok(()),
            Ok(Created::AlreadyExisted) => Err(IntradayError::Fenced { seq }),
            Err(e) => Err(IntradayError::Storage(e)),
        },
        Err(e) => Err(IntradayError::Lake(e)),
    };
    if let Err(e) = written {
        tracing::error!(seq, bars = bars.len(), error = %e, "intraday log write failed; pushes refused");
        let message = e.to_string();
        for reply in replies {
            let err = match &e {
                IntradayError::Fenced { seq } => IntradayError::Fenced { seq: *seq },
                _ => IntradayError::LogWrite(message.clone()),
            };
            let _ = reply.send(Err(err));
        }
        return;
    }
    let mut first: HashMap<Arc<str>, i64> = HashMap::new();
    for b in &bars {
        first.entry(Arc::clone(&b.instrument)).and_modify(|t| *t = (*t).min(b.ts)).or_insert(b.ts);
    }
    match inner.state.write() {
        Ok(mut st) => {
            for b in bars {
                st.store.apply(b);
            }
            for r in rejected {
                st.store.push_rejected(r);
            }
            st.seq = seq;
        }
        Err(_) => {
            for reply in replies {
                let _ = reply.send(Err(IntradayError::Poisoned));
            }
            return;
        }
    }
    inner.durable.send_replace(seq);
    finish(outcomes, replies, seq);
    // Through the engine even when no bar changed (only refusals), so `computed` moves in log
    // order and never past a commit still being computed.
    let _ = live.send(Changes { seq, first });
}

/// Recomputes the live views after each commit, taking every commit waiting at once.
pub(crate) async fn live_engine(inner: Arc<Inner>, mut rx: mpsc::UnboundedReceiver<Changes>) {
    while let Some(c) = rx.recv().await {
        let mut seq = c.seq;
        let mut changed = c.first;
        while let Ok(more) = rx.try_recv() {
            seq = more.seq;
            for (k, t) in more.first {
                changed.entry(k).and_modify(|x| *x = (*x).min(t)).or_insert(t);
            }
        }
        let listening = inner.events.receiver_count() > 0;
        for view in inner.views.iter().filter(|_| !changed.is_empty()) {
            match view.update(&inner.state, &changed, listening, inner.cfg.compute_instruments).await {
                Ok(events) => {
                    for e in events {
                        let _ = inner.events.send(e);
                    }
                }
                Err(e) => tracing::error!(view = view.name(), seq, error = %e, "live feature computation failed"),
            }
        }
        inner.computed.send_replace(seq);
    }
}
