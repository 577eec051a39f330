//! Loading a configuration directory (SPEC §4): every class of error is reported as the exact
//! `path:line:col: message`, one bad file never hides the others, file order and ignored names,
//! secrets from files and the environment, and no secret in any output.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tempfile::TempDir;
use vast_supervisor::config::{
    check_command, load_dir, load_dir_with_env, parse_file, FileOutcome, InstanceSelector,
    LoadedConfig, LogAction, TargetUrl,
};
use vast_supervisor::event::{EventKind, Severity};

/// A configuration directory in a temp dir.
struct ConfigDir {
    dir: TempDir,
}

impl ConfigDir {
    fn new() -> ConfigDir {
        ConfigDir {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `relative` (e.g. "conf.d/10-a.toml") and returns its full path.
    fn write(&self, relative: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(relative);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, text).expect("write");
        path
    }

    fn load(&self) -> LoadedConfig {
        load_dir_with_env(self.path(), &no_env)
    }

    /// The `check` output for this directory: (exit code, stdout, stderr).
    fn check(&self) -> (i32, String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = check_command(self.path(), &mut out, &mut err);
        (
            code,
            String::from_utf8(out).expect("utf8"),
            String::from_utf8(err).expect("utf8"),
        )
    }
}

fn no_env(_: &str) -> Option<String> {
    None
}

/// Every diagnostic of a loaded directory, as `check` prints them.
fn messages(loaded: &LoadedConfig) -> Vec<String> {
    loaded.diagnostics().iter().map(|d| d.to_string()).collect()
}

/// Parses one file on its own and returns its diagnostics as strings.
fn file_messages(path: &Path, text: &str) -> Vec<String> {
    match parse_file(path, text, false, &no_env) {
        FileOutcome::Ok(_) => Vec::new(),
        FileOutcome::Rejected { diagnostics, .. } => {
            diagnostics.iter().map(|d| d.to_string()).collect()
        }
    }
}

const ALICE: &str = "[[account]]\nname = \"alice\"\napi_key = \"key-alice\"\n";

#[test]
fn unknown_key_gets_a_did_you_mean_hint() {
    let c = ConfigDir::new();
    let p = c.write(
        "conf.d/10-alice.toml",
        "[[account]]\nname = \"alice\"\napi_key = \"k\"\npol_interval = \"30s\"\nurl = \"console://\"\n",
    );
    let p = p.display();
    assert_eq!(
        messages(&c.load()),
        vec![
            format!("{p}:4:1: unknown key \"pol_interval\" in [[account]] (did you mean \"poll_interval\"?)"),
            format!("{p}:5:1: unknown key \"url\" in [[account]] (it belongs in [[target]])"),
        ]
    );
}

#[test]
fn wrong_types_are_all_reported_at_their_values() {
    let c = ConfigDir::new();
    let p = c.write(
        "conf.d/10-alice.toml",
        "[[account]]\nname = \"alice\"\napi_key = \"k\"\npoll_interval = 30\nwatch = \"machines\"\nactions_enabled = \"yes\"\nmachines = [1, \"2\"]\n",
    );
    let p = p.display();
    assert_eq!(
        messages(&c.load()),
        vec![
            format!(
                "{p}:4:17: poll_interval must be a duration string such as \"30s\", found integer"
            ),
            format!("{p}:5:9: watch must be an array of strings, found string"),
            format!("{p}:6:19: actions_enabled must be true or false, found string"),
            format!("{p}:7:16: machines entries must be machine ids (integers), found string"),
        ]
    );
}

#[test]
fn unknown_event_name_gets_a_hint() {
    let c = ConfigDir::new();
    let p = c.write(
        "conf.d/50-targets.toml",
        "[[target]]\nname = \"t\"\nurl = \"console://\"\nevents = [\"rental_start\", \"rental_strat\", \"bogus_thing\"]\n",
    );
    let p = p.display();
    assert_eq!(
        messages(&c.load()),
        vec![
            format!("{p}:4:27: unknown event \"rental_strat\" (did you mean \"rental_start\"?)"),
            format!("{p}:4:43: unknown event \"bogus_thing\" (expected an event name such as \"rental_start\", or all, error, recovery, system, startup)"),
        ]
    );
}

#[test]
fn duplicate_names_reject_the_later_file_only() {
    let c = ConfigDir::new();
    c.write(
        "conf.d/10-alice.toml",
        &format!("{ALICE}\n[[target]]\nname = \"ops\"\nurl = \"console://\"\n"),
    );
    let later = c.write(
        "conf.d/20-more.toml",
        "[[account]]\nname = \"alice\"\napi_key = \"k2\"\n\n[[account]]\nname = \"bob\"\napi_key = \"k3\"\n\n[[target]]\nname = \"ops\"\nurl = \"console://\"\n",
    );
    let loaded = c.load();
    let p = later.display();
    assert_eq!(
        messages(&loaded),
        vec![
            format!("{p}:2:8: duplicate account name \"alice\" (first defined at conf.d/10-alice.toml:2)"),
            format!("{p}:10:8: duplicate target name \"ops\" (first defined at conf.d/10-alice.toml:6)"),
        ]
    );
    assert!(loaded.files[0].is_ok());
    assert!(!loaded.files[1].is_ok());
    let names: Vec<&str> = loaded.accounts().iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["alice"]);
    assert_eq!(loaded.accounts()[0].api_key.expose(), "key-alice");
}

#[test]
fn duplicate_names_within_one_file() {
    let path = Path::new("/etc/vast-supervisor/conf.d/10-a.toml");
    assert_eq!(
        file_messages(path, &format!("{ALICE}{ALICE}")),
        vec![format!(
            "{}:5:8: duplicate account name \"alice\" (first defined at line 2)",
            path.display()
        )]
    );
}

