//! The IVR in virtual time: every node type, validation errors, reload, the shipped flows, and
//! a property test that no input sequence leaves a session stuck or with two endings.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use proptest::prelude::*;

use super::*;

// --- fixtures ---

/// A flow directory in a temp dir, with a few short valid prompts.
struct Dir {
    tmp: tempfile::TempDir,
}

const PROMPTS: [&str; 6] = ["hello", "menu", "invalid", "noinput", "bye", "hold"];

impl Dir {
    fn new() -> Dir {
        let tmp = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(tmp.path().join("p")).expect("prompt dir");
        for p in PROMPTS {
            write_wav(&tmp.path().join(format!("p/{p}.wav")));
        }
        Dir { tmp }
    }

    fn with(flows: &[(&str, &str)]) -> Dir {
        let d = Dir::new();
        for (name, text) in flows {
            d.flow(name, text);
        }
        d
    }

    fn flow(&self, name: &str, text: &str) {
        std::fs::write(self.path().join(format!("{name}.toml")), text).expect("write flow");
    }

    fn path(&self) -> &Path {
        self.tmp.path()
    }

    /// The absolute path a flow's `p/NAME.wav` resolves to.
    fn prompt(&self, name: &str) -> PathBuf {
        std::fs::canonicalize(self.path())
            .unwrap()
            .join(format!("p/{name}.wav"))
    }

    fn load(&self) -> Arc<FlowSet> {
        Arc::new(FlowSet::load_dir(self.path()).unwrap_or_else(|e| panic!("{e:#?}")))
    }

    fn errors(&self, ctx: &ValidationContext) -> Vec<FlowError> {
        match FlowSet::load_dir_with(self.path(), ctx) {
            Ok(_) => panic!("the set loaded, errors were expected"),
            Err(e) => e,
        }
    }
}

fn write_wav(path: &Path) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).expect("create wav");
    for i in 0..800 {
        w.write_sample(((i % 40) as i16 - 20) * 100)
            .expect("sample");
    }
    w.finalize().expect("finalize wav");
}

/// Wednesday 2026-01-14 10:00 in Berlin (09:00 UTC): open in every test schedule.
fn wednesday_10_berlin() -> SystemTime {
    wall("2026-01-14T09:00:00Z")
}

fn wall(utc: &str) -> SystemTime {
    SystemTime::from(utc.parse::<jiff::Timestamp>().expect("test timestamp"))
}

/// A session with a virtual clock.
struct Call {
    s: Session,
    mono: Instant,
    wall: SystemTime,
}

impl Call {
    fn start(set: &Arc<FlowSet>, flow: &str) -> Call {
        Call::start_at(set, flow, "+4930111", wednesday_10_berlin())
    }

    fn start_at(set: &Arc<FlowSet>, flow: &str, caller: &str, wall: SystemTime) -> Call {
        let mono = Instant::now();
        let s = Session::new(
            set.clone(),
            flow,
            CallContext {
                caller: caller.into(),
                dialed: "5551000".into(),
            },
            Now { mono, wall },
        )
        .expect("flow exists");
        Call { s, mono, wall }
    }

    fn now(&self) -> Now {
        Now {
            mono: self.mono,
            wall: self.wall,
        }
    }

    fn actions(&mut self) -> Vec<Action> {
        std::iter::from_fn(|| self.s.poll_action()).collect()
    }

    fn event(&mut self, e: Event) -> Vec<Action> {
        let now = self.now();
        self.s.handle(e, now);
        self.actions()
    }

    fn digits(&mut self, keys: &str) -> Vec<Action> {
        let mut out = Vec::new();
        for k in keys.chars() {
            out.extend(self.event(Event::Digit(k)));
        }
        out
    }

    fn finished(&mut self) -> Vec<Action> {
        self.event(Event::PromptFinished)
    }

    fn advance(&mut self, d: Duration) -> Vec<Action> {
        self.mono += d;
        self.wall += d;
        let now = self.now();
        self.s.handle_timeout(now);
        self.actions()
    }

    /// Time until the next deadline.
    fn wait(&self) -> Duration {
        self.s.poll_timeout().expect("a deadline") - self.mono
    }

    fn fire(&mut self) -> Vec<Action> {
        let d = self.wait();
        self.advance(d)
    }
}

fn play(prompts: &[PathBuf], barge_in: bool) -> Action {
    Action::Play {
        prompts: prompts.to_vec(),
        barge_in,
    }
}

fn queue(name: &str, priority: u8) -> Action {
    Action::Route(Destination::Queue {
        name: name.into(),
        priority,
    })
}

// --- menu ---

const MENU: &str = r#"
start = "m"
[nodes.m]
type = "menu"
prompts = ["p/menu.wav"]
invalid_prompts = ["p/invalid.wav"]
no_input_prompts = ["p/noinput.wav"]
timeout_s = 4
retries = 2
choices = { "1" = "sales", "2" = "service", "*" = "agent" }
fail = "bye"
[nodes.sales]
type = "route"
queue = "sales"
priority = 3
[nodes.service]
type = "route"
queue = "service"
[nodes.agent]
type = "route"
agent = "1001"
[nodes.bye]
type = "hangup"
prompts = ["p/bye.wav"]
"#;

#[test]
fn menu_routes_a_choice_made_after_the_prompt() {
    let d = Dir::with(&[("f", MENU)]);
    let mut c = Call::start(&d.load(), "f");
    assert_eq!(c.actions(), vec![play(&[d.prompt("menu")], true)]);
    assert!(c.finished().is_empty());
    assert_eq!(
        c.wait(),
        Duration::from_secs(4),
        "timeout starts at prompt end"
    );
    assert_eq!(c.advance(Duration::from_secs(3)), vec![]);
    assert_eq!(c.digits("1"), vec![queue("sales", 3)]);
    assert!(c.s.is_ended());
    assert_eq!(c.s.poll_timeout(), None);
}

