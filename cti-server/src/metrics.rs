//! Prometheus metrics: `GET /metrics` in the text exposition format, version 0.0.4.
//!
//! The figures are counted where things happen, in atomics their owners bump without locks or
//! allocation: the SIP task counts messages and transaction timeouts, call actors count calls,
//! the media shards count RTP, the store writer times its writes. A scrape reads them, asks
//! the ACD for its queues and agents, and writes the text.
//!
//! The text is written here (a few dozen lines: `# HELP`, `# TYPE`, samples with escaped
//! label values): the metrics crates keep their own registries of their own metric types, and
//! these values already live in the planes' atomics, several in the media crate, which must
//! not depend on a metrics library. The tests read the output back with the Prometheus
//! project's own parser (Python `prometheus_client`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use crate::sip::types::Method;

/// SIP methods with a label of their own; anything else counts as `other`.
pub const METHODS: [&str; 15] = [
    "INVITE",
    "ACK",
    "BYE",
    "CANCEL",
    "OPTIONS",
    "REGISTER",
    "INFO",
    "REFER",
    "UPDATE",
    "PRACK",
    "SUBSCRIBE",
    "NOTIFY",
    "MESSAGE",
    "PUBLISH",
    "other",
];

fn method_index(m: &Method) -> usize {
    match m {
        Method::Invite => 0,
        Method::Ack => 1,
        Method::Bye => 2,
        Method::Cancel => 3,
        Method::Options => 4,
        Method::Register => 5,
        Method::Info => 6,
        Method::Refer => 7,
        Method::Update => 8,
        Method::Prack => 9,
        Method::Subscribe => 10,
        Method::Notify => 11,
        Method::Message => 12,
        Method::Publish => 13,
        Method::Other(_) => 14,
    }
}

/// Which way a message or call went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Way {
    In = 0,
    Out = 1,
}

/// SIP messages by direction, method and (responses) class.
#[derive(Debug, Default)]
pub struct SipCounters {
    requests: [[AtomicU64; METHODS.len()]; 2],
    /// `[way][method][class - 1]` for classes 1xx to 6xx.
    responses: [[[AtomicU64; 6]; METHODS.len()]; 2],
}

impl SipCounters {
    pub fn request(&self, way: Way, method: &Method) {
        self.requests[way as usize][method_index(method)].fetch_add(1, Ordering::Relaxed);
    }

    /// A response to a request of `method` (its CSeq method).
    pub fn response(&self, way: Way, method: &Method, code: u16) {
        let class = (code / 100).clamp(1, 6) as usize - 1;
        self.responses[way as usize][method_index(method)][class].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a message by its kind.
    pub fn message(&self, way: Way, message: &crate::sip::message::SipMessage) {
        use crate::sip::message::{SipHeaders, SipMessage};
        match message {
            SipMessage::Request(r) => self.request(way, &r.method),
            SipMessage::Response(r) => {
                let method = r
                    .cseq()
                    .map(|c| c.method)
                    .unwrap_or(Method::Other(String::new()));
                self.response(way, &method, r.code);
            }
        }
    }
}

/// Calls by direction as they started.
#[derive(Debug, Default)]
pub struct CallCounters {
    active: [AtomicI64; 2],
    started: AtomicU64,
    /// Ended calls by (direction, end cause).
    ended: Mutex<BTreeMap<(&'static str, String), u64>>,
}

fn direction(outbound: bool) -> (usize, &'static str) {
    if outbound {
        (1, "outbound")
    } else {
        (0, "inbound")
    }
}

impl CallCounters {
    pub fn started(&self, outbound: bool) {
        self.active[direction(outbound).0].fetch_add(1, Ordering::Relaxed);
        self.started.fetch_add(1, Ordering::Relaxed);
    }

    pub fn ended(&self, outbound: bool, cause: &str) {
        let (i, dir) = direction(outbound);
        self.active[i].fetch_sub(1, Ordering::Relaxed);
        let mut ended = self.ended.lock().unwrap_or_else(|e| e.into_inner());
        *ended.entry((dir, cause.to_string())).or_default() += 1;
    }