#[test]
fn unreadable_secret_file() {
    let c = ConfigDir::new();
    let p = c.write(
        "conf.d/10-alice.toml",
        "[[account]]\nname = \"alice\"\napi_key_file = \"keys/missing\"\n",
    );
    let missing = c.path().join("conf.d/keys/missing");
    assert_eq!(
        messages(&c.load()),
        vec![format!(
            "{}:3:16: cannot read api_key_file \"{}\": No such file or directory (os error 2)",
            p.display(),
            missing.display()
        )]
    );
}

#[test]
fn bad_urls_per_scheme_family() {
    let c = ConfigDir::new();
    let urls = [
        "discord://hook/SECRET1",
        "slack://SECRET2",
        "tgram://SECRET3/1",
        "ntfys://u:SECRET4@host",
        "pover://SECRET5",
        "gotify://host",
        "mailtos://u:SECRET6@host",
        "jsons://u:SECRET7@:0/p",
        "file://SECRET8.jsonl",
        "teams://SECRET9",
    ];
    let text: String = urls
        .iter()
        .enumerate()
        .map(|(i, url)| format!("[[target]]\nname = \"t{i}\"\nurl = \"{url}\"\n"))
        .collect();
    let p = c.write("conf.d/50-targets.toml", &text);
    let p = p.display();
    let expected = [
        "discord URL must look like discord://WEBHOOK_ID/WEBHOOK_TOKEN (the webhook id must be a number)",
        "slack URL must look like slack://TOKEN_A/TOKEN_B/TOKEN_C (expected exactly three tokens; channels in the URL are not supported)",
        "telegram URL must look like tgram://BOT_TOKEN/CHAT_ID (the bot token must look like 123456789:ABC-DEF...)",
        "ntfy URL must look like ntfys://[USER:PASSWORD@ or TOKEN@]HOST[:PORT]/TOPIC (expected exactly one topic after the host)",
        "pushover URL must look like pover://USER_KEY@APP_TOKEN (the \"@\" between user key and app token is missing)",
        "gotify URL must look like gotify://HOST[:PORT][/PATH]/APP_TOKEN (the app token is missing)",
        "email URL must look like mailtos://USER:PASSWORD@HOST[:PORT]?to=ADDRESS[,ADDRESS][&from=ADDRESS] (to=ADDRESS is missing)",
        "webhook URL must look like jsons://[USER:PASSWORD@]HOST[:PORT]/PATH (the host is missing)",
        "file URL must look like file:///ABSOLUTE/PATH.jsonl (the path must be absolute: three slashes after \"file:\")",
        "unknown URL scheme (supported: discord, slack, tgram, ntfy(s), pover, gotify(s), mailto(s), json(s), file, console)",
    ];
    let want: Vec<String> = expected
        .iter()
        .enumerate()
        .map(|(i, m)| format!("{p}:{}:7: invalid url: {m}", 3 * i + 3))
        .collect();
    assert_eq!(messages(&c.load()), want);
}

#[test]
fn bad_url_from_env_and_file_names_the_source() {
    let c = ConfigDir::new();
    c.write("secrets/hook.url", "discord://1\n");
    let p = c.write(
        "conf.d/50-targets.toml",
        "[[target]]\nname = \"a\"\nurl_env = \"HOOK_URL\"\n\n[[target]]\nname = \"b\"\nurl_file = \"../secrets/hook.url\"\n",
    );
    let env = |name: &str| (name == "HOOK_URL").then(|| "slack://x".to_string());
    let loaded = load_dir_with_env(c.path(), &env);
    let file = c.path().join("conf.d/../secrets/hook.url");
    assert_eq!(
        messages(&loaded),
        vec![
            format!("{}:3:11: invalid URL in environment variable HOOK_URL: slack URL must look like slack://TOKEN_A/TOKEN_B/TOKEN_C (expected exactly three tokens; channels in the URL are not supported)", p.display()),
            format!("{}:7:12: invalid URL in url_file \"{}\": discord URL must look like discord://WEBHOOK_ID/WEBHOOK_TOKEN (expected exactly a webhook id and a token)", p.display(), file.display()),
        ]
    );
}

#[test]
fn poll_interval_below_the_minimum() {
    let c = ConfigDir::new();
    let p = c.write(
        "conf.d/10-alice.toml",
        &format!("{ALICE}poll_interval = \"5s\"\nstale_after_polls = 0\n"),
    );
    let p = p.display();
    assert_eq!(
        messages(&c.load()),
        vec![
            format!("{p}:4:17: poll_interval must be at least 10s (got 5s)"),
            format!("{p}:5:21: stale_after_polls must be a whole number of at least 1"),
        ]
    );
}

#[test]
fn log_rule_action_needs_actions_enabled() {
    let c = ConfigDir::new();
    let p = c.write(
        "conf.d/20-renter.toml",
        "[[account]]\nname = \"bob\"\napi_key = \"k\"\nwatch = [\"instances\"]\n\n[[account.log_rule]]\nname = \"done\"\ninstances = [\"label:train-*\", 5003]\nregex = \"^DONE\"\naction = \"destroy\"\n",
    );
    assert_eq!(
        messages(&c.load()),
        vec![format!(
            "{}:10:10: action = \"destroy\" needs actions_enabled = true in this [[account]]",
            p.display()
        )]
    );

    // With actions_enabled the same rule is accepted.
    c.write(
        "conf.d/20-renter.toml",
        "[[account]]\nname = \"bob\"\napi_key = \"k\"\nwatch = [\"instances\"]\nactions_enabled = true\n\n[[account.log_rule]]\nname = \"done\"\ninstances = [\"label:train-*\", 5003]\nregex = \"^DONE\"\naction = \"destroy\"\n",
    );
    let loaded = c.load();
    assert!(loaded.is_valid(), "{:?}", messages(&loaded));
    let rule = &loaded.accounts()[0].log_rules[0];
    assert_eq!(rule.name, "done");
    assert_eq!(
        rule.instances,
        vec![
            InstanceSelector::LabelGlob("train-*".into()),
            InstanceSelector::Id(5003)
        ]
    );
    assert_eq!(rule.action, Some(LogAction::Destroy));
}

