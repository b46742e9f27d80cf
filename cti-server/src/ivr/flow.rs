//! Flows as data: one TOML file per flow in a directory, compiled into a [`FlowSet`] whose
//! nodes refer to each other by index, so the interpreter never looks a name up per event.
//!
//! Everything that can be checked without a call is checked here, and every problem is
//! reported (not just the first), each naming the file, the node and, where the TOML parser
//! knows it, the line. A set either loads whole or not at all: there is no half-valid flow.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::Deserialize;

use super::hours::{BusinessHours, PeriodSpec};

/// A flow file larger than this is refused (flows are hand-written; a huge file is a mistake).
const MAX_FLOW_FILE_BYTES: u64 = 1 << 20;
/// Retries above this make no sense on a phone and would keep a caller in a loop for long.
const MAX_RETRIES: u8 = 10;
/// Longest digit string a collect node may ask for.
const MAX_COLLECT_DIGITS: usize = 64;
/// Timeouts (menu, digits, lookup, prompt guard) must lie in 0 < t <= this.
const MAX_TIMEOUT_S: f64 = 3600.0;

/// Index of a node inside its [`Flow`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct NodeId(pub(crate) usize);

/// One validated flow.
#[derive(Debug)]
pub struct Flow {
    name: String,
    file: PathBuf,
    description: String,
    /// The file's text as it was loaded (what runs, whatever the file says now).
    source: String,
    pub(crate) start: NodeId,
    pub(crate) nodes: Vec<Node>,
    node_names: Vec<String>,
    /// A lead lookup that gets no answer within this counts as "not found".
    pub(crate) lookup_timeout: Duration,
    /// Guard for a prompt whose end is never reported: after this, the prompt is taken as
    /// finished (and stopped), so a lost media event cannot hold a caller forever.
    pub(crate) max_prompt: Duration,
}

impl Flow {
    /// The flow's name (its file name without `.toml`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file it was loaded from.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// The flow file's text as loaded.
    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn description(&self) -> &str {
        &self.description
    }

    /// Names of the nodes, in file order.
    pub fn node_names(&self) -> impl Iterator<Item = &str> {
        self.node_names.iter().map(String::as_str)
    }

    pub(crate) fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id.0]
    }

    pub(crate) fn node_name(&self, id: NodeId) -> &str {
        &self.node_names[id.0]
    }
}

/// A compiled node. References to other nodes are indices into the same flow.
#[derive(Debug)]
pub(crate) enum Node {
    Play {
        prompts: Vec<PathBuf>,
        barge_in: bool,
        next: NodeId,
    },
    Menu(Box<Menu>),
    Collect(Box<Collect>),
    Lookup {
        by: LookupBy,
        found: NodeId,
        not_found: NodeId,
    },
    Hours {
        hours: Box<BusinessHours>,
        open: NodeId,
        closed: NodeId,
    },
    Set {
        variable: String,
        value: Template,
        next: NodeId,
    },
    Route {
        to: RouteTo,
        /// Where to go when a target built from variables comes out empty or malformed.
        fallback: Option<NodeId>,
    },
    Hangup {
        prompts: Vec<PathBuf>,
    },
}

#[derive(Debug)]
pub(crate) struct Menu {
    pub prompts: Vec<PathBuf>,
    pub invalid_prompts: Vec<PathBuf>,
    pub no_input_prompts: Vec<PathBuf>,
    pub choices: Vec<(char, NodeId)>,
    pub timeout: Duration,
    pub retries: u8,
    pub barge_in: bool,
    pub fail: Option<NodeId>,
}

#[derive(Debug)]
pub(crate) struct Collect {
    pub prompts: Vec<PathBuf>,
    pub invalid_prompts: Vec<PathBuf>,
    pub no_input_prompts: Vec<PathBuf>,
    pub variable: String,
    pub min_digits: usize,
    pub max_digits: usize,
    pub terminator: Option<char>,
    pub first_digit_timeout: Duration,
    pub inter_digit_timeout: Duration,
    pub retries: u8,
    pub barge_in: bool,
    pub next: NodeId,
    pub fail: Option<NodeId>,
}

#[derive(Debug)]
pub(crate) enum LookupBy {
    Caller,
    Variable(String),
}

#[derive(Debug)]
pub(crate) enum RouteTo {
    Queue { name: Template, priority: u8 },
    Agent(Template),
    Flow(String),
    Voicemail(Template),
    External(Template),
}

