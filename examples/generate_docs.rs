//! Generates the man pages and shell completions that the packages ship, into `packaging/man/`
//! and `packaging/completions/`:
//!
//! - `vast-supervisor.1` and one `vast-supervisor-COMMAND.1` per command, from the clap
//!   definitions in `src/cli.rs` (clap_mangen);
//! - `vast-supervisor.toml.5`, from the configuration reference `docs/CONFIGURATION.md`, which
//!   stays the one place the configuration is documented;
//! - bash, zsh and fish completions (`vast_supervisor::completions`, which `vast-supervisor
//!   completions SHELL` prints too).
//!
//! ```sh
//! cargo run --example generate_docs              # rewrite the committed files
//! cargo run --example generate_docs -- --check   # exit 1 when a committed file is stale
//! ```
//!
//! `tests/packaging_docs.rs` includes this file and runs the same check in `cargo test`. This
//! file only renders: the command line and the reference text live in their own files.

use clap::{CommandFactory, Parser};
use clap_mangen::roff::{bold, italic, roman, Inline, Roff};
use clap_mangen::Man;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use vast_supervisor::cli::Cli;
use vast_supervisor::completions::{self, Shell};

/// The configuration reference, relative to the repository.
pub const CONFIG_REFERENCE: &str = "docs/CONFIGURATION.md";
/// Where the man pages go, relative to the repository.
pub const MAN_DIR: &str = "packaging/man";
/// Where the completions go, relative to the repository.
pub const COMPLETIONS_DIR: &str = "packaging/completions";

const BIN: &str = "vast-supervisor";

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("completion: {0}")]
    Completion(String),
    #[error("{path}:{line}: {message}")]
    Markdown {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

/// Every generated file: its path relative to the repository, and its contents.
pub type Generated = BTreeMap<PathBuf, Vec<u8>>;

/// Renders every man page and completion script. `repo` is the repository root (where
/// `docs/CONFIGURATION.md` is read from).
pub fn generate_all(repo: &Path) -> Result<Generated, GenerateError> {
    let mut files = Generated::new();
    let cmd = Cli::command();
    for (name, page) in command_pages(cmd.clone()) {
        files.insert(Path::new(MAN_DIR).join(name), page);
    }
    let reference_path = repo.join(CONFIG_REFERENCE);
    let reference =
        std::fs::read_to_string(&reference_path).map_err(|source| GenerateError::Io {
            path: reference_path.clone(),
            source,
        })?;
    let config_page = config_page(&reference, cmd.get_version().unwrap_or_default()).map_err(
        |MarkdownError { line, message }| GenerateError::Markdown {
            path: PathBuf::from(CONFIG_REFERENCE),
            line,
            message,
        },
    )?;
    files.insert(
        Path::new(MAN_DIR).join(format!("{BIN}.toml.5")),
        config_page.into_bytes(),
    );
    for (shell, file_name) in [
        (Shell::Bash, format!("{BIN}.bash")),
        (Shell::Zsh, format!("_{BIN}")),
        (Shell::Fish, format!("{BIN}.fish")),
    ] {
        let script = completions::script(shell).map_err(GenerateError::Completion)?;
        files.insert(Path::new(COMPLETIONS_DIR).join(file_name), script);
    }
    Ok(files)
}

/// What differs between the generated files and the repository: files missing or different,
/// and files in the output directories that the generator no longer produces.
pub fn stale_files(repo: &Path, generated: &Generated) -> Result<Vec<String>, GenerateError> {
    let mut stale = Vec::new();
    for (path, contents) in generated {
        match std::fs::read(repo.join(path)) {
            Ok(committed) if &committed == contents => {}
            Ok(_) => stale.push(format!("{} differs", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                stale.push(format!("{} is missing", path.display()))
            }
            Err(source) => {
                return Err(GenerateError::Io {
                    path: repo.join(path),
                    source,
                })
            }
        }
    }
    for extra in unexpected_files(repo, generated)? {
        stale.push(format!("{} is no longer generated", extra.display()));
    }
    Ok(stale)
}

/// Writes every generated file and removes the ones no longer generated.
pub fn write_all(repo: &Path, generated: &Generated) -> Result<(), GenerateError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| GenerateError::Io { path, source }
    };
    for dir in [MAN_DIR, COMPLETIONS_DIR] {
        std::fs::create_dir_all(repo.join(dir)).map_err(io(&repo.join(dir)))?;
    }
    for extra in unexpected_files(repo, generated)? {
        std::fs::remove_file(repo.join(&extra)).map_err(io(&repo.join(&extra)))?;
    }
    for (path, contents) in generated {
        std::fs::write(repo.join(path), contents).map_err(io(&repo.join(path)))?;
    }
    Ok(())
}