    pub fn total_started(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
    }
}

/// A histogram with fixed upper bounds, in seconds (or the metric's unit).
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Non-cumulative counts per bucket; the last one is `+Inf`.
    counts: Vec<AtomicU64>,
    /// Sum of the observations in millionths of the unit.
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, value: f64) {
        let i = self
            .bounds
            .iter()
            .position(|b| value <= *b)
            .unwrap_or(self.bounds.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add((value.max(0.0) * 1e6) as u64, Ordering::Relaxed);
    }

    pub fn observe_duration(&self, d: Duration) {
        self.observe(d.as_secs_f64());
    }

    /// `(cumulative buckets with their bounds, sum, count)`.
    fn snapshot(&self) -> (Vec<(f64, u64)>, f64, u64) {
        let mut acc = 0;
        let mut out = Vec::with_capacity(self.counts.len());
        for (i, c) in self.counts.iter().enumerate() {
            acc += c.load(Ordering::Relaxed);
            out.push((self.bounds.get(i).copied().unwrap_or(f64::INFINITY), acc));
        }
        (
            out,
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
            acc,
        )
    }
}

/// Everything the planes count.
#[derive(Debug)]
pub struct Metrics {
    pub sip: SipCounters,
    pub calls: CallCounters,
    /// Time one batch of the store writer took (one transaction).
    pub db_write: Histogram,
    pub db_write_failures: AtomicU64,
    /// Bytes of closed recordings and tracks, as indexed.
    pub recording_bytes: AtomicU64,
    /// SIP connections over WebSocket (RFC 7118) open now.
    pub sip_websockets: AtomicI64,
    /// SIP connections over TLS open now.
    pub sip_tls_connections: AtomicI64,
    /// Calls started per second over the last [`RATE_WINDOW`] seconds, in thousandths.
    calls_per_second_milli: AtomicU64,
    rate_samples: Mutex<std::collections::VecDeque<u64>>,
}

/// Seconds the calls-per-second figure averages over.
pub const RATE_WINDOW: usize = 10;

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            sip: SipCounters::default(),
            calls: CallCounters::default(),
            db_write: Histogram::new(&[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0]),
            db_write_failures: AtomicU64::new(0),
            recording_bytes: AtomicU64::new(0),
            sip_websockets: AtomicI64::new(0),
            sip_tls_connections: AtomicI64::new(0),
            calls_per_second_milli: AtomicU64::new(0),
            rate_samples: Mutex::new(std::collections::VecDeque::new()),
        }
    }
}

impl Metrics {
    /// Takes this second's count of started calls (call once a second).
    pub fn sample_call_rate(&self) {
        let now = self.calls.total_started();
        let mut s = self.rate_samples.lock().unwrap_or_else(|e| e.into_inner());
        s.push_back(now);
        while s.len() > RATE_WINDOW + 1 {
            s.pop_front();
        }
        let oldest = *s.front().unwrap_or(&now);
        let secs = (s.len().saturating_sub(1)).max(1) as u64;
        self.calls_per_second_milli
            .store((now - oldest) * 1000 / secs, Ordering::Relaxed);
    }

    pub fn calls_per_second(&self) -> f64 {
        self.calls_per_second_milli.load(Ordering::Relaxed) as f64 / 1000.0
    }
}

/// The ACD's view at scrape time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FloorFigures {
    /// Per queue: name, callers waiting, the longest wait.
    pub queues: Vec<(String, usize, Option<Duration>)>,
    /// Agents by state name (`available`, `on_break`, ...), every state present.
    pub agents: BTreeMap<&'static str, usize>,
}

/// Writes the text exposition format.
pub struct Exposition {
    out: String,
}

impl Default for Exposition {
    fn default() -> Self {
        Self::new()
    }
}

impl Exposition {
    pub fn new() -> Exposition {
        Exposition {
            out: String::with_capacity(16 * 1024),
        }
    }