#[test]
fn log_rule_problems() {
    let path = Path::new("/c/conf.d/20-renter.toml");
    let text = "[[account]]\nname = \"bob\"\napi_key = \"k\"\n\n[[account.log_rule]]\nname = \"done\"\ninstances = [\"train-*\"]\nregex = \"^(DONE\"\nactoin = \"stop\"\n";
    let p = path.display();
    assert_eq!(
        file_messages(path, text),
        vec![
            format!("{p}:5:1: log rules read instance logs: add \"instances\" to this account's watch list"),
            format!("{p}:7:14: instances entries are instance ids (integers) or \"label:GLOB\" strings"),
            format!("{p}:8:9: invalid regex in regex: unclosed group"),
            format!("{p}:9:1: unknown key \"actoin\" in [[account.log_rule]] (did you mean \"action\"?)"),
        ]
    );
}

#[test]
fn accounts_filter_naming_an_unknown_account() {
    let c = ConfigDir::new();
    c.write(
        "conf.d/10-bob.toml",
        "[[account]]\nname = \"bob\"\napi_key = \"k\"\n",
    );
    let p = c.write(
        "conf.d/50-targets.toml",
        "[[target]]\nname = \"t\"\nurl = \"console://\"\naccounts = [\"bob\", \"bobb\", \"zed\"]\n",
    );
    let loaded = c.load();
    let p = p.display();
    assert_eq!(
        messages(&loaded),
        vec![
            format!("{p}:4:20: unknown account \"bobb\" in accounts (did you mean \"bob\"?)"),
            format!("{p}:4:28: unknown account \"zed\" in accounts (no [[account]] has this name)"),
        ]
    );
    assert!(loaded.files[0].is_ok(), "the account file stays valid");
}

#[test]
fn accounts_of_a_rejected_file_still_count_as_known() {
    // On reload a rejected file keeps its previous version, so its accounts still exist.
    let c = ConfigDir::new();
    c.write(
        "conf.d/10-bob.toml",
        "[[account]]\nname = \"bob\"\napi_key = \"k\"\npoll_interval = \"1s\"\n",
    );
    c.write(
        "conf.d/50-targets.toml",
        "[[target]]\nname = \"t\"\nurl = \"console://\"\naccounts = [\"bob\"]\n",
    );
    let loaded = c.load();
    assert!(!loaded.files[0].is_ok());
    assert!(loaded.files[1].is_ok(), "{:?}", messages(&loaded));
}

#[test]
fn syntax_error_has_its_own_position() {
    let c = ConfigDir::new();
    let p = c.write(
        "conf.d/10-alice.toml",
        "[[account]]\nname = \"alice\napi_key = \"k\"\n",
    );
    assert_eq!(
        messages(&c.load()),
        vec![format!(
            "{}:2:14: TOML syntax error: invalid basic string",
            p.display()
        )]
    );
}

#[test]
fn missing_required_keys_and_conflicting_sources() {
    let path = Path::new("/c/conf.d/10-x.toml");
    let text = "[[account]]\nwatch = [\"machines\"]\n\n[[account]]\nname = \"b\"\napi_key = \"k\"\napi_key_env = \"K\"\n\n[[target]]\nname = \"t\"\n";
    let p = path.display();
    assert_eq!(
        file_messages(path, text),
        vec![
            format!("{p}:1:1: [[account]] needs a name"),
            format!("{p}:1:1: [[account]] needs one of api_key, api_key_file or api_key_env"),
            format!("{p}:7:1: api_key and api_key_env are both set: use exactly one of api_key, api_key_file, api_key_env"),
            format!("{p}:9:1: [[target]] needs one of url, url_file or url_env"),
        ]
    );
}

#[test]
fn globals_belong_in_the_main_file() {
    let c = ConfigDir::new();
    let main = c.write(
        "vast-supervisor.toml",
        "state_dir = \"state\"\ncontrol_socket = \"/run/x.sock\"\nhttp_listen = \"127.0.0.1:9477\"\n",
    );
    let dropin = c.write(
        "conf.d/10-a.toml",
        "state_dir = \"/var/lib/x\"\n[account]\nname = \"a\"\n",
    );
    let loaded = c.load();
    let d = dropin.display();
    assert_eq!(
        messages(&loaded),
        vec![
            format!("{d}:1:1: \"state_dir\" is a global setting: put it in the main file vast-supervisor.toml, not in conf.d"),
            format!("{d}:2:2: write [[account]] (a list of tables), not [account]"),
        ]
    );
    assert!(loaded.files[0].is_ok());
    assert_eq!(
        loaded.globals.state_dir,
        main.parent().unwrap().join("state")
    );
    assert_eq!(loaded.globals.control_socket, PathBuf::from("/run/x.sock"));
    assert_eq!(
        loaded.globals.http_listen,
        Some("127.0.0.1:9477".parse().unwrap())
    );

    c.write(
        "vast-supervisor.toml",
        "http_listen = \"localhost\"\nstat_dir = \"/x\"\n",
    );
    std::fs::remove_file(&dropin).unwrap();
    let m = main.display();
    assert_eq!(
        messages(&c.load()),
        vec![
            format!("{m}:1:15: http_listen must be an address and port such as \"127.0.0.1:9477\""),
            format!("{m}:2:1: unknown key \"stat_dir\" (did you mean \"state_dir\"?)"),
        ]
    );
}