/// A string with `${variable}` references, split once at load.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Template(Vec<Part>);

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Var(String),
}

impl Template {
    fn parse(s: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = s;
        while let Some(i) = rest.find("${") {
            if i > 0 {
                parts.push(Part::Text(rest[..i].to_string()));
            }
            let after = &rest[i + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| format!("{s:?}: unterminated ${{"))?;
            let name = &after[..end];
            check_variable_name(name).map_err(|e| format!("{s:?}: {e}"))?;
            parts.push(Part::Var(name.to_string()));
            rest = &after[end + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Template(parts))
    }

    /// The text when it uses no variables (such a target can be checked at load).
    pub(crate) fn as_static(&self) -> Option<String> {
        self.0
            .iter()
            .map(|p| match p {
                Part::Text(t) => Some(t.as_str()),
                Part::Var(_) => None,
            })
            .collect()
    }

    /// Fills in variables; an unset variable is empty.
    pub(crate) fn render(&self, vars: &BTreeMap<String, String>) -> String {
        let mut out = String::new();
        for p in &self.0 {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Var(v) => out.push_str(vars.get(v).map_or("", String::as_str)),
            }
        }
        out
    }
}

fn check_variable_name(name: &str) -> Result<(), String> {
    let ok = name
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "variable name {name:?} must be letters, digits and _ (not starting with a digit)"
        ))
    }
}

/// Whether `s` is an agent extension, queue or voicemail box name: letters, digits, `-_.`.
pub(crate) fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// Whether `s` is a dialable external number: `+`? and 3 to 15 digits (E.164 has at most 15).
pub(crate) fn is_external_number(s: &str) -> bool {
    let digits = s.strip_prefix('+').unwrap_or(s);
    (3..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
}

/// The DTMF keys (RFC 4733 events 0-15).
pub(crate) fn is_dtmf(c: char) -> bool {
    matches!(c, '0'..='9' | '*' | '#' | 'A'..='D')
}

/// Names the app knows, for checks the IVR cannot make alone. `None` means "not known here,
/// do not check"; `Some(set)` makes a static target outside the set a load error.
#[derive(Debug, Clone, Default)]
pub struct ValidationContext {
    pub queues: Option<BTreeSet<String>>,
    pub agents: Option<BTreeSet<String>>,
    pub voicemail_boxes: Option<BTreeSet<String>>,
}

/// A load or validation problem, naming the file and (where there is one) the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowError {
    pub file: PathBuf,
    pub node: Option<String>,
    /// 1-based line of the node (or of a syntax error), when known.
    pub line: Option<usize>,
    pub kind: FlowErrorKind,
}

impl std::fmt::Display for FlowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, " line {line}")?;
        }
        if let Some(node) = &self.node {
            write!(f, ": node {node:?}")?;
        }
        write!(f, ": {}", self.kind)
    }
}

impl std::error::Error for FlowError {}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlowErrorKind {
    #[error("cannot read: {0}")]
    Io(String),
    #[error("{0}")]
    Syntax(String),
    #[error("no flow files (*.toml) in the directory")]
    NoFlows,
    #[error("flow name {0:?} must be letters, digits, - and _ (it is the file name)")]
    BadFlowName(String),
    #[error("start node {0:?} does not exist")]
    MissingStart(String),
    #[error("unknown node type {0:?} (play, menu, collect, lookup, hours, set, route, hangup)")]
    UnknownType(String),
    #[error("{0}")]
    Field(String),
    #[error("`{field}` refers to unknown node {target:?}")]
    UnknownNode { field: String, target: String },
    #[error("prompt file {} does not exist", path.display())]
    MissingPrompt { path: PathBuf },
    #[error("prompt file {}: {reason}", path.display())]
    BadPrompt { path: PathBuf, reason: String },
    #[error("unreachable from the start node")]
    Unreachable,
    #[error("choice {0:?} is not one DTMF key (0-9 * # A-D)")]
    BadDigit(String),
    #[error("routes to unknown flow {0:?}")]
    UnknownFlow(String),
    #[error("routes to unknown queue {0:?}")]
    UnknownQueue(String),
    #[error("routes to unknown agent {0:?}")]
    UnknownAgent(String),
    #[error("routes to unknown voicemail box {0:?}")]
    UnknownVoicemail(String),
    #[error("{0}")]
    Invalid(String),
}