#[test]
fn menu_barge_in_stops_the_prompt_and_counts_as_the_choice() {
    let d = Dir::with(&[("f", MENU)]);
    let mut c = Call::start(&d.load(), "f");
    c.actions();
    assert_eq!(
        c.digits("*"),
        vec![
            Action::StopPlay,
            Action::Route(Destination::Agent("1001".into()))
        ]
    );
    // Nothing after the end: a late PromptFinished or digit is ignored.
    assert!(c.finished().is_empty());
    assert!(c.digits("2").is_empty());
}

#[test]
fn menu_without_barge_in_keeps_the_digit_until_the_prompt_ends() {
    let d = Dir::with(&[(
        "f",
        &MENU.replace("timeout_s = 4", "timeout_s = 4\nbarge_in = false"),
    )]);
    let mut c = Call::start(&d.load(), "f");
    assert_eq!(c.actions(), vec![play(&[d.prompt("menu")], false)]);
    assert!(c.digits("2").is_empty(), "no StopPlay, no route yet");
    assert_eq!(c.finished(), vec![queue("service", 0)]);
}

#[test]
fn menu_no_input_reprompts_then_takes_fail_after_the_retries() {
    let d = Dir::with(&[("f", MENU)]);
    let mut c = Call::start(&d.load(), "f");
    c.actions();
    for _ in 0..2 {
        c.finished();
        assert_eq!(
            c.fire(),
            vec![play(&[d.prompt("noinput"), d.prompt("menu")], true)]
        );
    }
    c.finished();
    // Third silence: out of retries, the fail node says goodbye and hangs up.
    assert_eq!(c.fire(), vec![play(&[d.prompt("bye")], false)]);
    assert!(c.digits("1").is_empty(), "a goodbye is not interrupted");
    assert_eq!(c.finished(), vec![Action::Hangup]);
}

#[test]
fn menu_invalid_choice_reprompts_and_without_fail_hangs_up() {
    let flow = MENU.replace("fail = \"bye\"\n", "").replace(
        "[nodes.bye]\ntype = \"hangup\"\nprompts = [\"p/bye.wav\"]\n",
        "",
    );
    let d = Dir::with(&[("f", &flow)]);
    let set = d.load();
    let mut c = Call::start(&set, "f");
    c.actions();
    assert_eq!(
        c.digits("9"),
        vec![
            Action::StopPlay,
            play(&[d.prompt("invalid"), d.prompt("menu")], true)
        ]
    );
    c.finished();
    assert_eq!(
        c.digits("#"),
        vec![play(&[d.prompt("invalid"), d.prompt("menu")], true)]
    );
    c.finished();
    assert_eq!(c.digits("7"), vec![Action::Hangup]);
}

#[test]
fn menu_mixes_no_input_and_invalid_attempts_in_one_retry_count() {
    let d = Dir::with(&[("f", MENU)]);
    let mut c = Call::start(&d.load(), "f");
    c.actions();
    c.finished();
    c.fire(); // no input: attempt 2
    c.finished();
    c.digits("5"); // invalid: attempt 3
    c.finished();
    assert_eq!(
        c.digits("2"),
        vec![queue("service", 0)],
        "the last attempt still counts"
    );
}

#[test]
fn a_prompt_that_never_reports_its_end_is_stopped_by_the_guard() {
    let d = Dir::with(&[("f", &format!("max_prompt_s = 30\n{MENU}"))]);
    let mut c = Call::start(&d.load(), "f");
    c.actions();
    assert_eq!(c.wait(), Duration::from_secs(30));
    assert_eq!(c.fire(), vec![Action::StopPlay]);
    assert_eq!(
        c.wait(),
        Duration::from_secs(4),
        "now waiting for the choice"
    );
    assert_eq!(c.digits("1"), vec![queue("sales", 3)]);
}

#[test]
fn a_deadline_in_the_future_does_nothing() {
    let d = Dir::with(&[("f", MENU)]);
    let mut c = Call::start(&d.load(), "f");
    c.actions();
    c.finished();
    assert!(c.advance(Duration::from_millis(3999)).is_empty());
    assert_eq!(c.wait(), Duration::from_millis(1));
}

#[test]
fn unknown_keys_are_ignored() {
    let d = Dir::with(&[("f", MENU)]);
    let mut c = Call::start(&d.load(), "f");
    c.actions();
    assert!(c.digits("xE!").is_empty());
    assert_eq!(c.digits("1"), vec![Action::StopPlay, queue("sales", 3)]);
}

// --- collect ---

const COLLECT: &str = r##"
start = "id"
[nodes.id]
type = "collect"
prompts = ["p/hello.wav"]
invalid_prompts = ["p/invalid.wav"]
no_input_prompts = ["p/noinput.wav"]
variable = "tax_id"
min_digits = 3
max_digits = 6
terminator = "#"
first_digit_timeout_s = 6
inter_digit_timeout_s = 2
retries = 1
next = "done"
fail = "nothing"
[nodes.done]
type = "route"
queue = "q${tax_id}"
fallback = "nothing"
[nodes.nothing]
type = "route"
queue = "general"
"##;

fn collect_call(d: &Dir) -> Call {
    let mut c = Call::start(&d.load(), "f");
    assert_eq!(c.actions(), vec![play(&[d.prompt("hello")], true)]);
    c
}

#[test]
fn collect_terminator_ends_input_and_stores_the_variable() {
    let d = Dir::with(&[("f", COLLECT)]);
    let mut c = collect_call(&d);
    assert_eq!(c.digits("1"), vec![Action::StopPlay]);
    assert_eq!(c.wait(), Duration::from_secs(2), "inter-digit timeout");
    assert!(c.digits("23").is_empty());
    assert_eq!(c.digits("#"), vec![queue("q123", 0)]);
    assert_eq!(c.s.variables()["tax_id"], "123");
}

#[test]
fn collect_ends_at_max_digits_without_a_terminator() {
    let d = Dir::with(&[("f", COLLECT)]);
    let mut c = collect_call(&d);
    c.finished();
    assert_eq!(c.wait(), Duration::from_secs(6), "first-digit timeout");
    assert!(c.digits("98765").is_empty());
    assert_eq!(c.digits("4"), vec![queue("q987654", 0)]);
}

