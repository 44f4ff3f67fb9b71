//! Work on all cores whose results are still taken in order.
//!
//! Ingest decodes its sources in parallel, but which of two rows with one event id is
//! kept, the first line of a reject and the first price of a style all depend on the
//! order rows were read in; so the results are handed on in the order of their inputs,
//! whatever order the workers finish in.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::mpsc::sync_channel;

use crate::error::Result;

/// Runs `work` on each of `items` on `workers` threads and gives the results to
/// `consume` in the order of `items`. At most `in_flight` items are between the
/// producer and the consumer at once, which bounds memory whatever the item.
///
/// `items` is drawn on a thread of its own, so a slow source (a CSV reader) runs beside
/// the work. The first error `consume` returns stops everything and is returned.
pub(crate) fn map_in_order<I, R>(
    items: impl Iterator<Item = I> + Send,
    workers: usize,
    in_flight: usize,
    work: impl Fn(I) -> R + Sync,
    mut consume: impl FnMut(R) -> Result<()>,
) -> Result<()>
where
    I: Send,
    R: Send,
{
    let in_flight = in_flight.max(1);
    let (task_tx, task_rx) = sync_channel::<(usize, I)>(in_flight);
    let task_rx = Mutex::new(task_rx);
    std::thread::scope(|scope| {
        // A token for every item out; the producer waits for one, so neither queue
        // below ever holds more than `in_flight` and no send can block once the
        // consumer is gone.
        let (token_tx, token_rx) = sync_channel::<()>(in_flight);
        for _ in 0..in_flight {
            token_tx.send(()).expect("the receiver is here");
        }
        let (done_tx, done_rx) = sync_channel::<(usize, R)>(in_flight);
        scope.spawn(move || {
            for task in items.enumerate() {
                if token_rx.recv().is_err() || task_tx.send(task).is_err() {
                    return;
                }
            }
        });
        for _ in 0..workers.max(1) {
            let done_tx = done_tx.clone();
            let (task_rx, work) = (&task_rx, &work);
            scope.spawn(move || {
                loop {
                    let task = task_rx.lock().expect("no worker panicked").recv();
                    let Ok((i, item)) = task else { break };
                    if done_tx.send((i, work(item))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(done_tx);
        let mut waiting = BTreeMap::new();
        let mut next = 0;
        // Ends when every worker is done, or at the first error; then the channels
        // are dropped, which ends the producer and the workers before the scope joins.
        for (i, result) in &done_rx {
            waiting.insert(i, result);
            while let Some(result) = waiting.remove(&next) {
                next += 1;
                consume(result)?;
                let _ = token_tx.send(());
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::EngineError;

    #[test]
    fn results_come_in_input_order_whatever_order_work_finishes_in() {
        let mut seen = Vec::new();
        map_in_order(
            0..200u64,
            4,
            8,
            |i| {
                // Early items finish last.
                std::thread::sleep(std::time::Duration::from_micros((200 - i) * 20));
                i * 2
            },
            |r| {
                seen.push(r);
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(seen, (0..200).map(|i| i * 2).collect::<Vec<_>>());
    }

    #[test]
    fn an_error_stops_the_producer_and_is_returned() {
        let drawn = std::sync::atomic::AtomicUsize::new(0);
        let items = (0..1_000_000).inspect(|_| {
            drawn.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        });
        let err = map_in_order(
            items,
            2,
            4,
            |i| i,
            |i| {
                if i == 10 {
                    Err(EngineError::WriterFailed)
                } else {
                    Ok(())
                }
            },
        )
        .unwrap_err();
        assert!(matches!(err, EngineError::WriterFailed), "{err}");
        let drawn = drawn.load(std::sync::atomic::Ordering::Relaxed);
        assert!(drawn < 100, "drawing stopped near the error: {drawn}");
    }
}