    /// `# HELP` and `# TYPE` for a metric family.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    /// One sample.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"");
                for c in v.chars() {
                    match c {
                        '\\' => self.out.push_str("\\\\"),
                        '"' => self.out.push_str("\\\""),
                        '\n' => self.out.push_str("\\n"),
                        c => self.out.push(c),
                    }
                }
                self.out.push('"');
            }
            self.out.push('}');
        }
        self.out.push(' ');
        push_value(&mut self.out, value);
        self.out.push('\n');
    }

    /// A family with one unlabelled sample.
    pub fn single(&mut self, name: &str, kind: &str, help: &str, value: f64) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }

    pub fn histogram(&mut self, name: &str, help: &str, h: &Histogram) {
        let (buckets, sum, count) = h.snapshot();
        self.histogram_of(name, help, buckets, sum, count);
    }

    /// A histogram from its cumulative buckets `(upper bound, count)` (the last `+Inf`).
    pub fn histogram_of(
        &mut self,
        name: &str,
        help: &str,
        buckets: Vec<(f64, u64)>,
        sum: f64,
        count: u64,
    ) {
        self.family(name, "histogram", help);
        let bucket = format!("{name}_bucket");
        for (le, n) in buckets {
            let le = if le.is_infinite() {
                "+Inf".to_string()
            } else {
                le.to_string()
            };
            self.sample(&bucket, &[("le", &le)], n as f64);
        }
        self.sample(&format!("{name}_sum"), &[], sum);
        self.sample(&format!("{name}_count"), &[], count as f64);
    }

    pub fn finish(self) -> String {
        self.out
    }
}

fn push_value(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        let _ = write!(out, "{}", v as i64);
    } else {
        let _ = write!(out, "{v}");
    }
}

/// Everything a scrape reads besides [`Metrics`].
pub struct Sources<'a> {
    pub metrics: &'a Metrics,
    pub sip: &'a crate::sip::service::SipHealth,
    pub media_clock: &'a media::engine::ClockStats,
    pub media: &'a media::engine::MediaCounters,
    pub media_dropped_events: u64,
    pub recording_failures: u64,
    pub floor: Option<FloorFigures>,
    pub cti_sockets: usize,
}