#[test]
fn collect_inter_digit_timeout_ends_input() {
    let d = Dir::with(&[("f", COLLECT)]);
    let mut c = collect_call(&d);
    c.finished();
    c.digits("4242");
    assert!(c.advance(Duration::from_millis(1999)).is_empty());
    assert_eq!(c.advance(Duration::from_millis(1)), vec![queue("q4242", 0)]);
}

#[test]
fn collect_too_short_is_invalid_and_retried_then_fails() {
    let d = Dir::with(&[("f", COLLECT)]);
    let mut c = collect_call(&d);
    c.finished();
    c.digits("12");
    assert_eq!(
        c.fire(),
        vec![play(&[d.prompt("invalid"), d.prompt("hello")], true)],
        "two digits then silence: too short"
    );
    c.finished();
    assert_eq!(
        c.digits("5#"),
        vec![queue("general", 0)],
        "out of retries: fail"
    );
    assert!(!c.s.variables().contains_key("tax_id"));
}

#[test]
fn collect_no_input_reprompts_with_the_no_input_prompt() {
    let d = Dir::with(&[("f", COLLECT)]);
    let mut c = collect_call(&d);
    c.finished();
    assert_eq!(
        c.fire(),
        vec![play(&[d.prompt("noinput"), d.prompt("hello")], true)]
    );
    c.finished();
    assert_eq!(c.fire(), vec![queue("general", 0)]);
}

#[test]
fn collect_a_non_digit_key_is_an_invalid_entry() {
    let d = Dir::with(&[("f", COLLECT)]);
    let mut c = collect_call(&d);
    c.finished();
    c.digits("12");
    assert_eq!(
        c.digits("*"),
        vec![play(&[d.prompt("invalid"), d.prompt("hello")], true)]
    );
    // The retry starts from nothing.
    assert_eq!(c.digits("777#"), vec![Action::StopPlay, queue("q777", 0)]);
}

#[test]
fn type_ahead_during_a_prompt_without_barge_in_feeds_the_next_collect() {
    let d = Dir::with(&[(
        "f",
        &COLLECT.replace(
            "start = \"id\"",
            "start = \"intro\"\n[nodes.intro]\ntype = \"play\"\nprompts = [\"p/hold.wav\"]\nnext = \"id\"",
        ),
    )]);
    let mut c = Call::start(&d.load(), "f");
    assert_eq!(c.actions(), vec![play(&[d.prompt("hold")], false)]);
    assert!(c.digits("555").is_empty(), "kept, the intro goes on");
    // The collect prompt is skipped (it allows barge-in) and the digits are already there.
    assert!(c.finished().is_empty());
    assert_eq!(
        c.wait(),
        Duration::from_secs(2),
        "inter-digit timeout after 3 digits"
    );
    assert_eq!(c.digits("#"), vec![queue("q555", 0)]);
}

#[test]
fn barge_in_on_a_play_node_carries_the_digit_into_the_menu() {
    let flow = r#"
start = "intro"
[nodes.intro]
type = "play"
prompts = ["p/hello.wav"]
barge_in = true
next = "m"
[nodes.m]
type = "menu"
prompts = ["p/menu.wav"]
choices = { "2" = "two" }
[nodes.two]
type = "route"
queue = "two"
"#;
    let d = Dir::with(&[("f", flow)]);
    let mut c = Call::start(&d.load(), "f");
    assert_eq!(c.actions(), vec![play(&[d.prompt("hello")], true)]);
    assert_eq!(c.digits("2"), vec![Action::StopPlay, queue("two", 0)]);
}

#[test]
fn collect_with_min_zero_accepts_a_bare_terminator() {
    let d = Dir::with(&[("f", &COLLECT.replace("min_digits = 3", "min_digits = 0"))]);
    let mut c = collect_call(&d);
    assert_eq!(c.digits("#"), vec![Action::StopPlay, queue("q", 0)]);
    assert_eq!(c.s.variables()["tax_id"], "");
}

// --- lookup ---

const LOOKUP: &str = r#"
start = "find"
[nodes.find]
type = "lookup"
by = "caller"
found = "owner"
not_found = "q"
[nodes.owner]
type = "route"
agent = "${lead_owner}"
fallback = "q"
[nodes.q]
type = "route"
queue = "sales"
"#;

fn lead(owner: Option<&str>) -> LeadMatch {
    LeadMatch {
        lead_id: 42,
        name: "Erika Mustermann".into(),
        grade: Some("H".into()),
        owner_agent: owner.map(Into::into),
    }
}

#[test]
fn lookup_found_sets_lead_variables_and_routes_to_the_owner() {
    let d = Dir::with(&[("f", LOOKUP)]);
    let mut c = Call::start(&d.load(), "f");
    assert_eq!(
        c.actions(),
        vec![Action::LookupLead(LeadQuery::CallerNumber(
            "+4930111".into()
        ))]
    );
    assert_eq!(
        c.event(Event::LeadLookup(Some(lead(Some("1002"))))),
        vec![Action::Route(Destination::Agent("1002".into()))]
    );
    let v = c.s.variables();
    assert_eq!(v["lead_id"], "42");
    assert_eq!(v["lead_name"], "Erika Mustermann");
    assert_eq!(v["lead_grade"], "H");
    assert_eq!(v["caller"], "+4930111");
    assert_eq!(v["dialed"], "5551000");
}

#[test]
fn lookup_found_without_owner_takes_the_fallback() {
    let d = Dir::with(&[("f", LOOKUP)]);
    let mut c = Call::start(&d.load(), "f");
    c.actions();
    assert_eq!(
        c.event(Event::LeadLookup(Some(lead(None)))),
        vec![queue("sales", 0)]
    );
    assert!(!c.s.variables().contains_key("lead_owner"));
}

#[test]
fn lookup_not_found_takes_the_other_branch() {
    let d = Dir::with(&[("f", LOOKUP)]);
    let mut c = Call::start(&d.load(), "f");
    c.actions();
    assert_eq!(c.event(Event::LeadLookup(None)), vec![queue("sales", 0)]);
    assert!(!c.s.variables().contains_key("lead_id"));
}