#[test]
fn dashboard_and_basic_auth_file_are_main_file_keys_checked_at_their_values() {
    let c = ConfigDir::new();
    c.write("secrets/web", "admin:Dashboard-Secret-42\n");
    c.write("secrets/bad", "no colon here\n");
    c.write("secrets/empty-password", "admin:\n");
    let main = c.write(
        "vast-supervisor.toml",
        "http_listen = \"127.0.0.1:9477\"\ndashboard = false\nhttp_basic_auth_file = \"secrets/web\"\n",
    );
    let loaded = c.load();
    assert!(messages(&loaded).is_empty(), "{:?}", messages(&loaded));
    assert!(!loaded.globals.dashboard);
    let auth = loaded.globals.http_basic_auth.clone().expect("auth read");
    assert_eq!(auth.user, "admin");
    assert_eq!(auth.password.expose(), "Dashboard-Secret-42");
    assert!(!format!("{:?}", loaded.globals).contains("Dashboard-Secret-42"));
    assert!(
        vast_supervisor::config::model::Globals::default().dashboard,
        "on by default"
    );

    c.write(
        "vast-supervisor.toml",
        "dashboard = \"yes\"\nhttp_basic_auth_file = \"secrets/bad\"\nhttp_basic_auth = \"x\"\n",
    );
    let m = main.display();
    let dir = main.parent().unwrap().display();
    let got = messages(&c.load());
    assert_eq!(
        got,
        vec![
            format!("{m}:1:13: dashboard must be true or false, found string"),
            format!("{m}:2:24: http_basic_auth_file \"{dir}/secrets/bad\" must hold one line user:password, both non-empty"),
            format!("{m}:3:1: unknown key \"http_basic_auth\" (did you mean \"http_basic_auth_file\"?)"),
        ]
    );
    c.write(
        "vast-supervisor.toml",
        "http_basic_auth_file = \"secrets/empty-password\"\n",
    );
    assert_eq!(messages(&c.load()).len(), 1);
    c.write(
        "vast-supervisor.toml",
        "http_basic_auth_file = \"secrets/missing\"\n",
    );
    let got = messages(&c.load());
    assert!(
        got[0].starts_with(&format!("{m}:1:24: cannot read http_basic_auth_file")),
        "{got:?}"
    );
}

#[test]
fn missing_directory_is_a_diagnostic() {
    let c = ConfigDir::new();
    let missing = c.path().join("nope");
    let loaded = load_dir(&missing);
    assert!(!loaded.is_valid());
    assert_eq!(
        messages(&loaded),
        vec![format!(
            "{}:1:1: configuration directory does not exist",
            missing.display()
        )]
    );
    let (mut out, mut err) = (Vec::new(), Vec::new());
    assert_eq!(check_command(&missing, &mut out, &mut err), 2);
    assert!(out.is_empty());
}

#[test]
fn one_bad_file_does_not_hide_the_others() {
    let c = ConfigDir::new();
    c.write("conf.d/10-alice.toml", ALICE);
    let bad = c.write(
        "conf.d/20-broken.toml",
        "[[account]]\nname = \"carol\"\napi_key = \"k\"\npoll_interval = \"1s\"\nbogus = 1\n",
    );
    c.write(
        "conf.d/30-bob.toml",
        "[[account]]\nname = \"bob\"\napi_key = \"k\"\n\n[[target]]\nname = \"t\"\nurl = \"console://\"\n",
    );
    let loaded = c.load();
    assert!(!loaded.is_valid());
    let names: Vec<&str> = loaded.accounts().iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["alice", "bob"]);
    assert_eq!(loaded.targets().len(), 1);
    let ok: Vec<bool> = loaded.files.iter().map(FileOutcome::is_ok).collect();
    assert_eq!(ok, [true, false, true]);
    assert_eq!(loaded.files[1].path(), bad);
    assert_eq!(loaded.files[1].diagnostics().len(), 2);

    let (code, out, err) = c.check();
    assert_eq!(code, 2);
    assert!(out.is_empty());
    assert_eq!(err.lines().count(), 2);
    assert!(err
        .lines()
        .all(|l| l.starts_with(&bad.display().to_string())));
}

#[test]
fn files_load_in_byte_order_and_leftovers_are_ignored() {
    let c = ConfigDir::new();
    c.write("vast-supervisor.toml", "");
    for name in ["b.toml", "a.toml", "B.toml", "10-x.toml", "9-x.toml"] {
        let account = name.trim_end_matches(".toml");
        c.write(
            &format!("conf.d/{name}"),
            &format!("[[account]]\nname = \"{account}\"\napi_key = \"k\"\n"),
        );
    }
    // Leftovers hold invalid TOML: reading any of them would show up as a diagnostic.
    for ignored in [
        ".hidden.toml",
        "a.toml~",
        "a.toml.dpkg-dist",
        "a.toml.dpkg-old",
        "a.toml.rpmnew",
        "a.toml.rpmsave",
        ".a.toml.swp",
        "a.toml.swp",
        "README",
        "notes.txt",
    ] {
        c.write(&format!("conf.d/{ignored}"), "this is not = = toml");
    }
    std::fs::create_dir_all(c.path().join("conf.d/sub.toml")).unwrap();
    let loaded = c.load();
    assert!(loaded.is_valid(), "{:?}", messages(&loaded));
    let files: Vec<String> = loaded
        .files
        .iter()
        .map(|f| {
            f.path()
                .strip_prefix(c.path())
                .unwrap()
                .display()
                .to_string()
        })
        .collect();
    assert_eq!(
        files,
        [
            "vast-supervisor.toml",
            "conf.d/10-x.toml",
            "conf.d/9-x.toml",
            "conf.d/B.toml",
            "conf.d/a.toml",
            "conf.d/b.toml"
        ]
    );
    let names: Vec<&str> = loaded.accounts().iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["10-x", "9-x", "B", "a", "b"]);
    let (code, out, _) = c.check();
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "configuration OK: 6 files, 5 accounts (5 watching machines, 0 watching instances), 0 targets\n"
    );
}