fn unexpected_files(repo: &Path, generated: &Generated) -> Result<Vec<PathBuf>, GenerateError> {
    let mut extra = Vec::new();
    for dir in [MAN_DIR, COMPLETIONS_DIR] {
        let entries = match std::fs::read_dir(repo.join(dir)) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => {
                return Err(GenerateError::Io {
                    path: repo.join(dir),
                    source,
                })
            }
        };
        for entry in entries {
            let entry = entry.map_err(|source| GenerateError::Io {
                path: repo.join(dir),
                source,
            })?;
            let relative = Path::new(dir).join(entry.file_name());
            if !generated.contains_key(&relative) {
                extra.push(relative);
            }
        }
    }
    extra.sort();
    Ok(extra)
}

// ---- section 1: the command line ----------------------------------------------------------------

/// `vast-supervisor.1` and `vast-supervisor-COMMAND.1` for every visible command.
fn command_pages(cmd: clap::Command) -> Vec<(String, Vec<u8>)> {
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let commands: Vec<clap::Command> = cmd
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .cloned()
        .collect();
    let command_pages: Vec<String> = commands
        .iter()
        .map(|c| format!("{BIN}-{}", c.get_name()))
        .collect();

    let source = format!("{BIN} {}", cmd.get_version().unwrap_or_default());
    let mut pages = Vec::new();
    let main = Man::new(cmd.clone());
    let mut see_also: Vec<String> = vec![format!("{BIN}.toml(5)")];
    see_also.extend(command_pages.iter().map(|p| format!("{p}(1)")));
    see_also.push("systemctl(1)".into());
    let main_page = PageBuilder::new(&main, BIN, &source)
        .section(|m, w| m.render_name_section(w))
        .section(|m, w| m.render_synopsis_section(w))
        .section(|m, w| m.render_description_section(w))
        .section(|m, w| m.render_options_section(w))
        .section(|m, w| m.render_subcommands_section(w))
        .roff(signals_section())
        .roff(environment_section())
        .roff(files_section())
        .roff(http_section())
        .roff(exit_status_section())
        .roff(see_also_section(&see_also))
        .section(|m, w| m.render_version_section(w))
        .finish();
    pages.push((main.get_filename(), main_page));

    for command in commands {
        let man = Man::new(command.clone());
        let has_options = command.get_arguments().any(|a| !a.is_hide_set());
        let title = format!("{BIN}-{}", command.get_name());
        let mut page = PageBuilder::new(&man, &title, &source)
            .section(|m, w| m.render_name_section(w))
            .section(|m, w| m.render_synopsis_section(w))
            .section(|m, w| m.render_description_section(w));
        if has_options {
            page = page.section(|m, w| m.render_options_section(w));
        }
        // The daemon's own page says what the running process reads, answers and obeys.
        if command.get_name() == "run" {
            page = page
                .roff(signals_section())
                .roff(environment_section())
                .roff(files_section())
                .roff(http_section());
        }
        let page = page
            .roff(exit_status_section())
            .roff(see_also_section(&[
                format!("{BIN}(1)"),
                format!("{BIN}.toml(5)"),
            ]))
            .finish();
        pages.push((man.get_filename(), page));
    }
    pages
}

/// Joins clap_mangen's sections and our own into one page. Every rendered piece starts with
/// the same apostrophe preamble; the page keeps only the first.
struct PageBuilder<'m> {
    man: &'m Man,
    page: Vec<u8>,
}