/// Every flow of one directory, validated together (cross-flow routes included).
///
/// Immutable once built: a reload builds a new set ([`FlowRegistry::reload`]) and calls keep
/// the `Arc` of the set they started in.
#[derive(Debug)]
pub struct FlowSet {
    dir: PathBuf,
    flows: BTreeMap<String, Arc<Flow>>,
}

impl FlowSet {
    /// Loads and validates every `*.toml` in `dir` without outside names to check against.
    pub fn load_dir(dir: impl AsRef<Path>) -> Result<FlowSet, Vec<FlowError>> {
        Self::load_dir_with(dir, &ValidationContext::default())
    }

    /// Loads and validates every `*.toml` in `dir`; queue, agent and voicemail names that do
    /// not use variables are checked against `ctx`.
    pub fn load_dir_with(
        dir: impl AsRef<Path>,
        ctx: &ValidationContext,
    ) -> Result<FlowSet, Vec<FlowError>> {
        let dir = dir.as_ref();
        let dir_error = |e: std::io::Error| {
            vec![FlowError {
                file: dir.to_path_buf(),
                node: None,
                line: None,
                kind: FlowErrorKind::Io(e.to_string()),
            }]
        };
        // Absolute, so prompt paths handed to the media engine do not depend on the working
        // directory of whoever plays them.
        let dir = std::fs::canonicalize(dir).map_err(dir_error)?;
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(dir_error)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(vec![FlowError {
                file: dir,
                node: None,
                line: None,
                kind: FlowErrorKind::NoFlows,
            }]);
        }
        let mut errors = Vec::new();
        let mut prompts = PromptChecker::default();
        let mut flows = BTreeMap::new();
        let mut flow_refs = Vec::new();
        for file in files {
            let (flow, refs, mut e) = compile_file(&dir, &file, ctx, &mut prompts);
            // A broken file's routes to other flows are checked too, so one load reports all.
            flow_refs.extend(
                refs.into_iter()
                    .map(|(node, line, target)| (file.clone(), node, line, target)),
            );
            errors.append(&mut e);
            if let Some(flow) = flow {
                flows.insert(flow.name.clone(), Arc::new(flow));
            }
        }
        for (file, node, line, target) in flow_refs {
            // A route to a flow whose own file failed is reported there, not here too.
            let failed = errors
                .iter()
                .any(|e| e.file.file_stem().is_some_and(|s| *s == *target));
            if !flows.contains_key(&target) && !failed {
                errors.push(FlowError {
                    file,
                    node: Some(node),
                    line,
                    kind: FlowErrorKind::UnknownFlow(target),
                });
            }
        }
        if errors.is_empty() {
            Ok(FlowSet { dir, flows })
        } else {
            Err(errors)
        }
    }

    /// The flow called `name` (its file name without `.toml`).
    pub fn get(&self, name: &str) -> Option<Arc<Flow>> {
        self.flows.get(name).cloned()
    }

    /// Names of every flow, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.flows.keys().map(String::as_str)
    }

    /// The (absolute) directory the set was loaded from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// The current [`FlowSet`] of a directory, swappable at run time.
///
/// Readers take an `Arc<FlowSet>` ([`FlowRegistry::current`]) and keep it for the whole call;
/// [`FlowRegistry::reload`] builds a new set and swaps it in only when it validates, so a
/// broken edit never replaces a working set. The lock is held only to clone or replace the
/// `Arc`, never across I/O or an `.await`.
#[derive(Debug)]
pub struct FlowRegistry {
    dir: PathBuf,
    ctx: ValidationContext,
    current: RwLock<Arc<FlowSet>>,
}

impl FlowRegistry {
    /// Loads `dir` for the first time.
    pub fn load(dir: impl AsRef<Path>, ctx: ValidationContext) -> Result<Self, Vec<FlowError>> {
        let set = FlowSet::load_dir_with(dir.as_ref(), &ctx)?;
        Ok(FlowRegistry {
            dir: dir.as_ref().to_path_buf(),
            ctx,
            current: RwLock::new(Arc::new(set)),
        })
    }