#[test]
fn secrets_from_files_and_environment() {
    let c = ConfigDir::new();
    c.write("keys/alice", "key-from-file\n");
    let absolute = c.write("elsewhere/carol", "  key-carol \n\n");
    c.write("keys/empty", "\n");
    c.write(
        "conf.d/10-accounts.toml",
        &format!(
            "[[account]]\nname = \"alice\"\napi_key_file = \"../keys/alice\"\n\n\
             [[account]]\nname = \"bob\"\napi_key_env = \"BOB_KEY\"\n\n\
             [[account]]\nname = \"carol\"\napi_key_file = \"{}\"\n",
            absolute.display()
        ),
    );
    c.write(
        "conf.d/50-targets.toml",
        "[[target]]\nname = \"hook\"\nurl_env = \"HOOK_URL\"\nbearer_token_file = \"../keys/alice\"\n",
    );
    let env = |name: &str| match name {
        "BOB_KEY" => Some("key-from-env".to_string()),
        "HOOK_URL" => Some("jsons://hooks.example.com/x\n".to_string()),
        _ => None,
    };
    let loaded = load_dir_with_env(c.path(), &env);
    assert!(loaded.is_valid(), "{:?}", messages(&loaded));
    let keys: Vec<(&str, &str)> = loaded
        .accounts()
        .iter()
        .map(|a| (a.name.as_str(), a.api_key.expose()))
        .collect();
    assert_eq!(
        keys,
        [
            ("alice", "key-from-file"),
            ("bob", "key-from-env"),
            ("carol", "key-carol")
        ]
    );
    let target = loaded.targets()[0];
    assert_eq!(target.url.service(), "webhook");
    assert_eq!(
        target.bearer_token.as_ref().map(|t| t.expose()),
        Some("key-from-file")
    );

    // Unset and empty secrets are errors that name the variable or file.
    c.write(
        "conf.d/10-accounts.toml",
        "[[account]]\nname = \"alice\"\napi_key_file = \"../keys/empty\"\n\n[[account]]\nname = \"bob\"\napi_key_env = \"NOT_SET\"\n\n[[account]]\nname = \"carol\"\napi_key = \"\"\n",
    );
    let loaded = load_dir_with_env(c.path(), &env);
    let p = c.path().join("conf.d/10-accounts.toml");
    let p = p.display();
    let empty = c.path().join("conf.d/../keys/empty");
    assert_eq!(
        messages(&loaded),
        vec![
            format!("{p}:3:16: api_key_file \"{}\" is empty", empty.display()),
            format!("{p}:7:15: environment variable NOT_SET (from api_key_env) is not set"),
            format!("{p}:11:11: api_key is empty"),
        ]
    );
}

#[test]
fn every_account_and_target_key_is_applied() {
    let path = Path::new("/c/conf.d/10-all.toml");
    let text = r#"
[[account]]
name = "alice"
api_key = "k"
watch = ["machines", "instances"]
machines = [12345, 67890]
poll_interval = "45s"
api_url = "http://127.0.0.1:8123"
offline_grace = "2m"
error_repeat = "1h"
ignore_errors = ["does not support VMs"]
stale_after_polls = 5
stuck_after = "20m"
credit_low_below = 5
earnings_digest_at = "08:30"
actions_enabled = true

[[account.log_rule]]
name = "job-done"
instances = [5003]
regex = "^DONE"
action = "stop"

[[target]]
name = "hook"
url = "json://127.0.0.1:9000/in"
events = ["error", "rental_start"]
accounts = ["alice"]
min_severity = "warning"
mention = "<@1>"
batch_window = "5s"
max_age = "1h"
batch_size = 10
bearer_token = "tok"
headers = { "X-Source" = "vast" }
"#;
    let FileOutcome::Ok(file) = parse_file(path, text, false, &no_env) else {
        panic!("{:?}", file_messages(path, text));
    };
    let a = &file.accounts[0];
    assert!(a.watch.machines && a.watch.instances);
    assert_eq!(
        a.machines
            .as_ref()
            .map(|m| m.iter().copied().collect::<Vec<_>>()),
        Some(vec![12345, 67890])
    );
    assert_eq!(a.poll_interval, Duration::from_secs(45));
    assert_eq!(a.api_url.as_str(), "http://127.0.0.1:8123/");
    assert_eq!(a.offline_grace, Duration::from_secs(120));
    assert_eq!(a.error_repeat, Duration::from_secs(3600));
    assert_eq!(a.ignore_errors, ["does not support VMs"]);
    assert_eq!(a.stale_after_polls, 5);
    assert_eq!(a.stuck_after, Duration::from_secs(1200));
    assert_eq!(a.credit_low_below, Some(5.0));
    assert_eq!(
        a.earnings_digest_at.map(|t| t.to_string()),
        Some("08:30:00".into())
    );
    assert!(a.actions_enabled);
    assert_eq!(a.log_rules[0].action, Some(LogAction::Stop));
    assert_eq!((a.origin.file.as_path(), a.origin.line), (path, 2));

    let t = &file.targets[0];
    assert!(matches!(t.url, TargetUrl::Webhook { .. }));
    assert!(t.events.contains(EventKind::MachineOffline));
    assert!(t.events.contains(EventKind::RentalStart));
    assert!(!t.events.contains(EventKind::RentalEnd));
    assert_eq!(t.accounts.as_ref().map(|a| a.len()), Some(1));
    assert_eq!(t.min_severity, Severity::Warning);
    assert_eq!(t.mention.as_deref(), Some("<@1>"));
    assert_eq!(t.batch_window, Duration::from_secs(5));
    assert_eq!(t.max_age, Duration::from_secs(3600));
    assert_eq!(t.batch_size, 10);
    assert_eq!(t.bearer_token.as_ref().map(|b| b.expose()), Some("tok"));
    assert_eq!(t.headers.get("X-Source").map(String::as_str), Some("vast"));
    assert_eq!(t.origin.line, 24);
}

