//! The main file's global settings (`state_dir`, `control_socket`, `http_listen`, `dashboard`,
//! `http_basic_auth_file`): their keys and what their values become. Must not accept them outside
//! the main file (the caller decides).

use super::document::Entry;
use super::keys::{key, Key};
use super::parser::Parser;
use super::values::set;
use crate::config::files::{blocked_directory, socket_path_problem};
use crate::config::model::{BasicAuth, Globals};
use std::net::SocketAddr;
use std::str::FromStr;

pub(super) type GlobalRead = for<'p, 'd> fn(&mut Parser<'p>, Entry<'d>, &mut Globals);

/// The keys of the main file's top level besides `[[account]]` and `[[target]]`.
#[rustfmt::skip]
pub(super) const GLOBAL_KEYS: &[Key<GlobalRead>] = &[
    key("state_dir", state_dir),
    key("control_socket", control_socket),
    key("http_listen", http_listen),
    key("dashboard", |p, e, globals| set(&mut globals.dashboard, p.bool(&e))),
    key("http_basic_auth_file", http_basic_auth_file),
];

fn state_dir(p: &mut Parser, entry: Entry, globals: &mut Globals) {
    if let Some(dir) = p.path_value(&entry) {
        match blocked_directory(&dir) {
            Some(why) => p.error(entry.value_at, format!("state_dir: {why}")),
            None => globals.state_dir = dir,
        }
    }
}

fn control_socket(p: &mut Parser, entry: Entry, globals: &mut Globals) {
    if let Some(socket) = p.path_value(&entry) {
        match socket_path_problem(&socket) {
            Some(why) => p.error(entry.value_at, format!("control_socket: {why}")),
            None => globals.control_socket = socket,
        }
    }
}

fn http_listen(p: &mut Parser, entry: Entry, globals: &mut Globals) {
    if let Some(addr) = p.string(&entry) {
        match SocketAddr::from_str(addr) {
            Ok(addr) => globals.http_listen = Some(addr),
            Err(_) => p.error(
                entry.value_at,
                "http_listen must be an address and port such as \"127.0.0.1:9477\"".into(),
            ),
        }
    }
}

fn http_basic_auth_file(p: &mut Parser, entry: Entry, globals: &mut Globals) {
    let Some(text) = p.secret(&entry) else {
        return;
    };
    match BasicAuth::parse(&text) {
        Ok(auth) => globals.http_basic_auth = Some(auth),
        Err(why) => {
            let message = format!("{} {why}", p.secret_origin(&entry));
            p.error(entry.value_at, message);
        }
    }
}