#[test]
fn an_anonymous_caller_is_not_looked_up() {
    let d = Dir::with(&[("f", LOOKUP)]);
    let mut c = Call::start_at(&d.load(), "f", "", wednesday_10_berlin());
    assert_eq!(c.actions(), vec![queue("sales", 0)]);
}

#[test]
fn a_late_lookup_answer_is_dropped_and_the_next_lookup_gets_its_own() {
    let flow = r#"
lookup_timeout_s = 2
start = "first"
[nodes.first]
type = "lookup"
by = "caller"
found = "q"
not_found = "id"
[nodes.id]
type = "collect"
prompts = []
variable = "cid"
max_digits = 4
next = "second"
[nodes.second]
type = "lookup"
by = "digits"
variable = "cid"
found = "owner"
not_found = "q"
[nodes.owner]
type = "route"
agent = "${lead_owner}"
fallback = "q"
[nodes.q]
type = "route"
queue = "sales"
"#;
    let d = Dir::with(&[("f", flow)]);
    let mut c = Call::start(&d.load(), "f");
    c.actions();
    assert_eq!(c.wait(), Duration::from_secs(2));
    assert!(c.fire().is_empty(), "timed out: not found, now collecting");
    assert_eq!(
        c.digits("1234"),
        vec![Action::LookupLead(LeadQuery::Digits("1234".into()))]
    );
    // The first lookup's answer arrives late: a match, but not for this question.
    assert!(
        c.event(Event::LeadLookup(Some(lead(Some("1001")))))
            .is_empty()
    );
    assert_eq!(
        c.event(Event::LeadLookup(Some(lead(Some("2001"))))),
        vec![Action::Route(Destination::Agent("2001".into()))]
    );
}

#[test]
fn digits_during_a_lookup_are_type_ahead() {
    let flow = LOOKUP.replace("not_found = \"q\"", "not_found = \"m\"")
        + r#"
[nodes.m]
type = "menu"
prompts = ["p/menu.wav"]
choices = { "3" = "q" }
"#;
    let d = Dir::with(&[("f", &flow)]);
    let mut c = Call::start(&d.load(), "f");
    c.actions();
    assert!(c.digits("3").is_empty());
    assert_eq!(c.event(Event::LeadLookup(None)), vec![queue("sales", 0)]);
}

// --- business hours ---

const HOURS: &str = r#"
start = "h"
[nodes.h]
type = "hours"
time_zone = "America/New_York"
periods = [
  { days = ["mon-fri"], from = "09:00", to = "17:30" },
  { days = ["sat"], from = "10:00", to = "14:00" },
]
holidays = ["2026-07-03"]
open = "open"
closed = "closed"
[nodes.open]
type = "route"
queue = "open"
[nodes.closed]
type = "route"
voicemail = "after"
"#;

#[test]
fn hours_branch_on_local_time_weekends_and_holidays() {
    let d = Dir::with(&[("f", HOURS)]);
    let set = d.load();
    let at = |utc: &str| {
        let mut c = Call::start_at(&set, "f", "1", wall(utc));
        c.actions()
    };
    let open = vec![queue("open", 0)];
    let closed = vec![Action::Route(Destination::Voicemail("after".into()))];
    // Thursday 2026-07-02, EDT = UTC-4.
    assert_eq!(at("2026-07-02T13:00:00Z"), open, "09:00 local");
    assert_eq!(at("2026-07-02T12:59:00Z"), closed, "08:59 local");
    assert_eq!(at("2026-07-02T21:29:00Z"), open, "17:29 local");
    assert_eq!(at("2026-07-02T21:30:00Z"), closed, "17:30 local");
    assert_eq!(at("2026-07-03T15:00:00Z"), closed, "Friday, a holiday");
    assert_eq!(at("2026-07-04T15:00:00Z"), open, "Saturday 11:00");
    assert_eq!(at("2026-07-04T18:00:00Z"), closed, "Saturday 14:00");
    assert_eq!(at("2026-07-05T15:00:00Z"), closed, "Sunday");
    // Friday 2026-07-10 20:00 local is already Saturday 00:00 UTC.
    assert_eq!(at("2026-07-11T00:00:00Z"), closed);
    // Winter, EST = UTC-5: the same UTC time is an hour earlier locally.
    assert_eq!(at("2026-01-08T13:30:00Z"), closed, "08:30 EST");
    assert_eq!(at("2026-01-08T14:00:00Z"), open, "09:00 EST");
    // Monday after the spring change (2026-03-08): 09:00 EDT is 13:00 UTC.
    assert_eq!(at("2026-03-09T13:00:00Z"), open);
    assert_eq!(at("2026-03-09T12:30:00Z"), closed);
}

#[test]
fn a_night_period_runs_past_midnight_into_the_next_day() {
    let night = HOURS.replace(
        r#"{ days = ["sat"], from = "10:00", to = "14:00" },"#,
        r#"{ days = ["fri", "sun"], from = "22:00", to = "06:00" },"#,
    );
    let d = Dir::with(&[("f", &night)]);
    let set = d.load();
    let at = |utc: &str| {
        let mut c = Call::start_at(&set, "f", "1", wall(utc));
        c.actions()
    };
    let open = vec![queue("open", 0)];
    let closed = vec![Action::Route(Destination::Voicemail("after".into()))];
    // EDT = UTC-4. Friday 2026-07-10 21:59 and 22:00 local, Saturday 05:59 and 06:00.
    assert_eq!(at("2026-07-11T01:59:00Z"), closed, "Friday 21:59");
    assert_eq!(at("2026-07-11T02:00:00Z"), open, "Friday 22:00");
    assert_eq!(at("2026-07-11T07:00:00Z"), open, "Saturday 03:00");
    assert_eq!(at("2026-07-11T09:59:00Z"), open, "Saturday 05:59");
    assert_eq!(at("2026-07-11T10:00:00Z"), closed, "Saturday 06:00");
    // Sunday night runs into Monday (the week wraps).
    assert_eq!(at("2026-07-13T05:00:00Z"), open, "Monday 01:00");
    // Thursday night is not a night shift.
    assert_eq!(at("2026-07-10T05:00:00Z"), closed, "Friday 01:00");
}

