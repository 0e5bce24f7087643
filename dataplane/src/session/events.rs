//! The SSE event buffers of a session ([`EventStore`]): events kept per stream so a client can
//! resume with `Last-Event-ID`, and live delivery to the attached connection.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use tokio::sync::mpsc;

/// Events kept per stream for resumption; older ones are dropped.
const MAX_EVENTS_PER_STREAM: usize = 1024;
/// Streams kept per session; the oldest finished one is evicted beyond this.
const MAX_STREAMS_PER_SESSION: usize = 64;
/// Live-delivery buffer per SSE connection: a client that falls this far behind is cut off
/// (it can resume from the buffer with `Last-Event-ID`).
pub const LIVE_BUFFER: usize = 256;
/// One SSE stream's buffered events.
struct StreamBuf {
    next_seq: u64,
    events: VecDeque<(u64, Arc<str>)>,
    live: Option<mpsc::Sender<(u64, Arc<str>)>>,
    done: bool,
}

#[derive(Default)]
pub struct EventStore {
    next_stream: u64,
    streams: HashMap<u64, StreamBuf>,
    order: VecDeque<u64>,
}

/// `<stream>-<seq>`: the SSE event id.
pub fn event_id(stream: u64, seq: u64) -> String {
    format!("{stream}-{seq}")
}

pub fn parse_event_id(s: &str) -> Option<(u64, u64)> {
    let (a, b) = s.trim().split_once('-')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// What attaching to a stream yields: events to replay, then live ones.
pub struct Attached {
    pub replay: Vec<(u64, Arc<str>)>,
    pub live: Option<mpsc::Receiver<(u64, Arc<str>)>>,
}

impl EventStore {
    pub fn open(&mut self) -> u64 {
        self.next_stream += 1;
        let id = self.next_stream;
        self.streams.insert(
            id,
            StreamBuf {
                next_seq: 0,
                events: VecDeque::new(),
                live: None,
                done: false,
            },
        );
        self.order.push_back(id);
        while self.order.len() > MAX_STREAMS_PER_SESSION {
            if let Some(old) = self.order.pop_front() {
                self.streams.remove(&old);
            }
        }
        id
    }

    /// Append an event; deliver it live if a connection is attached and keeping up.
    pub fn push(&mut self, stream: u64, data: Arc<str>) -> Option<u64> {
        let s = self.streams.get_mut(&stream)?;
        let seq = s.next_seq;
        s.next_seq += 1;
        s.events.push_back((seq, data.clone()));
        if s.events.len() > MAX_EVENTS_PER_STREAM {
            s.events.pop_front();
        }
        if let Some(live) = &s.live {
            if live.try_send((seq, data)).is_err() {
                // Slow or gone: detach; the client resumes from the buffer.
                s.live = None;
            }
        }
        Some(seq)
    }

    /// No more events on this stream; live receivers end after draining.
    pub fn finish(&mut self, stream: u64) {
        if let Some(s) = self.streams.get_mut(&stream) {
            s.done = true;
            s.live = None;
        }
    }

    /// Detach the live connection (the server closes the HTTP response but keeps buffering).
    pub fn detach(&mut self, stream: u64) {
        if let Some(s) = self.streams.get_mut(&stream) {
            s.live = None;
        }
    }

    /// Attach a connection: events after `after` (all if None), then live delivery unless done.
    pub fn attach(&mut self, stream: u64, after: Option<u64>) -> Option<Attached> {
        let s = self.streams.get_mut(&stream)?;
        let replay: Vec<_> = s
            .events
            .iter()
            .filter(|(seq, _)| after.is_none_or(|a| *seq > a))
            .cloned()
            .collect();
        let live = if s.done {
            None
        } else {
            let (tx, rx) = mpsc::channel(LIVE_BUFFER);
            s.live = Some(tx);
            Some(rx)
        };
        Some(Attached { replay, live })
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn event_store_replays_after_last_event_id() {
        let mut es = EventStore::default();
        let s = es.open();
        es.push(s, "a".into());
        es.push(s, "b".into());
        let at = es.attach(s, Some(0)).unwrap();
        assert_eq!(
            at.replay
                .iter()
                .map(|(_, d)| d.to_string())
                .collect::<Vec<_>>(),
            vec!["b"]
        );
        let mut live = at.live.unwrap();
        es.push(s, "c".into());
        assert_eq!(&*live.recv().await.unwrap().1, "c");
        es.finish(s);
        assert!(live.recv().await.is_none());
        assert_eq!(parse_event_id(&event_id(3, 9)), Some((3, 9)));
        assert!(es.attach(999, None).is_none());
    }
}