#[test]
fn defaults_apply_and_webhook_options_need_a_webhook() {
    let path = Path::new("/c/conf.d/10-d.toml");
    let text = "[[account]]\nname = \"a\"\napi_key = \"k\"\n\n[[target]]\nname = \"d\"\nurl = \"discord://1/t\"\n";
    let FileOutcome::Ok(file) = parse_file(path, text, false, &no_env) else {
        panic!("{:?}", file_messages(path, text));
    };
    let a = &file.accounts[0];
    assert!(a.watch.machines && !a.watch.instances);
    assert_eq!(a.machines, None);
    assert_eq!(a.poll_interval, Duration::from_secs(30));
    assert_eq!(a.api_url.as_str(), "https://console.vast.ai/");
    assert_eq!(a.error_repeat, Duration::from_secs(6 * 3600));
    assert_eq!(a.stale_after_polls, 3);
    assert_eq!(a.stuck_after, Duration::from_secs(900));
    assert!(!a.actions_enabled);
    let t = &file.targets[0];
    assert_eq!(t.events.0.len(), EventKind::ALL.len());
    assert_eq!(t.accounts, None);
    assert_eq!(t.min_severity, Severity::Info);
    assert_eq!(t.batch_window, Duration::ZERO);
    assert_eq!(t.max_age, Duration::from_secs(86400));
    assert_eq!(t.batch_size, 1);
    assert_eq!(file.globals, None);

    let text = "[[target]]\nname = \"d\"\nurl = \"discord://1/t\"\nbatch_size = 5\nheaders = { A = \"b\" }\n";
    let p = path.display();
    assert_eq!(
        file_messages(path, text),
        vec![
            format!("{p}:4:1: batch_size is only for json:// and jsons:// targets (this target is discord)"),
            format!("{p}:5:1: headers is only for json:// and jsons:// targets (this target is discord)"),
        ]
    );
}

/// No secret of the input, valid or not, reaches a diagnostic, `check` output or Debug output.
#[test]
fn secrets_never_appear_in_any_output() {
    let secrets = [
        "SECRETapikey0001",
        "SECRETapikey0002",
        "SECRETapikey0003",
        "SECRETwebhooktok",
        "SECRETpassword01",
        "SECRETbearer0001",
        "SECRETtgramkey01",
        "SECRETbasicpass1",
        "SECRETbrokenline",
        "SECRETntfypass01",
    ];
    let c = ConfigDir::new();
    c.write("keys/file-key", &format!("{}\n", secrets[1]));
    c.write("keys/bearer", secrets[5]);
    c.write(
        "conf.d/10-valid.toml",
        &format!(
            "[[account]]\nname = \"a\"\napi_key = \"{}\"\n\n[[account]]\nname = \"b\"\napi_key_file = \"../keys/file-key\"\n\n\
             [[account]]\nname = \"c\"\napi_key_env = \"C_KEY\"\n\n\
             [[target]]\nname = \"d\"\nurl = \"discord://1/{}\"\n\n\
             [[target]]\nname = \"m\"\nurl = \"mailtos://me:{}@smtp.example.com?to=x@example.com\"\n\n\
             [[target]]\nname = \"j\"\nurl = \"jsons://hooks.example.com/x\"\nbearer_token_file = \"../keys/bearer\"\n\n\
             [[target]]\nname = \"t\"\nurl = \"tgram://1:{}/5\"\n\n\
             [[target]]\nname = \"n\"\nurl = \"ntfys://u:{}@ntfy.example.com/topic\"\n",
            secrets[0], secrets[3], secrets[4], secrets[6], secrets[9]
        ),
    );
    // Broken inputs that carry secrets: wrong types, bad URLs, conflicts, a syntax error.
    c.write(
        "conf.d/20-invalid.toml",
        &format!(
            "[[account]]\nname = \"e\"\napi_key = [\"{s0}\"]\n\n\
             [[account]]\nname = \"f\"\napi_key = \"{s0}\"\napi_key_env = \"C_KEY\"\n\n\
             [[target]]\nname = \"g\"\nurl = \"discord://{s3}\"\nbearer_token = \"{s5}\"\n\n\
             [[target]]\nname = \"h\"\nurl = \"jsons://u:{s7}@/x?{s3}\"\n\n\
             [[target]]\nname = \"i\"\nurl = \"{s3}\"\n\n\
             [[target]]\nname = \"k\"\nurl = \"json://h/x\"\nheaders = {{ Authorization = \"Bearer {s5}\\n\" }}\n\n\
             [[target]]\nname = \"l\"\nurl = \"tgram://{s6}/x/y\"\n",
            s0 = secrets[0],
            s3 = secrets[3],
            s5 = secrets[5],
            s6 = secrets[6],
            s7 = secrets[7],
        ),
    );
    c.write(
        "conf.d/30-syntax.toml",
        &format!("[[account]]\nname = \"z\"\napi_key = \"{}\n", secrets[8]),
    );
    c.write(
        "conf.d/40-syntax.toml",
        &format!("[[account]]\napi_key = {}\n", secrets[8]),
    );
    let env = |name: &str| (name == "C_KEY").then(|| secrets[2].to_string());
    let loaded = load_dir_with_env(c.path(), &env);
    assert!(loaded.files[0].is_ok(), "{:?}", messages(&loaded));
    assert_eq!(loaded.accounts().len(), 3);
    assert_eq!(loaded.targets().len(), 5);
    let invalid = loaded.files[1].diagnostics().len();
    assert!(invalid >= 7, "{:?}", messages(&loaded));
    assert!(!loaded.files[2].is_ok() && !loaded.files[3].is_ok());

    let mut outputs = vec![format!("{loaded:?}"), format!("{loaded:#?}")];
    outputs.extend(messages(&loaded));
    outputs.extend(loaded.targets().iter().map(|t| t.url.redacted()));
    let (mut out, mut err) = (Vec::new(), Vec::new());
    check_command(c.path(), &mut out, &mut err);
    outputs.push(String::from_utf8_lossy(&out).into_owned());
    outputs.push(String::from_utf8_lossy(&err).into_owned());
    for output in &outputs {
        for secret in secrets {
            assert!(
                !output.contains(secret),
                "secret {secret} leaked into: {output}"
            );
        }
    }
}