// --- set, routes, flows, hangup ---

#[test]
fn set_stores_interpolated_values_used_in_routes() {
    let flow = r#"
start = "a"
[nodes.a]
type = "set"
variable = "line"
value = "vip-${dialed}"
next = "b"
[nodes.b]
type = "route"
queue = "${line}"
fallback = "c"
[nodes.c]
type = "hangup"
"#;
    let d = Dir::with(&[("f", flow)]);
    let mut c = Call::start(&d.load(), "f");
    assert_eq!(c.actions(), vec![queue("vip-5551000", 0)]);
    assert_eq!(c.s.variables()["line"], "vip-5551000");
}

#[test]
fn a_malformed_dynamic_target_takes_the_fallback() {
    let flow = r#"
start = "a"
[nodes.a]
type = "set"
variable = "n"
value = "not a number ${caller}"
next = "b"
[nodes.b]
type = "route"
external = "${n}"
fallback = "c"
[nodes.c]
type = "hangup"
"#;
    let d = Dir::with(&[("f", flow)]);
    let mut c = Call::start(&d.load(), "f");
    assert_eq!(c.actions(), vec![Action::Hangup]);
    assert_eq!(c.s.error(), None, "a fallback is a normal path");
}

#[test]
fn every_route_kind_is_a_terminal_action() {
    for (target, expected) in [
        ("queue = \"sales\"\npriority = 9", queue("sales", 9)),
        (
            "agent = \"2001\"",
            Action::Route(Destination::Agent("2001".into())),
        ),
        (
            "voicemail = \"general\"",
            Action::Route(Destination::Voicemail("general".into())),
        ),
        (
            "external = \"+4930123456\"",
            Action::Route(Destination::External("+4930123456".into())),
        ),
    ] {
        let d = Dir::with(&[(
            "f",
            &format!("start = \"r\"\n[nodes.r]\ntype = \"route\"\n{target}\n"),
        )]);
        let mut c = Call::start(&d.load(), "f");
        assert_eq!(c.actions(), vec![expected]);
        assert!(c.s.is_ended());
    }
}

#[test]
fn a_route_to_another_flow_continues_there_with_the_variables() {
    let first = r#"
start = "s"
[nodes.s]
type = "set"
variable = "from"
value = "first"
next = "go"
[nodes.go]
type = "route"
flow = "second"
"#;
    let second = r#"
start = "m"
[nodes.m]
type = "menu"
prompts = ["p/menu.wav"]
choices = { "1" = "q" }
[nodes.q]
type = "route"
queue = "${from}"
fallback = "m"
"#;
    let d = Dir::with(&[("first", first), ("second", second)]);
    let mut c = Call::start(&d.load(), "first");
    assert_eq!(c.actions(), vec![play(&[d.prompt("menu")], true)]);
    assert_eq!(c.s.position(), ("second", "m"));
    assert_eq!(c.digits("1"), vec![Action::StopPlay, queue("first", 0)]);
}

#[test]
fn a_loop_without_input_hangs_up_with_an_error() {
    let a = "start = \"x\"\n[nodes.x]\ntype = \"route\"\nflow = \"b\"\n";
    let b = "start = \"y\"\n[nodes.y]\ntype = \"set\"\nvariable = \"v\"\nvalue = \"${v}x\"\nnext = \"z\"\n[nodes.z]\ntype = \"route\"\nflow = \"a\"\n";
    let d = Dir::with(&[("a", a), ("b", b)]);
    let mut c = Call::start(&d.load(), "a");
    assert_eq!(c.actions(), vec![Action::Hangup]);
    let e = c.s.error().expect("an error is recorded");
    assert!(e.contains("loop"), "{e}");
    assert_eq!(c.s.poll_timeout(), None);
}

#[test]
fn hangup_plays_its_prompts_first_and_the_guard_ends_a_silent_goodbye() {
    let d = Dir::with(&[(
        "f",
        "max_prompt_s = 20\nstart = \"h\"\n[nodes.h]\ntype = \"hangup\"\nprompts = [\"p/bye.wav\"]\n",
    )]);
    let mut c = Call::start(&d.load(), "f");
    assert_eq!(c.actions(), vec![play(&[d.prompt("bye")], false)]);
    assert_eq!(c.fire(), vec![Action::StopPlay, Action::Hangup]);
    let d = Dir::with(&[("f", "start = \"h\"\n[nodes.h]\ntype = \"hangup\"\n")]);
    let mut c = Call::start(&d.load(), "f");
    assert_eq!(c.actions(), vec![Action::Hangup]);
}

#[test]
fn an_unknown_entry_flow_is_an_error() {
    let d = Dir::with(&[("f", MENU)]);
    let e = Session::new(
        d.load(),
        "nope",
        CallContext::default(),
        Now {
            mono: Instant::now(),
            wall: SystemTime::now(),
        },
    )
    .unwrap_err();
    assert_eq!(e, SessionError::UnknownFlow("nope".into()));
}

// --- validation ---

fn one_error(d: &Dir, ctx: &ValidationContext) -> FlowError {
    let mut e = d.errors(ctx);
    assert_eq!(e.len(), 1, "{e:#?}");
    e.remove(0)
}

fn assert_names(e: &FlowError, file: &str, node: Option<&str>) -> String {
    let text = e.to_string();
    assert!(
        e.file.ends_with(format!("{file}.toml")),
        "{text}: file should be {file}"
    );
    assert!(text.contains(&format!("{file}.toml")), "{text}");
    assert_eq!(e.node.as_deref(), node, "{text}");
    if let Some(n) = node {
        assert!(text.contains(&format!("node \"{n}\"")), "{text}");
    }
    text
}