impl<'m> PageBuilder<'m> {
    fn new(man: &'m Man, title: &str, source: &str) -> PageBuilder<'m> {
        let page = title_line(title, "1", source).render().into_bytes();
        PageBuilder { man, page }
    }

    fn section(
        mut self,
        render: impl Fn(&Man, &mut dyn std::io::Write) -> std::io::Result<()>,
    ) -> Self {
        let mut piece = Vec::new();
        render(self.man, &mut piece).expect("rendering into a Vec cannot fail");
        self.append(&piece);
        self
    }

    fn roff(mut self, roff: Roff) -> Self {
        self.append(roff.render().as_bytes());
        self
    }

    fn append(&mut self, piece: &[u8]) {
        let preamble = Roff::new().render();
        let piece = piece.strip_prefix(preamble.as_bytes()).unwrap_or(piece);
        self.page.extend_from_slice(piece);
    }

    fn finish(self) -> Vec<u8> {
        self.page
    }
}

/// `.TH TITLE SECTION "" SOURCE ""`. clap_mangen's own title line drops the empty date
/// argument, which shifts the source into the date's place in the page footer.
fn title_line(title: &str, section: &str, source: &str) -> Roff {
    let mut roff = Roff::new();
    roff.control("TH", [title, section, "\"\"", source, "\"\""]);
    roff
}

/// `.TP` entries under a section heading.
fn definitions(heading: &str, entries: &[(&str, &str)], term: impl Fn(&str) -> Inline) -> Roff {
    let mut roff = Roff::new();
    roff.control("SH", [heading]);
    for (name, what) in entries {
        roff.control("TP", []);
        roff.text([term(name)]);
        roff.text([roman(*what)]);
    }
    roff
}

fn signals_section() -> Roff {
    definitions(
        "SIGNALS",
        &[
            (
                "SIGHUP",
                "Reload the configuration, file by file: a file with a problem is rejected alone and \
                 its previous version stays in force (the same as vast-supervisor reload).",
            ),
            (
                "SIGTERM, SIGINT",
                "Stop polling, deliver what can be delivered within a few seconds, keep the rest \
                 queued in the state directory for the next start, send supervisor_stop and exit 0.",
            ),
        ],
        |t| bold(t),
    )
}

fn environment_section() -> Roff {
    definitions(
        "ENVIRONMENT",
        &[
            (
                "VAST_SUPERVISOR_CONFIG",
                "The configuration directory when --config is not given.",
            ),
            (
                "RUST_LOG",
                "A log filter (for example vast_supervisor=debug) that overrides -v and -q.",
            ),
            (
                "NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID",
                "Set by systemd for Type=notify: READY, RELOADING, STOPPING and STATUS \
                 notifications, and a watchdog ping every half of WatchdogSec=.",
            ),
            (
                "JOURNAL_STREAM",
                "Set by systemd; when it names stderr, log lines start with a <N> syslog priority \
                 and carry no timestamp. Colours are used only when stderr is a terminal.",
            ),
            (
                "api_key_env, url_env",
                "Configuration keys that name further variables holding secrets, see \
                 vast-supervisor.toml(5).",
            ),
        ],
        |t| bold(t),
    )
}

fn http_section() -> Roff {
    definitions(
        "HTTP ENDPOINTS",
        &[
            (
                "GET /health",
                "With http_listen set: 200 and {\"status\": \"ok\", \"accounts\": [...]} while \
                 the daemon runs, 503 when every configured account is stale or failing \
                 authentication. For load balancers and container health checks.",
            ),
            (
                "GET /metrics",
                "Prometheus text format: polls and poll errors by account, events by kind, sends and \
                 failed sends by target, queue depths, restarts and configuration reloads.",
            ),
        ],
        |t| bold(t),
    )
}

fn files_section() -> Roff {
    definitions(
        "FILES",
        &[
            (
                "/etc/vast-supervisor/vast-supervisor.toml",
                "The main configuration file (global settings), see vast-supervisor.toml(5).",
            ),
            (
                "/etc/vast-supervisor/conf.d/*.toml",
                "Accounts and notification targets, read in byte-wise order of their names.",
            ),
            (
                "/var/lib/vast-supervisor",
                "The state directory (state_dir): snapshots and the queue of undelivered events.",
            ),
            (
                "/run/vast-supervisor/control.sock",
                "The control socket (control_socket) of the commands that talk to the running daemon.",
            ),
        ],
        |t| italic(t),
    )
}

fn exit_status_section() -> Roff {
    definitions(
        "EXIT STATUS",
        &[
            ("0", "Success."),
            ("1", "Runtime failure."),
            ("2", "Usage or configuration error (check found a problem)."),
            ("3", "The daemon is not reachable over its control socket."),
        ],
        |t| bold(t),
    )
}

fn see_also_section(pages: &[String]) -> Roff {
    let mut roff = Roff::new();
    roff.control("SH", ["SEE ALSO"]);
    let mut line = Vec::new();
    for (i, page) in pages.iter().enumerate() {
        let (name, section) = page.split_once('(').unwrap_or((page, ""));
        line.push(bold(name));
        let separator = if i + 1 < pages.len() { ", " } else { "" };
        line.push(roman(format!("({section}{separator}")));
    }
    roff.text(line);
    roff
}

// ---- section 5: the configuration format, from docs/CONFIGURATION.md ----------------------------

/// A construct of the reference that the man page cannot render faithfully.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkdownError {
    pub line: usize,
    pub message: String,
}