#[test]
fn main_file_may_hold_accounts_and_inline_tables_work() {
    let c = ConfigDir::new();
    c.write(
        "vast-supervisor.toml",
        "state_dir = \"/var/lib/x\"\naccount = [{ name = \"alice\", api_key = \"k\" }]\n",
    );
    let dropin = c.write(
        "conf.d/10-a.toml",
        "[[account]]\nname = \"alice\"\napi_key = \"k\"\n",
    );
    let loaded = c.load();
    assert_eq!(
        messages(&loaded),
        vec![format!(
            "{}:2:8: duplicate account name \"alice\" (first defined at vast-supervisor.toml:2)",
            dropin.display()
        )]
    );
    assert_eq!(loaded.accounts()[0].name, "alice");
    assert_eq!(loaded.globals.state_dir, PathBuf::from("/var/lib/x"));
}

#[test]
fn a_file_that_is_not_utf8_is_rejected_at_the_bad_byte() {
    let c = ConfigDir::new();
    let path = c.path().join("conf.d/10-a.toml");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, b"[[account]]\nname = \"al\xffice\"\n").unwrap();
    assert_eq!(
        messages(&c.load()),
        vec![format!(
            "{}:2:11: the file is not valid UTF-8",
            path.display()
        )]
    );
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

/// Runs `f` on a thread and fails (instead of hanging) if it takes longer than 10 s.
fn bounded<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(v) => v,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => panic!("{what} hangs"),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => panic!("{what} panicked"),
    }
}

/// Issue 11 item 4: secret, URL and CA files that are FIFOs, devices or directories, or huge,
/// are errors at their line, never a hang; configuration files too.
#[test]
fn files_that_are_not_regular_or_too_large_are_refused_without_hanging() {
    let c = ConfigDir::new();
    mkfifo(&c.path().join("key.fifo"));
    std::fs::create_dir_all(c.path().join("conf.d")).unwrap();
    mkfifo(&c.path().join("conf.d/20-pipe.toml"));
    std::fs::write(c.path().join("huge.url"), vec![b'x'; 2 * 1024 * 1024]).unwrap();
    std::fs::create_dir_all(c.path().join("ca.d")).unwrap();
    let p = c.write(
        "conf.d/10-a.toml",
        &format!(
            "[[account]]\nname = \"a\"\napi_key_file = \"{0}/key.fifo\"\n\n\
             [[target]]\nname = \"hook\"\nurl_file = \"{0}/huge.url\"\n\n\
             [[target]]\nname = \"mail\"\nurl = \"mailtos://u:p@smtp.example.org?to=ops@example.org\"\ntls_ca_file = \"{0}/ca.d\"\n\n\
             [[target]]\nname = \"dev\"\nurl_file = \"/dev/zero\"\n",
            c.path().display()
        ),
    );
    let dir = c.path().to_path_buf();
    let loaded = bounded("loading", move || load_dir_with_env(&dir, &no_env));
    let m = messages(&loaded);
    let p = p.display();
    let d = c.path().display();
    let pipe = c.path().join("conf.d/20-pipe.toml");
    assert_eq!(
        m,
        [
            format!("{p}:3:16: cannot read api_key_file \"{d}/key.fifo\": it is a FIFO (named pipe), not a regular file"),
            format!("{p}:7:12: cannot read url_file \"{d}/huge.url\": it is larger than 1024 KiB"),
            format!("{p}:12:15: cannot read tls_ca_file \"{d}/ca.d\": it is a directory, not a regular file"),
            format!("{p}:16:12: cannot read url_file \"/dev/zero\": it is a device, not a regular file"),
            format!("{}:1:1: cannot read file: it is a FIFO (named pipe), not a regular file", pipe.display()),
        ]
    );
    // `check` through the real binary ends too.
    let dir = c.path().to_path_buf();
    let out = bounded("check", move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_vast-supervisor"))
            .args(["check", "--config"])
            .arg(&dir)
            .output()
            .unwrap()
    });
    assert_eq!(out.status.code(), Some(2));
}

/// The dashboard's password file goes through the same bounded, regular-file-only reading as
/// every secret file: a FIFO is an error at its line (and the main file is rejected), not a hang.
#[test]
fn a_fifo_as_http_basic_auth_file_is_an_error_not_a_hang() {
    let c = ConfigDir::new();
    mkfifo(&c.path().join("web.fifo"));
    let main = c.write(
        "vast-supervisor.toml",
        "http_listen = \"127.0.0.1:9477\"\nhttp_basic_auth_file = \"web.fifo\"\n",
    );
    let dir = c.path().to_path_buf();
    let loaded = bounded("loading", move || load_dir_with_env(&dir, &no_env));
    let (m, d) = (main.display(), c.path().display());
    assert_eq!(
        messages(&loaded),
        [format!("{m}:2:24: cannot read http_basic_auth_file \"{d}/web.fifo\": it is a FIFO (named pipe), not a regular file")]
    );
    assert!(loaded.globals.http_basic_auth.is_none());
    assert!(loaded.rejected_main_file().is_some());
}