#[test]
fn an_unknown_next_node_names_the_file_node_field_and_line() {
    let d = Dir::with(&[(
        "f",
        &MENU.replace("\"2\" = \"service\"", "\"2\" = \"servic\""),
    )]);
    let e = one_error(&d, &Default::default());
    let text = assert_names(&e, "f", Some("m"));
    assert_eq!(
        e.kind,
        FlowErrorKind::UnknownNode {
            field: "choices.2".into(),
            target: "servic".into()
        }
    );
    assert_eq!(e.line, Some(3), "{text}");
}

#[test]
fn missing_and_broken_prompts_are_named() {
    let d = Dir::with(&[("f", &MENU.replace("p/menu.wav", "p/menu2.wav"))]);
    let e = one_error(&d, &Default::default());
    assert_names(&e, "f", Some("m"));
    assert!(
        matches!(&e.kind, FlowErrorKind::MissingPrompt { path } if path.ends_with("p/menu2.wav"))
    );

    let d = Dir::with(&[("f", MENU)]);
    std::fs::write(d.path().join("p/menu.wav"), b"RIFF junk").unwrap();
    let e = one_error(&d, &Default::default());
    assert_names(&e, "f", Some("m"));
    assert!(matches!(e.kind, FlowErrorKind::BadPrompt { .. }), "{e}");
}

#[test]
fn an_unreachable_node_is_an_error() {
    let d = Dir::with(&[("f", &format!("{MENU}\n[nodes.orphan]\ntype = \"hangup\"\n"))]);
    let e = one_error(&d, &Default::default());
    assert_names(&e, "f", Some("orphan"));
    assert_eq!(e.kind, FlowErrorKind::Unreachable);
}

#[test]
fn a_choice_that_is_not_one_dtmf_key_is_an_error() {
    for bad in ["12", "x", "E", ""] {
        let d = Dir::with(&[(
            "f",
            &MENU.replace("\"*\" = \"agent\"", &format!("\"{bad}\" = \"agent\"")),
        )]);
        let errors = d.errors(&Default::default());
        let e = errors
            .iter()
            .find(|e| e.kind == FlowErrorKind::BadDigit(bad.into()))
            .unwrap_or_else(|| panic!("{bad:?}: {errors:#?}"));
        assert_names(e, "f", Some("m"));
    }
}

#[test]
fn a_route_to_an_unknown_flow_is_checked_across_the_set() {
    let d = Dir::with(&[
        (
            "a",
            "start = \"x\"\n[nodes.x]\ntype = \"route\"\nflow = \"b\"\n",
        ),
        (
            "c",
            "start = \"x\"\n[nodes.x]\ntype = \"route\"\nflow = \"nowhere\"\n",
        ),
        ("b", "start = \"y\"\n[nodes.y]\ntype = \"hangup\"\n"),
    ]);
    let e = one_error(&d, &Default::default());
    assert_names(&e, "c", Some("x"));
    assert_eq!(e.kind, FlowErrorKind::UnknownFlow("nowhere".into()));
}

#[test]
fn names_outside_the_validation_context_are_errors() {
    let d = Dir::with(&[("f", MENU)]);
    let ctx = ValidationContext {
        queues: Some(BTreeSet::from(["sales".to_string()])),
        agents: Some(BTreeSet::from(["1002".to_string()])),
        voicemail_boxes: None,
    };
    let errors = d.errors(&ctx);
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert_names(&errors[0], "f", Some("agent"));
    assert_eq!(errors[0].kind, FlowErrorKind::UnknownAgent("1001".into()));
    assert_names(&errors[1], "f", Some("service"));
    assert_eq!(
        errors[1].kind,
        FlowErrorKind::UnknownQueue("service".into())
    );

    let d = Dir::with(&[("f", HOURS)]);
    let ctx = ValidationContext {
        voicemail_boxes: Some(BTreeSet::from(["general".to_string()])),
        ..Default::default()
    };
    let e = one_error(&d, &ctx);
    assert_eq!(e.kind, FlowErrorKind::UnknownVoicemail("after".into()));
}

#[test]
fn field_and_value_errors_name_the_node() {
    let cases: &[(&str, &str, &str)] = &[
        ("timeout_s = 4", "timout_s = 4", "timout_s"),
        ("timeout_s = 4", "timeout_s = 0", "timeout_s"),
        ("retries = 2", "retries = 11", "retries"),
        ("retries = 2", "retries = -1", "retries"),
        ("type = \"menu\"", "type = \"mneu\"", "mneu"),
        ("priority = 3", "priority = 3\nagent = \"1\"", "exactly one"),
        ("queue = \"service\"", "queue = \"${svc}\"", "fallback"),
        ("queue = \"service\"", "queue = \"bad name\"", "bad name"),
        (
            "queue = \"service\"",
            "queue = \"${unterminated\"",
            "unterminated",
        ),
    ];
    for (from, to, needle) in cases {
        let d = Dir::with(&[("f", &MENU.replacen(from, to, 1))]);
        let errors = d.errors(&Default::default());
        let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert!(
            errors
                .iter()
                .any(|e| e.node.is_some() && e.to_string().contains(needle)),
            "{to}: {text:#?}"
        );
    }
}

#[test]
fn collect_and_hours_values_are_checked() {
    for (from, to, needle) in [
        ("min_digits = 3", "min_digits = 7", "min_digits"),
        ("max_digits = 6", "max_digits = 65", "max_digits"),
        ("terminator = \"#\"", "terminator = \"5\"", "terminator"),
        ("variable = \"tax_id\"", "variable = \"9x\"", "variable"),
    ] {
        let d = Dir::with(&[("f", &COLLECT.replace(from, to))]);
        let e = one_error(&d, &Default::default());
        let text = assert_names(&e, "f", Some("id"));
        assert!(text.contains(needle), "{text}");
    }
    for (from, to, needle) in [
        ("America/New_York", "Mars/Olympus", "Mars/Olympus"),
        ("\"mon-fri\"", "\"mon-fru\"", "fru"),
        ("to = \"17:30\"", "to = \"09:00\"", "empty period"),
        ("from = \"10:00\"", "from = \"10:0\"", "10:0"),
        ("2026-07-03", "2026-07-32", "2026-07-32"),
    ] {
        let d = Dir::with(&[("f", &HOURS.replace(from, to))]);
        let e = one_error(&d, &Default::default());
        let text = assert_names(&e, "f", Some("h"));
        assert!(text.contains(needle), "{text}");
    }
}

