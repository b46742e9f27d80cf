//! Lead database figures (issue 7's targets), on an SQLite file in a temporary directory:
//!
//! - importing 100,000 rows (the import path's store part: duplicate check by phone and
//!   insert, one transaction) — target < 30 s;
//! - caller number → lead with 1,000,000 leads: 20,000 lookups of random callers, spelled
//!   nationally (so the E.164 fallback runs too), p50 and p99 — target p99 < 2 ms.
//!
//! Run with `cargo bench -p cti-server --bench leads`; it prints the figures.

use std::time::{Duration, Instant};

use cti_server::store::Store;
use cti_server::store::crm::{DuplicateMode, LeadDraft};

const IMPORT_ROWS: usize = 100_000;
const TOTAL_LEADS: usize = 1_000_000;
const LOOKUPS: usize = 20_000;

fn draft(i: usize) -> (usize, LeadDraft) {
    (
        i + 2,
        LeadDraft {
            name: format!("Lead {i}"),
            company: Some(format!("Company {}", i % 997)),
            grade: Some(["H", "A", "B", "C"][i % 4].to_string()),
            source: Some("web".into()),
            owner_agent: Some(format!("{}", 1001 + i % 50)),
            phones: vec![format!("+4930{:08}", i), format!("+49170{:07}", i)],
            ..LeadDraft::default()
        },
    )
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(&format!("sqlite://{}/bench.db", dir.path().display()))
            .await
            .expect("store");

        let rows: Vec<_> = (0..IMPORT_ROWS).map(draft).collect();
        let t = Instant::now();
        let report = store
            .import_leads(&rows, DuplicateMode::Skip, "bench")
            .await
            .expect("import");
        let import = t.elapsed();
        assert_eq!(report.created.len(), IMPORT_ROWS);
        println!(
            "import: {IMPORT_ROWS} rows in {:.1} s ({:.0} rows/s; target < 30 s)",
            import.as_secs_f64(),
            IMPORT_ROWS as f64 / import.as_secs_f64()
        );

        let t = Instant::now();
        for chunk in (IMPORT_ROWS..TOTAL_LEADS).collect::<Vec<_>>().chunks(IMPORT_ROWS) {
            let rows: Vec<_> = chunk.iter().map(|&i| draft(i)).collect();
            store
                .import_leads(&rows, DuplicateMode::Add, "bench")
                .await
                .expect("fill");
        }
        println!(
            "filled to {TOTAL_LEADS} leads in {:.1} s more",
            t.elapsed().as_secs_f64()
        );

        let mut times = Vec::with_capacity(LOOKUPS);
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut found = 0;
        for _ in 0..LOOKUPS {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let i = (x % TOTAL_LEADS as u64) as usize;
            // National spelling of the alternate (mobile) number: the E.164 fallback runs.
            let caller = format!("0170{:07}", i);
            let t = Instant::now();
            let lead = store.lead_by_caller(&caller, "49").await.expect("lookup");
            times.push(t.elapsed());
            found += usize::from(lead.is_some());
        }
        assert_eq!(found, LOOKUPS, "every caller is a lead");
        times.sort();
        let pct = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "lookup with {TOTAL_LEADS} leads: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms over {LOOKUPS} callers (target p99 < 2 ms)",
            ms(pct(0.50)),
            ms(pct(0.99)),
            ms(*times.last().unwrap())
        );
    });
}