/// Issue 11 item 6: no silent fallbacks. A main file that cannot be used is reported (a symlink
/// loop is not "absent"), and paths the daemon could not use are `check` errors at their line.
#[test]
fn unusable_globals_and_main_files_are_errors() {
    let c = ConfigDir::new();
    std::fs::create_dir_all(c.path().join("conf.d")).unwrap();
    let main = c.path().join("vast-supervisor.toml");
    std::os::unix::fs::symlink(&main, &main).unwrap();
    let loaded = c.load();
    assert_eq!(
        messages(&loaded),
        [format!(
            "{}:1:1: cannot read file: Too many levels of symbolic links (os error 40)",
            main.display()
        )]
    );
    assert!(loaded.rejected_main_file().is_some());
    std::fs::remove_file(&main).unwrap();

    let file = c.write("a-file", "");
    let long = format!("/run/{}/control.sock", "x".repeat(110));
    let m = c.write(
        "vast-supervisor.toml",
        &format!(
            "state_dir = \"{0}\"\ncontrol_socket = \"{0}/control.sock\"\n",
            file.display()
        ),
    );
    let f = file.display();
    let m = m.display();
    assert_eq!(
        messages(&c.load()),
        [
            format!("{m}:1:13: state_dir: \"{f}\" exists and is not a directory"),
            format!("{m}:2:18: control_socket: the socket cannot be created: \"{f}\" exists and is not a directory"),
        ]
    );
    c.write(
        "vast-supervisor.toml",
        &format!("control_socket = \"{long}\"\n"),
    );
    assert_eq!(
        messages(&c.load()),
        [format!(
            "{m}:1:18: control_socket: the path is too long for a Unix socket ({} bytes, at most 107)",
            long.len()
        )]
    );
}

/// Issue 11 item 6: a bearer token with a line break and framing headers are `check` errors;
/// a conf.d file whose name is not UTF-8 is reported instead of skipped.
#[test]
fn header_injection_and_unreadable_names_are_errors() {
    let c = ConfigDir::new();
    let p = c.write(
        "conf.d/10-hook.toml",
        "[[target]]\nname = \"hook\"\nurl = \"json://hooks.example.org/x\"\nbearer_token = \"tok\\r\\nX-Evil: 1\"\nheaders = { \"Content-Length\" = \"5\", \"X-Ok\" = \"fine\", \"transfer-encoding\" = \"chunked\" }\n",
    );
    let odd = c
        .path()
        .join(std::ffi::OsStr::from_bytes(b"conf.d/30-caf\xe9.toml"));
    std::fs::write(&odd, ALICE).unwrap();
    let p = p.display();
    let m = messages(&c.load());
    assert_eq!(
        m,
        [
            format!("{p}:4:16: bearer_token holds characters that cannot be sent in an HTTP header (a line break or another control character)"),
            format!("{p}:5:13: header \"Content-Length\" is set by the HTTP client from the message itself; remove it"),
            format!("{p}:5:54: header \"transfer-encoding\" is set by the HTTP client from the message itself; remove it"),
            format!("{}:1:1: the file name is not valid UTF-8: rename it, it is not read", odd.display()),
        ]
    );
    assert!(
        m.iter().all(|l| !l.contains("X-Evil")),
        "the token is not echoed"
    );
}

#[path = "support/bad_config.rs"]
mod bad_config;

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: 200,
        failure_persistence: None,
        ..proptest::prelude::ProptestConfig::default()
    })]

    /// Issue 11: `check` over generated bad configurations never panics and never hangs (each
    /// case bounded), and every problem it prints is `path:line:col: message` for a file of the
    /// directory.
    #[test]
    fn check_survives_generated_bad_configurations(config in bad_config::bad_config()) {
        let c = ConfigDir::new();
        bad_config::write(c.path(), &config);
        let dir = c.path().to_path_buf();
        let (code, out, err) = bounded("check", move || {
            let (mut out, mut err) = (Vec::new(), Vec::new());
            let code = check_command(&dir, &mut out, &mut err);
            (code, String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
        });
        proptest::prop_assert!(code == 0 || code == 2, "exit {}", code);
        if code == 0 {
            proptest::prop_assert!(out.starts_with("configuration OK"));
        }
        let root = c.path().display().to_string();
        // Problems are `path:line:col: message`; `check`'s warnings (no configuration, no
        // target, stray files) say "warning:" first and never change the exit code.
        for line in err.lines().filter(|l| !l.starts_with("warning: ")) {
            let rest = line.strip_prefix(root.as_str());
            proptest::prop_assert!(rest.is_some(), "{}", line);
            let mut parts = rest.unwrap_or_default().splitn(4, ':');
            let (_file, l, col) = (parts.next(), parts.next(), parts.next());
            proptest::prop_assert!(
                l.is_some_and(|l| l.parse::<usize>().is_ok())
                    && col.is_some_and(|c| c.parse::<usize>().is_ok()),
                "path:line:col: {}", line
            );
        }
    }
}

#[test]
fn check_warns_about_an_empty_directory_no_target_and_stray_files_but_passes() {
    // Nothing at all.
    let c = ConfigDir::new();
    let (code, out, err) = c.check();
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("configuration OK: 0 files"), "{out}");
    assert_eq!(
        err,
        format!(
            "warning: {}: no configuration: neither vast-supervisor.toml nor conf.d/*.toml; no account is watched\n",
            c.path().display()
        )
    );

    // An account but no target.
    c.write("conf.d/10-alice.toml", ALICE);
    let (code, _, err) = c.check();
    assert_eq!(code, 0, "{err}");
    assert!(err.starts_with("warning: no [[target]]: "), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");

    // A target, and a file written beside conf.d instead of into it (never read).
    c.write(
        "conf.d/90-targets.toml",
        "[[target]]\nname = \"log\"\nurl = \"console://\"\n",
    );
    let stray = c.write("bob.toml", "[[account]]\nname = \"bob\"\napi_key = \"k\"\n");
    c.write("vast-supervisor.toml", "");
    c.write("notes.toml~", "");
    let (code, out, err) = c.check();
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("1 account"), "{out}");
    assert_eq!(
        err,
        format!(
            "warning: {}: not read: only vast-supervisor.toml and conf.d/*.toml are (move it into conf.d/)\n",
            stray.display()
        )
    );
    // With nothing wrong, nothing is said.
    std::fs::remove_file(&stray).unwrap();
    let (code, _, err) = c.check();
    assert_eq!((code, err.as_str()), (0, ""));
}