#[test]
fn file_level_errors_name_the_file() {
    let d = Dir::with(&[("f", "start = \"m\"\n[nodes.m\ntype = \"hangup\"\n")]);
    let e = one_error(&d, &Default::default());
    let text = assert_names(&e, "f", None);
    assert!(text.contains("line 2"), "{text}");

    let d = Dir::with(&[("f", &MENU.replace("start = \"m\"", "start = \"mm\""))]);
    let e = d.errors(&Default::default());
    assert_eq!(
        e[0].kind,
        FlowErrorKind::MissingStart("mm".into()),
        "{e:#?}"
    );

    let d = Dir::with(&[("bad.name", MENU)]);
    let e = one_error(&d, &Default::default());
    assert!(matches!(e.kind, FlowErrorKind::BadFlowName(_)), "{e}");

    let d = Dir::new();
    assert_eq!(
        one_error(&d, &Default::default()).kind,
        FlowErrorKind::NoFlows
    );
    let e = FlowSet::load_dir("/nonexistent/ivr").unwrap_err();
    assert!(e[0].to_string().contains("/nonexistent/ivr"), "{e:?}");
}

#[test]
fn every_broken_file_is_reported_at_once() {
    let d = Dir::with(&[
        ("a", &MENU.replace("\"sales\"", "\"sale\"")),
        ("b", &MENU.replace("p/menu.wav", "p/missing.wav")),
        ("c", MENU),
    ]);
    let errors = d.errors(&Default::default());
    let files: BTreeSet<_> = errors
        .iter()
        .map(|e| e.file.file_name().unwrap().to_owned())
        .collect();
    assert_eq!(files.len(), 2, "{errors:#?}");
}

// --- reload ---

#[test]
fn a_broken_reload_keeps_the_old_set_and_calls_keep_their_flow() {
    let d = Dir::with(&[("main", MENU)]);
    let registry = FlowRegistry::load(d.path(), ValidationContext::default()).unwrap();
    let old = registry.current();
    let mut call = Call::start(&old, "main");
    call.actions();

    d.flow(
        "main",
        &MENU.replace("\"1\" = \"sales\"", "\"1\" = \"nowhere\""),
    );
    let errors = registry.reload().unwrap_err();
    assert!(errors[0].to_string().contains("nowhere"), "{errors:#?}");
    assert!(Arc::ptr_eq(&old, &registry.current()), "the old set stays");

    d.flow(
        "main",
        &MENU.replace("queue = \"sales\"\npriority = 3", "queue = \"sales2\""),
    );
    let new = registry.reload().unwrap();
    assert!(Arc::ptr_eq(&new, &registry.current()));
    let mut fresh = Call::start(&registry.current(), "main");
    fresh.actions();
    assert_eq!(
        fresh.digits("1"),
        vec![Action::StopPlay, queue("sales2", 0)]
    );
    // The call that started before the reload finishes in the flow it started in.
    assert_eq!(call.digits("1"), vec![Action::StopPlay, queue("sales", 3)]);
}

// --- the shipped flows ---

fn shipped_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../ivr-scripts")
}

fn shipped() -> Arc<FlowSet> {
    let ctx = ValidationContext {
        queues: Some(BTreeSet::from(["sales".into(), "service".into()])),
        agents: Some(BTreeSet::from([
            "1001".into(),
            "1002".into(),
            "2001".into(),
            "2002".into(),
        ])),
        voicemail_boxes: Some(BTreeSet::from(["general".into()])),
    };
    Arc::new(
        FlowSet::load_dir_with(shipped_dir(), &ctx).unwrap_or_else(|e| {
            panic!(
                "{}",
                e.iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        }),
    )
}

#[test]
fn the_shipped_prompts_are_8khz_mono_16bit_wav() {
    let dir = shipped_dir().join("prompts");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|x| x != "wav") {
            continue;
        }
        let r = hound::WavReader::open(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        let spec = r.spec();
        assert_eq!(spec.sample_rate, 8000, "{path:?}");
        assert_eq!(spec.channels, 1, "{path:?}");
        assert_eq!(spec.bits_per_sample, 16, "{path:?}");
        assert_eq!(spec.sample_format, hound::SampleFormat::Int, "{path:?}");
        assert!(r.duration() > 800, "{path:?} has audio");
        count += 1;
    }
    for name in [
        "welcome",
        "invalid",
        "no-input",
        "after-hours",
        "voicemail-greeting",
        "please-hold",
        "caller-number",
        "minutes",
        "goodbye",
        "digit-0",
        "digit-9",
    ] {
        assert!(dir.join(format!("{name}.wav")).is_file(), "{name}.wav");
    }
    assert!(count >= 20, "{count} prompts");
}

#[test]
fn the_shipped_demo_greets_and_routes_during_business_hours() {
    let set = shipped();
    let names: Vec<_> = set.names().collect();
    assert_eq!(names, ["main", "menu", "service", "voicemail"]);
    let p = |n: &str| set.dir().join(format!("prompts/{n}.wav"));
    let mut c = Call::start(&set, "main");
    assert_eq!(c.actions(), vec![play(&[p("welcome")], true)]);
    assert_eq!(
        c.digits("1"),
        vec![Action::StopPlay, play(&[p("connecting")], true)]
    );
    assert_eq!(c.finished(), vec![queue("sales", 0)]);

    let mut c = Call::start(&set, "main");
    c.actions();
    c.finished();
    assert_eq!(
        c.digits("0"),
        vec![play(&[p("voicemail-greeting"), p("beep")], false)]
    );
    assert_eq!(
        c.finished(),
        vec![Action::Route(Destination::Voicemail("general".into()))]
    );

    // Service: a known customer number goes to the owning agent.
    let mut c = Call::start(&set, "main");
    c.actions();
    c.finished();
    assert_eq!(c.digits("2"), vec![play(&[p("customer-id")], true)]);
    c.finished();
    assert_eq!(
        c.digits("12345#"),
        vec![Action::LookupLead(LeadQuery::Digits("12345".into()))]
    );
    assert_eq!(
        c.event(Event::LeadLookup(Some(lead(Some("2001"))))),
        vec![Action::Route(Destination::Agent("2001".into()))]
    );

    // Service without a number: asked once more, then the hold prompt and the queue.
    let mut c = Call::start(&set, "menu");
    c.actions();
    c.digits("2");
    c.finished();
    assert_eq!(c.fire(), vec![play(&[p("customer-id")], true)]);
    c.finished();
    assert_eq!(c.fire(), vec![play(&[p("please-hold")], true)]);
    assert_eq!(c.finished(), vec![queue("service", 0)]);
}