/// `vast-supervisor.toml.5` from the Markdown reference.
pub fn config_page(markdown: &str, version: &str) -> Result<String, MarkdownError> {
    let mut roff = title_line(&format!("{BIN}.toml"), "5", &format!("{BIN} {version}"));
    // Key names such as bearer_token_file read badly when hyphenated at a line end.
    roff.control("nh", []);
    roff.control("SH", ["NAME"]);
    roff.text([roman(format!("{BIN}.toml - configuration files of {BIN}"))]);
    roff.control("SH", ["SYNOPSIS"]);
    roff.text([
        italic("/etc/vast-supervisor/vast-supervisor.toml"),
        Inline::LineBreak,
        italic("/etc/vast-supervisor/conf.d/*.toml"),
    ]);
    roff.control("SH", ["DESCRIPTION"]);
    markdown_to_roff(markdown, &mut roff)?;
    roff.extend([see_also_section(&[
        format!("{BIN}(1)"),
        format!("{BIN}-check(1)"),
        "systemctl(1)".into(),
    ])]);
    Ok(roff.render())
}

/// Renders the Markdown subset the reference is written in (see the comment at its top).
/// The `#` title is left out: the man page has its own NAME.
pub fn markdown_to_roff(markdown: &str, roff: &mut Roff) -> Result<(), MarkdownError> {
    let lines: Vec<&str> = markdown.lines().collect();
    let mut i = 0;
    let mut seen_title = false;
    while i < lines.len() {
        let line = lines[i];
        let number = i + 1;
        let error = |message: &str| MarkdownError {
            line: number,
            message: message.to_string(),
        };
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            i += 1;
        } else if trimmed.starts_with("<!--") {
            i = skip_comment(&lines, i)?;
        } else if let Some(title) = trimmed.strip_prefix("# ") {
            if seen_title || title.trim().is_empty() {
                return Err(error("only one \"# title\" is allowed, on top"));
            }
            seen_title = true;
            i += 1;
        } else if let Some(heading) = trimmed.strip_prefix("## ") {
            roff.control("SH", [heading.trim().to_uppercase().as_str()]);
            i += 1;
        } else if let Some(heading) = trimmed.strip_prefix("### ") {
            roff.control("SS", [heading.trim()]);
            i += 1;
        } else if trimmed.starts_with('#') {
            return Err(error("only ## and ### headings are supported"));
        } else if trimmed.starts_with("```") {
            i = code_block(&lines, i, roff)?;
        } else if trimmed.starts_with('|') {
            i = table(&lines, i, roff)?;
        } else if trimmed.starts_with("- ") {
            i = list(&lines, i, roff)?;
        } else if is_unsupported_block(trimmed) {
            return Err(error(
                "unsupported Markdown block (use paragraphs, \"- \" lists, tables or code blocks)",
            ));
        } else {
            i = paragraph(&lines, i, roff)?;
        }
    }
    if !seen_title {
        return Err(MarkdownError {
            line: 1,
            message: "the reference must start with a \"# title\"".into(),
        });
    }
    Ok(())
}

