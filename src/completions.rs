//! Shell completion scripts from the clap definitions in [`crate::cli`]: `vast-supervisor
//! completions SHELL` prints them, and `examples/generate_docs.rs` writes the same scripts into
//! `packaging/completions/` for the packages. Owns only the generation; hidden test-only flags
//! are left out.

use crate::cli::Cli;
use clap::CommandFactory;
pub use clap_complete::Shell;
use std::sync::OnceLock;

const BIN: &str = "vast-supervisor";

/// The completion script for `shell`.
pub fn script(shell: Shell) -> Result<Vec<u8>, String> {
    let cmd = without_hidden_args(&Cli::command());
    if shell == Shell::Bash {
        return bash(&cmd);
    }
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd.clone(), BIN, &mut script);
    Ok(script)
}

/// The bash script, generated for `vast_supervisor` and registered for `vast-supervisor`.
/// clap_complete spells the state of a hyphenated program name two different ways, so options
/// after a command never complete (clap-rs/clap#6421); a name without the hyphen avoids it.
/// The script matches the program by its first word, whatever it is called.
fn bash(cmd: &clap::Command) -> Result<Vec<u8>, String> {
    let generated_name = BIN.replace('-', "_");
    let mut script = Vec::new();
    clap_complete::generate(Shell::Bash, &mut cmd.clone(), &generated_name, &mut script);
    let script = String::from_utf8_lossy(&script);
    let registration = format!(" {generated_name}\n");
    let mut registered = 0;
    let renamed: String = script
        .split_inclusive('\n')
        .map(|line| {
            if line.trim_start().starts_with("complete -F") && line.ends_with(&registration) {
                registered += 1;
                format!("{} {BIN}\n", &line[..line.len() - registration.len()])
            } else {
                line.to_string()
            }
        })
        .collect();
    if registered == 0 {
        return Err(
            "the bash script has no `complete -F ...` line to register vast-supervisor with".into(),
        );
    }
    Ok(renamed.into_bytes())
}

/// clap_complete offers hidden arguments too. The test-only flags of `run` must not reach
/// users' shells, so the completions come from a copy of the command line without them.
fn without_hidden_args(cmd: &clap::Command) -> clap::Command {
    // Without clap's `string` feature a command name must be a `&'static str`: the copies
    // borrow theirs from this list of every name in the tree.
    static NAMES: OnceLock<Vec<String>> = OnceLock::new();
    fn collect(cmd: &clap::Command, names: &mut Vec<String>) {
        names.push(cmd.get_name().to_string());
        for sub in cmd.get_subcommands() {
            collect(sub, names);
        }
    }
    let names = NAMES.get_or_init(|| {
        let mut names = Vec::new();
        collect(&Cli::command(), &mut names);
        names
    });
    let name: &'static str = names
        .iter()
        .find(|n| n.as_str() == cmd.get_name())
        .map(String::as_str)
        .unwrap_or(BIN);
    let mut copy = clap::Command::new(name)
        .args(cmd.get_arguments().filter(|a| !a.is_hide_set()).cloned())
        .subcommands(
            cmd.get_subcommands()
                .filter(|s| !s.is_hide_set())
                .map(without_hidden_args),
        );
    if let Some(about) = cmd.get_about() {
        copy = copy.about(about.clone());
    }
    if cmd.get_version().is_some() {
        copy = copy.version(env!("CARGO_PKG_VERSION"));
    }
    copy
}