/// The whole `/metrics` page.
pub fn render(s: &Sources) -> String {
    let mut e = Exposition::new();
    let m = s.metrics;
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;

    // Calls.
    e.family(
        "cti_calls_active",
        "gauge",
        "Calls in progress, by direction (as the call started).",
    );
    for (i, dir) in ["inbound", "outbound"].iter().enumerate() {
        let v = m.calls.active[i].load(Ordering::Relaxed).max(0);
        e.sample("cti_calls_active", &[("direction", dir)], v as f64);
    }
    e.family(
        "cti_calls_total",
        "counter",
        "Calls ended, by direction and end cause.",
    );
    {
        let ended = m.calls.ended.lock().unwrap_or_else(|p| p.into_inner());
        for ((dir, cause), n) in ended.iter() {
            e.sample(
                "cti_calls_total",
                &[("direction", dir), ("end_cause", cause)],
                *n as f64,
            );
        }
    }
    e.single(
        "cti_calls_started_total",
        "counter",
        "Calls started (inbound and outbound).",
        m.calls.total_started() as f64,
    );
    e.single(
        "cti_calls_per_second",
        "gauge",
        "Calls started per second, averaged over the last 10 seconds.",
        m.calls_per_second(),
    );

    // Queues and agents.
    if let Some(floor) = &s.floor {
        e.family(
            "cti_queue_waiting",
            "gauge",
            "Callers waiting in the queue.",
        );
        for (q, n, _) in &floor.queues {
            e.sample("cti_queue_waiting", &[("queue", q)], *n as f64);
        }
        e.family(
            "cti_queue_longest_wait_seconds",
            "gauge",
            "How long the queue's longest-waiting caller has waited (0 when none waits).",
        );
        for (q, _, longest) in &floor.queues {
            e.sample(
                "cti_queue_longest_wait_seconds",
                &[("queue", q)],
                longest.map_or(0.0, |d| d.as_secs_f64()),
            );
        }
        e.family("cti_agents", "gauge", "Agents by ACD state.");
        for (state, n) in &floor.agents {
            e.sample("cti_agents", &[("state", state)], *n as f64);
        }
    }

    // SIP.
    e.family(
        "cti_sip_requests_total",
        "counter",
        "SIP requests received (in) and sent (out), by method.",
    );
    for (w, way) in ["in", "out"].iter().enumerate() {
        for (i, method) in METHODS.iter().enumerate() {
            let n = m.sip.requests[w][i].load(Ordering::Relaxed);
            if n > 0 {
                e.sample(
                    "cti_sip_requests_total",
                    &[("direction", way), ("method", method)],
                    n as f64,
                );
            }
        }
    }
    e.family(
        "cti_sip_responses_total",
        "counter",
        "SIP responses received (in) and sent (out), by the request's method and the class.",
    );
    for (w, way) in ["in", "out"].iter().enumerate() {
        for (i, method) in METHODS.iter().enumerate() {
            for (c, class) in ["1xx", "2xx", "3xx", "4xx", "5xx", "6xx"]
                .iter()
                .enumerate()
            {
                let n = m.sip.responses[w][i][c].load(Ordering::Relaxed);
                if n > 0 {
                    e.sample(
                        "cti_sip_responses_total",
                        &[("direction", way), ("method", method), ("class", class)],
                        n as f64,
                    );
                }
            }
        }
    }
    e.single(
        "cti_sip_malformed_total",
        "counter",
        "SIP messages that failed to parse or validate.",
        load(&s.sip.malformed),
    );
    e.family(
        "cti_sip_transaction_timeouts_total",
        "counter",
        "SIP transactions that timed out: no response or no ACK for an error (Timer B, F, H) \
         or no ACK for a 2xx (Timer L).",
    );
    e.sample(
        "cti_sip_transaction_timeouts_total",
        &[("kind", "transaction")],
        load(&s.sip.client_timeouts),
    );
    e.sample(
        "cti_sip_transaction_timeouts_total",
        &[("kind", "ack")],
        load(&s.sip.ack_timeouts),
    );
    e.single(
        "cti_sip_transactions",
        "gauge",
        "SIP transactions in progress.",
        load(&s.sip.transactions),
    );
    e.single(
        "cti_sip_registrations",
        "gauge",
        "Registered contact bindings.",
        load(&s.sip.registrations),
    );
    e.family(
        "cti_sip_connections",
        "gauge",
        "Open SIP connections by transport.",
    );
    e.sample(
        "cti_sip_connections",
        &[("transport", "tcp")],
        load(&s.sip.tcp_connections),
    );
    e.sample(
        "cti_sip_connections",
        &[("transport", "tls")],
        m.sip_tls_connections.load(Ordering::Relaxed).max(0) as f64,
    );
    e.sample(
        "cti_sip_connections",
        &[("transport", "ws")],
        m.sip_websockets.load(Ordering::Relaxed).max(0) as f64,
    );

    // Media.
    e.family(
        "cti_rtp_packets_total",
        "counter",
        "RTP packets received (in) and sent (out) on every media leg, and lost on the way in \
         (counted when the legs report, every few seconds and at their end).",
    );
    e.sample(
        "cti_rtp_packets_total",
        &[("direction", "in")],
        load(&s.media.packets_received),
    );
    e.sample(
        "cti_rtp_packets_total",
        &[("direction", "out")],
        load(&s.media.packets_sent),
    );
    e.single(
        "cti_rtp_packets_lost_total",
        "counter",
        "RTP packets lost on the way to the server (RFC 3550 cumulative loss).",
        load(&s.media.packets_lost),
    );
    {
        let mut acc = 0;
        let buckets: Vec<(f64, u64)> = s
            .media
            .jitter_buckets
            .iter()
            .enumerate()
            .map(|(i, c)| {
                acc += c.load(Ordering::Relaxed);
                let le = media::engine::JITTER_BOUNDS_S
                    .get(i)
                    .copied()
                    .unwrap_or(f64::INFINITY);
                (le, acc)
            })
            .collect();
        e.histogram_of(
            "cti_rtp_jitter_seconds",
            "Interarrival jitter of received streams (RFC 3550 A.8), one observation per leg \
             report.",
            buckets,
            s.media.jitter_sum_us.load(Ordering::Relaxed) as f64 / 1e6,
            acc,
        );
    }
    e.single(
        "cti_media_legs",
        "gauge",
        "Media legs (RTP and WebRTC) open now.",
        s.media.legs.load(Ordering::Relaxed).max(0) as f64,
    );
    e.single(
        "cti_media_clock_steps_total",
        "counter",
        "Media clock steps (each sends its legs' frames).",
        load(&s.media_clock.steps),
    );
    e.single(
        "cti_media_clock_late_steps_total",
        "counter",
        "Media clock steps that ran more than 2 ms late.",
        load(&s.media_clock.late_over_2ms),
    );
    e.single(
        "cti_media_dropped_events_total",
        "counter",
        "Media events dropped because the signalling side did not take them in time.",
        s.media_dropped_events as f64,
    );

    // Recording.
    e.single(
        "cti_recording_bytes_total",
        "counter",
        "Bytes of call recordings and supervisor tracks written and indexed.",
        load(&m.recording_bytes),
    );
    e.single(
        "cti_recording_failures_total",
        "counter",
        "Recordings the disk stopped or did not let start (the calls went on).",
        s.recording_failures as f64,
    );

    // Store.
    e.histogram(
        "cti_db_write_seconds",
        "Time the store writer took per batch of writes from the call path (one transaction).",
        &m.db_write,
    );
    e.single(
        "cti_db_write_failures_total",
        "counter",
        "Batches of writes the database refused.",
        load(&m.db_write_failures),
    );

    // Consoles.
    e.single(
        "cti_websocket_clients",
        "gauge",
        "CTI WebSockets of logged-in users open now (consoles).",
        s.cti_sockets as f64,
    );
    e.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped_and_values_formatted() {
        let mut e = Exposition::new();
        e.family("x_total", "counter", "help with \\ and\nnewline");
        e.sample("x_total", &[("a", "q\"uo\\te\n")], 3.0);
        e.sample("x_total", &[("a", "b")], 0.25);
        e.sample("x_total", &[], f64::INFINITY);
        let out = e.finish();
        assert_eq!(
            out,
            "# HELP x_total help with \\\\ and\\nnewline\n# TYPE x_total counter\n\
             x_total{a=\"q\\\"uo\\\\te\\n\"} 3\nx_total{a=\"b\"} 0.25\nx_total +Inf\n"
        );
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::new(&[0.01, 0.1]);
        for v in [0.005, 0.05, 0.05, 3.0] {
            h.observe(v);
        }
        let mut e = Exposition::new();
        e.histogram("t_seconds", "t", &h);
        let out = e.finish();
        assert!(out.contains("t_seconds_bucket{le=\"0.01\"} 1\n"), "{out}");
        assert!(out.contains("t_seconds_bucket{le=\"0.1\"} 3\n"), "{out}");
        assert!(out.contains("t_seconds_bucket{le=\"+Inf\"} 4\n"), "{out}");
        assert!(out.contains("t_seconds_sum 3.105\n"), "{out}");
        assert!(out.contains("t_seconds_count 4\n"), "{out}");
    }

    #[test]
    fn sip_messages_count_by_method_and_class() {
        let s = SipCounters::default();
        s.request(Way::In, &Method::Invite);
        s.request(Way::In, &Method::Other("FOO".into()));
        s.response(Way::Out, &Method::Invite, 180);
        s.response(Way::Out, &Method::Invite, 200);
        s.response(Way::Out, &Method::Invite, 200);
        s.response(Way::In, &Method::Bye, 999);
        assert_eq!(s.requests[0][0].load(Ordering::Relaxed), 1);
        assert_eq!(s.requests[0][14].load(Ordering::Relaxed), 1);
        assert_eq!(s.responses[1][0][0].load(Ordering::Relaxed), 1);
        assert_eq!(s.responses[1][0][1].load(Ordering::Relaxed), 2);
        // Out of range codes are clamped into 6xx rather than lost.
        assert_eq!(s.responses[0][2][5].load(Ordering::Relaxed), 1);
    }

    #[test]
    fn call_rate_averages_over_the_window() {
        let m = Metrics::default();
        m.sample_call_rate();
        for _ in 0..20 {
            m.calls.started(false);
        }
        m.sample_call_rate();
        // 20 calls in the one second between the two samples.
        assert_eq!(m.calls_per_second(), 20.0);
        for _ in 0..RATE_WINDOW {
            m.sample_call_rate();
        }
        // A window later with no new calls: the rate is back to 0.
        assert_eq!(m.calls_per_second(), 0.0);
        m.calls.ended(false, "caller_hangup");
        assert_eq!(m.calls.active[0].load(Ordering::Relaxed), 19);
    }
}