fn is_unsupported_block(line: &str) -> bool {
    let numbered = line
        .split_once(". ")
        .is_some_and(|(n, _)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
    line.starts_with('>')
        || line.starts_with("* ")
        || line.starts_with("+ ")
        || line.starts_with('<')
        || line.starts_with("    ")
        || line.starts_with('\t')
        || numbered
}

fn skip_comment(lines: &[&str], start: usize) -> Result<usize, MarkdownError> {
    for (offset, line) in lines[start..].iter().enumerate() {
        if let Some(end) = line.find("-->") {
            if !line[end + 3..].trim().is_empty() {
                return Err(MarkdownError {
                    line: start + offset + 1,
                    message: "text after the end of a comment".into(),
                });
            }
            return Ok(start + offset + 1);
        }
    }
    Err(MarkdownError {
        line: start + 1,
        message: "the comment is never closed".into(),
    })
}

fn paragraph(lines: &[&str], start: usize, roff: &mut Roff) -> Result<usize, MarkdownError> {
    let mut end = start;
    while end < lines.len() {
        let line = lines[end].trim();
        let starts_block = line.is_empty()
            || line.starts_with('#')
            || line.starts_with("```")
            || line.starts_with('|')
            || line.starts_with("- ")
            || line.starts_with("<!--");
        if starts_block && end > start {
            break;
        }
        end += 1;
    }
    let text = lines[start..end]
        .iter()
        .map(|l| l.trim())
        .collect::<Vec<_>>()
        .join(" ");
    roff.control("PP", []);
    roff.text(inline(&text, start + 1)?);
    Ok(end)
}

fn list(lines: &[&str], start: usize, roff: &mut Roff) -> Result<usize, MarkdownError> {
    let mut i = start;
    while i < lines.len() {
        let Some(first) = lines[i].strip_prefix("- ") else {
            break;
        };
        let item_line = i + 1;
        let mut text = first.trim().to_string();
        i += 1;
        while i < lines.len() && lines[i].starts_with("  ") && !lines[i].trim().is_empty() {
            text.push(' ');
            text.push_str(lines[i].trim());
            i += 1;
        }
        roff.control("IP", ["\\(bu", "2"]);
        roff.text(inline(&text, item_line)?);
    }
    Ok(i)
}

fn code_block(lines: &[&str], start: usize, roff: &mut Roff) -> Result<usize, MarkdownError> {
    let Some(end) = lines[start + 1..]
        .iter()
        .position(|l| l.trim_end() == "```")
        .map(|offset| start + 1 + offset)
    else {
        return Err(MarkdownError {
            line: start + 1,
            message: "the code block is never closed".into(),
        });
    };
    roff.control("PP", []);
    roff.control("RS", ["4"]);
    roff.control("nf", []);
    for line in &lines[start + 1..end] {
        roff.text([roman(*line)]);
    }
    roff.control("fi", []);
    roff.control("RE", []);
    Ok(end + 1)
}

/// A table becomes a tagged list: the first cell is the tag, the cells between the first and
/// the last go in parentheses after it, and the last cell is the paragraph. The header row is
/// left out.
fn table(lines: &[&str], start: usize, roff: &mut Roff) -> Result<usize, MarkdownError> {
    let header = cells(lines[start]);
    let separator_ok = lines.get(start + 1).is_some_and(|l| {
        let separator = cells(l);
        separator.len() == header.len()
            && separator
                .iter()
                .all(|c| !c.is_empty() && c.chars().all(|ch| matches!(ch, '-' | ':')))
    });
    if header.len() < 2 || !separator_ok {
        return Err(MarkdownError {
            line: start + 1,
            message: "a table needs a header row of at least two cells and a |---| row".into(),
        });
    }
    let mut i = start + 2;
    while i < lines.len() && lines[i].trim_start().starts_with('|') {
        let row = cells(lines[i]);
        if row.len() != header.len() {
            return Err(MarkdownError {
                line: i + 1,
                message: format!(
                    "the row has {} cells, the header {}",
                    row.len(),
                    header.len()
                ),
            });
        }
        let mut tag = inline(row[0], i + 1)?;
        if row.len() > 2 {
            let middle = row[1..row.len() - 1].join(", ");
            tag.push(roman(" ("));
            tag.extend(inline(&middle, i + 1)?);
            tag.push(roman(")"));
        }
        roff.control("TP", []);
        roff.text(tag);
        roff.text(inline(row[row.len() - 1], i + 1)?);
        i += 1;
    }
    Ok(i)
}

/// The cells of a table row. A `|` inside a code span does not split cells.
fn cells(line: &str) -> Vec<&str> {
    let line = line.trim();
    let inner = line.strip_prefix('|').unwrap_or(line);
    let inner = inner.strip_suffix('|').unwrap_or(inner);
    let mut cells = Vec::new();
    let mut in_code = false;
    let mut cell_start = 0;
    for (at, ch) in inner.char_indices() {
        match ch {
            '`' => in_code = !in_code,
            '|' if !in_code => {
                cells.push(inner[cell_start..at].trim());
                cell_start = at + 1;
            }
            _ => {}
        }
    }
    cells.push(inner[cell_start..].trim());
    cells
}

/// Inline markup: `code` (bold, as man pages show literal text), **bold**, *italic* and
/// [text](url) (the text, then the URL when it is absolute).
fn inline(text: &str, line: usize) -> Result<Vec<Inline>, MarkdownError> {
    let unclosed = |what: &str| MarkdownError {
        line,
        message: format!("unclosed {what}"),
    };
    let mut out = Vec::new();
    let mut plain = String::new();
    let mut rest = text;
    while let Some(ch) = rest.chars().next() {
        if let Some(after) = rest.strip_prefix('`') {
            let end = after.find('`').ok_or_else(|| unclosed("`code`"))?;
            flush(&mut plain, &mut out);
            out.push(bold(&after[..end]));
            rest = &after[end + 1..];
        } else if let Some(after) = rest.strip_prefix("**") {
            let end = after.find("**").ok_or_else(|| unclosed("**bold**"))?;
            flush(&mut plain, &mut out);
            out.push(bold(&after[..end]));
            rest = &after[end + 2..];
        } else if let Some(after) = rest.strip_prefix('*').filter(|a| !a.starts_with(' ')) {
            let end = after.find('*').ok_or_else(|| unclosed("*italic*"))?;
            flush(&mut plain, &mut out);
            out.push(italic(&after[..end]));
            rest = &after[end + 1..];
        } else if let Some((label, url, after)) = link(rest) {
            plain.push_str(label);
            if url.starts_with("http://") || url.starts_with("https://") {
                plain.push_str(&format!(" <{url}>"));
            }
            rest = after;
        } else {
            plain.push(ch);
            rest = &rest[ch.len_utf8()..];
        }
    }
    flush(&mut plain, &mut out);
    Ok(out)
}

fn flush(plain: &mut String, out: &mut Vec<Inline>) {
    if !plain.is_empty() {
        out.push(roman(std::mem::take(plain)));
    }
}

/// `[label](url)` at the start of `text`: the label, the URL and the text after it.
fn link(text: &str) -> Option<(&str, &str, &str)> {
    let after_open = text.strip_prefix('[')?;
    let (label, after_label) = after_open.split_once("](")?;
    let (url, after) = after_label.split_once(')')?;
    (!label.contains('[') && !url.contains(' ')).then_some((label, url, after))
}

// ---- the command ---------------------------------------------------------------------------------

/// Generates the man pages and shell completions of vast-supervisor.
#[derive(Debug, Parser)]
struct Args {
    /// Only compare with the committed files; exit 1 when one is stale
    #[arg(long)]
    check: bool,
    /// The repository root
    #[arg(long, value_name = "DIR", default_value = env!("CARGO_MANIFEST_DIR"))]
    repo: PathBuf,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let result = generate_all(&args.repo).and_then(|generated| {
        if args.check {
            stale_files(&args.repo, &generated)
        } else {
            write_all(&args.repo, &generated).map(|()| Vec::new())
        }
    });
    match result {
        Ok(stale) if stale.is_empty() => std::process::ExitCode::SUCCESS,
        Ok(stale) => {
            for problem in stale {
                eprintln!("{problem}");
            }
            eprintln!("run `cargo run --example generate_docs` and commit the result");
            std::process::ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("generate_docs: {e}");
            std::process::ExitCode::from(2)
        }
    }
}