#[test]
fn the_shipped_demo_sends_after_hours_and_holiday_calls_to_voicemail() {
    let set = shipped();
    let p = |n: &str| set.dir().join(format!("prompts/{n}.wav"));
    for utc in [
        "2026-01-14T19:00:00Z", // Wednesday 20:00 Berlin
        "2026-01-17T10:00:00Z", // Saturday
        "2026-12-25T10:00:00Z", // Christmas, a Friday
    ] {
        let mut c = Call::start_at(&set, "main", "+4930111", wall(utc));
        assert_eq!(c.actions(), vec![play(&[p("after-hours")], false)], "{utc}");
        assert_eq!(
            c.finished(),
            vec![play(&[p("voicemail-greeting"), p("beep")], false)]
        );
        assert_eq!(
            c.finished(),
            vec![Action::Route(Destination::Voicemail("general".into()))]
        );
    }
}

// --- property: never stuck, exactly one ending ---

#[derive(Debug, Clone)]
enum Op {
    Digit(char),
    PromptFinished,
    Lookup(Option<&'static str>),
    Advance(u64),
    Fire,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => prop::sample::select(vec!['0', '1', '2', '3', '5', '9', '*', '#', 'A', 'x'])
            .prop_map(Op::Digit),
        3 => Just(Op::PromptFinished),
        1 => prop::sample::select(vec![None, Some("2001")]).prop_map(Op::Lookup),
        2 => (0u64..20_000).prop_map(Op::Advance),
        2 => Just(Op::Fire),
    ]
}

/// Checks the invariants after an input and returns the number of terminal actions seen.
fn drain_and_check(c: &mut Call, ended_before: bool) -> usize {
    let actions = c.actions();
    let terminal = actions
        .iter()
        .filter(|a| matches!(a, Action::Route(_) | Action::Hangup))
        .count();
    if ended_before {
        assert!(actions.is_empty(), "actions after the end: {actions:?}");
    }
    if let Some(i) = actions
        .iter()
        .position(|a| matches!(a, Action::Route(_) | Action::Hangup))
    {
        assert_eq!(
            i,
            actions.len() - 1,
            "the terminal action is the last: {actions:?}"
        );
    }
    assert_eq!(c.s.is_ended(), ended_before || terminal > 0);
    if !c.s.is_ended() {
        let deadline =
            c.s.poll_timeout()
                .expect("a waiting session has a deadline");
        assert!(deadline >= c.mono, "the deadline is not in the past");
    }
    terminal
}

fn all_kinds_set() -> (Dir, Arc<FlowSet>) {
    let d = Dir::with(&[
        ("f", MENU),
        ("c", COLLECT),
        ("l", LOOKUP),
        ("h", HOURS),
        (
            "x",
            "start = \"p\"\n[nodes.p]\ntype = \"play\"\nprompts = [\"p/hold.wav\"]\nnext = \"g\"\n\
             [nodes.g]\ntype = \"route\"\nflow = \"c\"\n",
        ),
    ]);
    let set = d.load();
    (d, set)
}

proptest! {
    #[test]
    fn no_sequence_of_events_panics_sticks_or_ends_twice(
        flow in prop::sample::select(vec!["f", "c", "l", "h", "x", "main", "menu", "service"]),
        start_offset_h in 0u64..(24 * 14),
        ops in prop::collection::vec(op(), 0..60),
    ) {
        let (_d, own) = all_kinds_set();
        let set = if ["main", "menu", "service"].contains(&flow) { shipped() } else { own };
        let wall = wall("2026-03-23T00:00:00Z") + Duration::from_secs(start_offset_h * 3600);
        let mut c = Call::start_at(&set, flow, "+4930111", wall);
        let mut endings = drain_and_check(&mut c, false);
        for op in ops {
            let ended = c.s.is_ended();
            match op {
                Op::Digit(d) => { let now = c.now(); c.s.handle(Event::Digit(d), now) }
                Op::PromptFinished => { let now = c.now(); c.s.handle(Event::PromptFinished, now) }
                Op::Lookup(owner) => {
                    let now = c.now();
                    c.s.handle(Event::LeadLookup(owner.map(|o| lead(Some(o)))), now)
                }
                Op::Advance(ms) => {
                    c.mono += Duration::from_millis(ms);
                    c.wall += Duration::from_millis(ms);
                    let now = c.now();
                    c.s.handle_timeout(now);
                }
                Op::Fire => {
                    if let Some(t) = c.s.poll_timeout() {
                        let d = t.saturating_duration_since(c.mono);
                        c.mono += d;
                        c.wall += d;
                        let now = c.now();
                        c.s.handle_timeout(now);
                    }
                }
            }
            endings += drain_and_check(&mut c, ended);
            prop_assert!(endings <= 1);
        }
        // Left alone, with no media or lookup answer ever again, the session still ends.
        for _ in 0..200 {
            if c.s.is_ended() {
                break;
            }
            let ended = c.s.is_ended();
            let t = c.s.poll_timeout().expect("a deadline while waiting");
            let d = t.saturating_duration_since(c.mono);
            c.mono += d;
            c.wall += d;
            let now = c.now();
            c.s.handle_timeout(now);
            endings += drain_and_check(&mut c, ended);
        }
        prop_assert!(c.s.is_ended(), "still waiting after 200 timeouts at {:?}", c.s.position());
        prop_assert_eq!(endings, 1);
    }
}