    /// The set new calls should use.
    pub fn current(&self) -> Arc<FlowSet> {
        // A poisoned lock only means a writer panicked between two plain assignments; the
        // Arc inside is whole either way.
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Loads the directory again (reading files outside the lock). On success the new set
    /// becomes current and is returned; on error the old set stays current.
    pub fn reload(&self) -> Result<Arc<FlowSet>, Vec<FlowError>> {
        let set = Arc::new(FlowSet::load_dir_with(&self.dir, &self.ctx)?);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = set.clone();
        Ok(set)
    }
}

/// Prompt files checked once per load, however many nodes use them.
#[derive(Default)]
struct PromptChecker {
    seen: HashMap<PathBuf, Result<(), FlowErrorKind>>,
}

impl PromptChecker {
    fn check(&mut self, path: &Path) -> Result<(), FlowErrorKind> {
        self.seen
            .entry(path.to_path_buf())
            .or_insert_with(|| check_prompt(path))
            .clone()
    }
}

/// A prompt must be a readable WAV with some audio. Any rate and channel count is accepted:
/// the media engine resamples and downmixes (the shipped prompts are 8 kHz mono anyway).
fn check_prompt(path: &Path) -> Result<(), FlowErrorKind> {
    if !path.is_file() {
        return Err(FlowErrorKind::MissingPrompt {
            path: path.to_path_buf(),
        });
    }
    let bad = |reason: String| FlowErrorKind::BadPrompt {
        path: path.to_path_buf(),
        reason,
    };
    let reader = hound::WavReader::open(path).map_err(|e| bad(format!("not a WAV file: {e}")))?;
    if reader.duration() == 0 || reader.spec().channels == 0 {
        return Err(bad("no audio".into()));
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FlowFileSpec {
    start: String,
    #[serde(default)]
    description: String,
    #[serde(default = "default_lookup_timeout_s")]
    lookup_timeout_s: f64,
    #[serde(default = "default_max_prompt_s")]
    max_prompt_s: f64,
    nodes: BTreeMap<String, toml::Spanned<toml::Table>>,
}

fn default_lookup_timeout_s() -> f64 {
    3.0
}
fn default_max_prompt_s() -> f64 {
    300.0
}
fn default_true() -> bool {
    true
}
fn default_retries() -> u8 {
    2
}
fn default_menu_timeout_s() -> f64 {
    5.0
}
fn default_inter_digit_s() -> f64 {
    3.0
}
fn default_min_digits() -> usize {
    1
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlaySpec {
    prompts: Vec<String>,
    next: String,
    #[serde(default)]
    barge_in: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MenuSpec {
    prompts: Vec<String>,
    choices: BTreeMap<String, String>,
    #[serde(default = "default_menu_timeout_s")]
    timeout_s: f64,
    #[serde(default = "default_retries")]
    retries: u8,
    #[serde(default = "default_true")]
    barge_in: bool,
    #[serde(default)]
    invalid_prompts: Vec<String>,
    #[serde(default)]
    no_input_prompts: Vec<String>,
    fail: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CollectSpec {
    prompts: Vec<String>,
    variable: String,
    #[serde(default = "default_min_digits")]
    min_digits: usize,
    max_digits: usize,
    terminator: Option<String>,
    #[serde(default = "default_menu_timeout_s")]
    first_digit_timeout_s: f64,
    #[serde(default = "default_inter_digit_s")]
    inter_digit_timeout_s: f64,
    #[serde(default = "default_retries")]
    retries: u8,
    #[serde(default = "default_true")]
    barge_in: bool,
    #[serde(default)]
    invalid_prompts: Vec<String>,
    #[serde(default)]
    no_input_prompts: Vec<String>,
    next: String,
    fail: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LookupSpec {
    by: String,
    variable: Option<String>,
    found: String,
    not_found: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HoursSpec {
    time_zone: String,
    periods: Vec<PeriodSpec>,
    #[serde(default)]
    holidays: Vec<String>,
    open: String,
    closed: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetSpec {
    variable: String,
    value: String,
    next: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteSpec {
    queue: Option<String>,
    agent: Option<String>,
    flow: Option<String>,
    voicemail: Option<String>,
    external: Option<String>,
    priority: Option<u8>,
    fallback: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HangupSpec {
    #[serde(default)]
    prompts: Vec<String>,
}

/// References to other flows found in one file: (node, line, flow name).
type FlowRefs = Vec<(String, Option<usize>, String)>;

/// Compiles one file: the flow when it is valid, the routes to other flows it contains (valid
/// or not), and its errors.
fn compile_file(
    dir: &Path,
    file: &Path,
    ctx: &ValidationContext,
    prompts: &mut PromptChecker,
) -> (Option<Flow>, FlowRefs, Vec<FlowError>) {
    match compile_file_inner(dir, file, ctx, prompts) {
        Ok(compiled) => compiled,
        Err(errors) => (None, Vec::new(), errors),
    }
}

/// `Err` for problems with the file as a whole (unreadable, not TOML).
fn compile_file_inner(
    dir: &Path,
    file: &Path,
    ctx: &ValidationContext,
    prompts: &mut PromptChecker,
) -> Result<(Option<Flow>, FlowRefs, Vec<FlowError>), Vec<FlowError>> {
    let file_error = |kind| {
        vec![FlowError {
            file: file.to_path_buf(),
            node: None,
            line: None,
            kind,
        }]
    };
    let name = file
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .to_string();
    if !is_name(&name) || name.contains('.') {
        return Err(file_error(FlowErrorKind::BadFlowName(name)));
    }
    let len = std::fs::metadata(file)
        .map_err(|e| file_error(FlowErrorKind::Io(e.to_string())))?
        .len();
    if len > MAX_FLOW_FILE_BYTES {
        return Err(file_error(FlowErrorKind::Invalid(format!(
            "file is {len} bytes, more than the {MAX_FLOW_FILE_BYTES} a flow may have"
        ))));
    }
    let text =
        std::fs::read_to_string(file).map_err(|e| file_error(FlowErrorKind::Io(e.to_string())))?;
    // The toml error text already says "line N, column M" and shows the line.
    let spec: FlowFileSpec = toml::from_str(&text)
        .map_err(|e| file_error(FlowErrorKind::Syntax(e.to_string().trim_end().to_string())))?;

    let mut c = Compiler {
        dir,
        file,
        ctx,
        prompts,
        index: spec
            .nodes
            .keys()
            .enumerate()
            .map(|(i, n)| (n.clone(), NodeId(i)))
            .collect(),
        errors: Vec::new(),
        flow_refs: Vec::new(),
        node: String::new(),
        line: None,
    };
    let lookup_timeout = c.timeout("lookup_timeout_s", spec.lookup_timeout_s);
    let max_prompt = c.timeout("max_prompt_s", spec.max_prompt_s);
    let start = match c.index.get(&spec.start) {
        Some(id) => Some(*id),
        None => {
            c.errors.push(FlowError {
                file: file.to_path_buf(),
                node: None,
                line: None,
                kind: FlowErrorKind::MissingStart(spec.start.clone()),
            });
            None
        }
    };
    let mut nodes = Vec::with_capacity(spec.nodes.len());
    let mut node_names = Vec::with_capacity(spec.nodes.len());
    for (node_name, table) in &spec.nodes {
        c.node = node_name.clone();
        c.line = Some(line_of(&text, table.span().start));
        node_names.push(node_name.clone());
        if let Some(node) = c.compile_node(table.get_ref().clone()) {
            nodes.push(node);
        }
    }
    if let (Some(start), true) = (start, nodes.len() == node_names.len()) {
        for unreached in unreachable(&nodes, start) {
            c.node = node_names[unreached.0].clone();
            c.line = spec
                .nodes
                .get(&c.node)
                .map(|t| line_of(&text, t.span().start));
            c.error(FlowErrorKind::Unreachable);
        }
    }
    let flow = match (start, c.errors.is_empty()) {
        (Some(start), true) => Some(Flow {
            name,
            file: file.to_path_buf(),
            description: spec.description,
            source: text,
            start,
            nodes,
            node_names,
            lookup_timeout,
            max_prompt,
        }),
        _ => None,
    };
    Ok((flow, c.flow_refs, c.errors))
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// Nodes not reachable from `start`.
fn unreachable(nodes: &[Node], start: NodeId) -> Vec<NodeId> {
    let mut seen = vec![false; nodes.len()];
    let mut todo = VecDeque::from([start]);
    while let Some(id) = todo.pop_front() {
        if std::mem::replace(&mut seen[id.0], true) {
            continue;
        }
        todo.extend(successors(&nodes[id.0]));
    }
    (0..nodes.len()).filter(|i| !seen[*i]).map(NodeId).collect()
}

pub(crate) fn successors(node: &Node) -> Vec<NodeId> {
    match node {
        Node::Play { next, .. } | Node::Set { next, .. } => vec![*next],
        Node::Menu(m) => m.choices.iter().map(|(_, n)| *n).chain(m.fail).collect(),
        Node::Collect(c) => std::iter::once(c.next).chain(c.fail).collect(),
        Node::Lookup {
            found, not_found, ..
        } => vec![*found, *not_found],
        Node::Hours { open, closed, .. } => vec![*open, *closed],
        Node::Route { fallback, .. } => fallback.iter().copied().collect(),
        Node::Hangup { .. } => vec![],
    }
}

struct Compiler<'a> {
    dir: &'a Path,
    file: &'a Path,
    ctx: &'a ValidationContext,
    prompts: &'a mut PromptChecker,
    index: HashMap<String, NodeId>,
    errors: Vec<FlowError>,
    flow_refs: FlowRefs,
    /// The node being compiled (for error context).
    node: String,
    line: Option<usize>,
}

impl Compiler<'_> {
    fn error(&mut self, kind: FlowErrorKind) {
        self.errors.push(FlowError {
            file: self.file.to_path_buf(),
            node: (!self.node.is_empty()).then(|| self.node.clone()),
            line: self.line,
            kind,
        });
    }

    fn invalid(&mut self, msg: String) {
        self.error(FlowErrorKind::Invalid(msg));
    }

    /// Compiles one node; `None` after reporting its errors.
    fn compile_node(&mut self, mut table: toml::Table) -> Option<Node> {
        let ty = match table.remove("type") {
            Some(toml::Value::String(t)) => t,
            Some(_) => {
                self.error(FlowErrorKind::Field("`type` must be a string".into()));
                return None;
            }
            None => {
                self.error(FlowErrorKind::Field("missing `type`".into()));
                return None;
            }
        };
        let before = self.errors.len();
        let node = match ty.as_str() {
            "play" => self.spec::<PlaySpec>(table).map(|s| self.play(s)),
            "menu" => self.spec::<MenuSpec>(table).map(|s| self.menu(s)),
            "collect" => self.spec::<CollectSpec>(table).map(|s| self.collect(s)),
            "lookup" => self.spec::<LookupSpec>(table).map(|s| self.lookup(s)),
            "hours" => self.spec::<HoursSpec>(table).map(|s| self.hours(s)),
            "set" => self.spec::<SetSpec>(table).map(|s| self.set(s)),
            "route" => self.spec::<RouteSpec>(table).map(|s| self.route(s)),
            "hangup" => self.spec::<HangupSpec>(table).map(|s| self.hangup(s)),
            _ => {
                self.error(FlowErrorKind::UnknownType(ty));
                None
            }
        };
        // Each builder reports every problem it finds (so one load lists them all) and still
        // yields a node, whose bad references are never used: the node is only kept when
        // none were reported.
        node.filter(|_| self.errors.len() == before)
    }

    fn spec<T: serde::de::DeserializeOwned>(&mut self, table: toml::Table) -> Option<T> {
        match toml::Value::Table(table).try_into::<T>() {
            Ok(s) => Some(s),
            Err(e) => {
                self.error(FlowErrorKind::Field(e.to_string().trim_end().to_string()));
                None
            }
        }
    }

    fn target(&mut self, field: &str, name: &str) -> NodeId {
        match self.index.get(name) {
            Some(id) => *id,
            None => {
                self.error(FlowErrorKind::UnknownNode {
                    field: field.into(),
                    target: name.into(),
                });
                // Never used: the node is dropped because an error was reported.
                NodeId(0)
            }
        }
    }

    fn optional_target(&mut self, field: &str, name: Option<&str>) -> Option<NodeId> {
        name.map(|n| self.target(field, n))
    }

    fn prompt_list(&mut self, field: &str, list: &[String]) -> Vec<PathBuf> {
        let mut out = Vec::with_capacity(list.len());
        for p in list {
            if p.is_empty() {
                self.invalid(format!("`{field}` has an empty prompt path"));
                continue;
            }
            let path = self.dir.join(p);
            if let Err(kind) = self.prompts.check(&path) {
                self.error(kind);
            }
            out.push(path);
        }
        out
    }

    fn timeout(&mut self, field: &str, secs: f64) -> Duration {
        if secs.is_finite() && secs > 0.0 && secs <= MAX_TIMEOUT_S {
            Duration::from_secs_f64(secs)
        } else {
            self.invalid(format!(
                "`{field}` = {secs} must be more than 0 and at most {MAX_TIMEOUT_S} seconds"
            ));
            Duration::from_secs(1)
        }
    }

    fn retries(&mut self, retries: u8) -> u8 {
        if retries > MAX_RETRIES {
            self.invalid(format!("`retries` = {retries} is more than {MAX_RETRIES}"));
        }
        retries
    }

    fn variable(&mut self, field: &str, name: &str) {
        if let Err(e) = check_variable_name(name) {
            self.invalid(format!("`{field}`: {e}"));
        }
    }

    fn template(&mut self, field: &str, s: &str) -> Template {
        Template::parse(s).unwrap_or_else(|e| {
            self.invalid(format!("`{field}` {e}"));
            Template(Vec::new())
        })
    }

    fn play(&mut self, s: PlaySpec) -> Node {
        if s.prompts.is_empty() {
            self.invalid("`prompts` is empty: a play node must play something".into());
        }
        Node::Play {
            prompts: self.prompt_list("prompts", &s.prompts),
            barge_in: s.barge_in,
            next: self.target("next", &s.next),
        }
    }

    fn menu(&mut self, s: MenuSpec) -> Node {
        if s.choices.is_empty() {
            self.invalid("`choices` is empty".into());
        }
        let mut choices = Vec::with_capacity(s.choices.len());
        for (key, next) in &s.choices {
            let mut chars = key.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) if is_dtmf(c) => {
                    let id = self.target(&format!("choices.{key}"), next);
                    choices.push((c, id));
                }
                _ => self.error(FlowErrorKind::BadDigit(key.clone())),
            }
        }
        Node::Menu(Box::new(Menu {
            prompts: self.prompt_list("prompts", &s.prompts),
            invalid_prompts: self.prompt_list("invalid_prompts", &s.invalid_prompts),
            no_input_prompts: self.prompt_list("no_input_prompts", &s.no_input_prompts),
            choices,
            timeout: self.timeout("timeout_s", s.timeout_s),
            retries: self.retries(s.retries),
            barge_in: s.barge_in,
            fail: self.optional_target("fail", s.fail.as_deref()),
        }))
    }

    fn collect(&mut self, s: CollectSpec) -> Node {
        self.variable("variable", &s.variable);
        if s.max_digits == 0 || s.max_digits > MAX_COLLECT_DIGITS {
            self.invalid(format!(
                "`max_digits` = {} must be between 1 and {MAX_COLLECT_DIGITS}",
                s.max_digits
            ));
        }
        if s.min_digits > s.max_digits {
            self.invalid(format!(
                "`min_digits` = {} is more than `max_digits` = {}",
                s.min_digits, s.max_digits
            ));
        }
        let terminator = match s.terminator.as_deref() {
            None => None,
            Some(t) => {
                let mut chars = t.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) if is_dtmf(c) && !c.is_ascii_digit() => Some(c),
                    _ => {
                        self.invalid(format!(
                            "`terminator` {t:?} must be one of * # A B C D (digits are input)"
                        ));
                        None
                    }
                }
            }
        };
        Node::Collect(Box::new(Collect {
            prompts: self.prompt_list("prompts", &s.prompts),
            invalid_prompts: self.prompt_list("invalid_prompts", &s.invalid_prompts),
            no_input_prompts: self.prompt_list("no_input_prompts", &s.no_input_prompts),
            variable: s.variable,
            min_digits: s.min_digits,
            max_digits: s.max_digits,
            terminator,
            first_digit_timeout: self.timeout("first_digit_timeout_s", s.first_digit_timeout_s),
            inter_digit_timeout: self.timeout("inter_digit_timeout_s", s.inter_digit_timeout_s),
            retries: self.retries(s.retries),
            barge_in: s.barge_in,
            next: self.target("next", &s.next),
            fail: self.optional_target("fail", s.fail.as_deref()),
        }))
    }

    fn lookup(&mut self, s: LookupSpec) -> Node {
        let by = match (s.by.as_str(), s.variable) {
            ("caller", None) => LookupBy::Caller,
            ("digits", Some(v)) => {
                self.variable("variable", &v);
                LookupBy::Variable(v)
            }
            ("caller", Some(_)) => {
                self.invalid("`variable` is only for `by = \"digits\"`".into());
                LookupBy::Caller
            }
            ("digits", None) => {
                self.invalid("`by = \"digits\"` needs `variable` (the collected digits)".into());
                LookupBy::Caller
            }
            (other, _) => {
                self.invalid(format!("`by` = {other:?} must be \"caller\" or \"digits\""));
                LookupBy::Caller
            }
        };
        Node::Lookup {
            by,
            found: self.target("found", &s.found),
            not_found: self.target("not_found", &s.not_found),
        }
    }

    fn hours(&mut self, s: HoursSpec) -> Node {
        let (hours, problems) = BusinessHours::from_spec(&s.time_zone, &s.periods, &s.holidays);
        for p in problems {
            self.invalid(p);
        }
        Node::Hours {
            hours: Box::new(hours),
            open: self.target("open", &s.open),
            closed: self.target("closed", &s.closed),
        }
    }

    fn set(&mut self, s: SetSpec) -> Node {
        self.variable("variable", &s.variable);
        Node::Set {
            value: self.template("value", &s.value),
            variable: s.variable,
            next: self.target("next", &s.next),
        }
    }

    fn route(&mut self, s: RouteSpec) -> Node {
        let given: Vec<&str> = [
            ("queue", s.queue.is_some()),
            ("agent", s.agent.is_some()),
            ("flow", s.flow.is_some()),
            ("voicemail", s.voicemail.is_some()),
            ("external", s.external.is_some()),
        ]
        .iter()
        .filter(|(_, set)| *set)
        .map(|(k, _)| *k)
        .collect();
        if given.len() != 1 {
            self.invalid(format!(
                "a route needs exactly one of queue, agent, flow, voicemail, external (has: {})",
                if given.is_empty() {
                    "none".to_string()
                } else {
                    given.join(", ")
                }
            ));
            return Node::Hangup { prompts: vec![] };
        }
        if s.priority.is_some() && s.queue.is_none() {
            self.invalid("`priority` is only for a queue route".into());
        }
        let fallback = self.optional_target("fallback", s.fallback.as_deref());
        let to = if let Some(q) = &s.queue {
            let name = self.checked_target(
                "queue",
                q,
                is_name,
                |ctx| &ctx.queues,
                FlowErrorKind::UnknownQueue,
            );
            RouteTo::Queue {
                name,
                priority: s.priority.unwrap_or(0),
            }
        } else if let Some(a) = &s.agent {
            RouteTo::Agent(self.checked_target(
                "agent",
                a,
                is_name,
                |ctx| &ctx.agents,
                FlowErrorKind::UnknownAgent,
            ))
        } else if let Some(v) = &s.voicemail {
            RouteTo::Voicemail(self.checked_target(
                "voicemail",
                v,
                is_name,
                |ctx| &ctx.voicemail_boxes,
                FlowErrorKind::UnknownVoicemail,
            ))
        } else if let Some(x) = &s.external {
            let no_known: fn(&ValidationContext) -> &Option<BTreeSet<String>> = |_| &None;
            RouteTo::External(self.checked_target(
                "external",
                x,
                is_external_number,
                no_known,
                |n| FlowErrorKind::Invalid(format!("`external` {n:?} is not a phone number")),
            ))
        } else if let Some(f) = &s.flow {
            // Checked across the set once every file is loaded.
            self.flow_refs
                .push((self.node.clone(), self.line, f.clone()));
            if s.fallback.is_some() {
                self.invalid("`fallback` is for targets built from variables, not flows".into());
            }
            RouteTo::Flow(f.clone())
        } else {
            unreachable!("exactly one target was checked above")
        };
        let dynamic = match &to {
            RouteTo::Queue { name: t, .. }
            | RouteTo::Agent(t)
            | RouteTo::Voicemail(t)
            | RouteTo::External(t) => t.as_static().is_none(),
            RouteTo::Flow(_) => false,
        };
        if dynamic && fallback.is_none() {
            self.invalid(
                "a target built from variables needs `fallback` (where to go when it comes out \
                 empty or malformed)"
                    .into(),
            );
        }
        Node::Route { to, fallback }
    }

    /// A route target: static names are checked now (syntax, and membership when the app
    /// told us the names); one built from variables needs a `fallback` for when it comes out
    /// wrong at call time.
    fn checked_target(
        &mut self,
        field: &str,
        raw: &str,
        syntax: fn(&str) -> bool,
        known: impl Fn(&ValidationContext) -> &Option<BTreeSet<String>>,
        unknown: impl Fn(String) -> FlowErrorKind,
    ) -> Template {
        let t = self.template(field, raw);
        match t.as_static() {
            Some(name) if !syntax(&name) => {
                self.invalid(format!("`{field}` {name:?} is not a valid {field} target"))
            }
            Some(name) => {
                if let Some(set) = known(self.ctx)
                    && !set.contains(&name)
                {
                    self.error(unknown(name));
                }
            }
            None => {}
        }
        t
    }

    fn hangup(&mut self, s: HangupSpec) -> Node {
        Node::Hangup {
            prompts: self.prompt_list("prompts", &s.prompts),
        }
    }
}
