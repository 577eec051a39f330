//! A small SMTP server for tests: mailin's protocol state machine behind a tokio TCP loop on
//! 127.0.0.1. Replies at MAIL, RCPT and DATA are configurable (accept, 4xx, 5xx); AUTH
//! PLAIN/LOGIN is checked against configured credentials; STARTTLS can be advertised (the
//! server records that the client asked, then drops the connection: there is no certificate).

use mailin::{response, Action, AuthMechanism, Handler, Response, SessionBuilder};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// How the server answers one SMTP step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reply {
    Accept,
    /// 4xx: try again later (greylisting, full mailbox).
    Temporary,
    /// 5xx: do not try again.
    Permanent,
}

#[derive(Debug, Clone)]
pub struct SmtpConfig {
    pub mail: Reply,
    pub rcpt: Reply,
    pub data: Reply,
    /// Required credentials; `None`: AUTH not offered.
    pub auth: Option<(String, String)>,
    pub starttls: bool,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            mail: Reply::Accept,
            rcpt: Reply::Accept,
            data: Reply::Accept,
            auth: None,
            starttls: false,
        }
    }
}

/// A mail the server accepted.
#[derive(Debug, Clone)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
    pub authenticated_as: Option<String>,
}

#[derive(Default)]
struct Recorded {
    mails: Vec<Mail>,
    starttls_requests: usize,
    connections: usize,
}

pub struct SmtpServer {
    pub addr: SocketAddr,
    recorded: Arc<Mutex<Recorded>>,
    task: JoinHandle<()>,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct MailHandler {
    config: SmtpConfig,
    recorded: Arc<Mutex<Recorded>>,
    from: String,
    to: Vec<String>,
    data: Vec<u8>,
    user: Option<String>,
}

fn reply(reply: Reply, temporary: &'static str, permanent: &'static str) -> Response {
    match reply {
        Reply::Accept => response::OK,
        Reply::Temporary => Response::custom(451, temporary.to_string()),
        Reply::Permanent => Response::custom(550, permanent.to_string()),
    }
}

impl Handler for MailHandler {
    fn mail(&mut self, _ip: IpAddr, _domain: &str, from: &str) -> Response {
        self.from = from.to_string();
        self.to.clear();
        reply(
            self.config.mail,
            "4.7.1 Greylisted, please try again later",
            "5.7.1 Sender rejected",
        )
    }

    fn rcpt(&mut self, to: &str) -> Response {
        self.to.push(to.to_string());
        reply(
            self.config.rcpt,
            "4.2.2 Mailbox full, try again later",
            "5.1.1 No such user here",
        )
    }

    fn data(&mut self, buf: &[u8]) -> io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let data = String::from_utf8_lossy(&std::mem::take(&mut self.data)).into_owned();
        match self.config.data {
            Reply::Accept => {
                if let Ok(mut recorded) = self.recorded.lock() {
                    recorded.mails.push(Mail {
                        from: self.from.clone(),
                        to: self.to.clone(),
                        data,
                        authenticated_as: self.user.clone(),
                    });
                }
                Response::custom(250, "2.0.0 OK queued as FAKE123".to_string())
            }
            Reply::Temporary => {
                Response::custom(452, "4.3.1 Insufficient system storage".to_string())
            }
            Reply::Permanent => Response::custom(554, "5.6.0 Message rejected".to_string()),
        }
    }

    fn auth_plain(&mut self, _authz: &str, user: &str, password: &str) -> Response {
        self.check(user, password)
    }

    fn auth_login(&mut self, user: &str, password: &str) -> Response {
        self.check(user, password)
    }
}

impl MailHandler {
    fn check(&mut self, user: &str, password: &str) -> Response {
        match &self.config.auth {
            Some((u, p)) if u == user && p == password => {
                self.user = Some(user.to_string());
                response::AUTH_OK
            }
            _ => response::INVALID_CREDENTIALS,
        }
    }
}

impl SmtpServer {
    pub async fn start(config: SmtpConfig) -> SmtpServer {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind the test SMTP server on 127.0.0.1");
        let addr = listener.local_addr().expect("local address");
        let recorded = Arc::new(Mutex::new(Recorded::default()));
        let mut builder = SessionBuilder::new("fake-smtp.test");
        if config.starttls {
            builder.enable_start_tls();
        }
        if config.auth.is_some() {
            builder
                .enable_auth(AuthMechanism::Plain)
                .enable_auth(AuthMechanism::Login)
                .insecure_enable_plaintext_auth();
        }
        let task_recorded = recorded.clone();
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((stream, peer)) = listener.accept().await {
                if let Ok(mut r) = task_recorded.lock() {
                    r.connections += 1;
                }
                let new_handler = {
                    let config = config.clone();
                    let recorded = task_recorded.clone();
                    move || MailHandler {
                        config: config.clone(),
                        recorded: recorded.clone(),
                        from: String::new(),
                        to: Vec::new(),
                        data: Vec::new(),
                        user: None,
                    }
                };
                let builder = builder.clone();
                let mut session = builder.build(peer.ip(), new_handler());
                let recorded = task_recorded.clone();
                connections.spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut reader = BufReader::new(read);
                    let mut out = Vec::new();
                    if session.greeting().write_to(&mut out).is_err()
                        || write.write_all(&out).await.is_err()
                    {
                        return;
                    }
                    let mut line = Vec::new();
                    loop {
                        line.clear();
                        match reader.read_until(b'\n', &mut line).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                        let res = session.process(&line);
                        if line == b".\r\n" && res.is_error {
                            // mailin stays in its DATA state after a refused message, where
                            // real servers return to the command state: start a fresh session
                            // (the client resets or quits next anyway).
                            session = builder.build(peer.ip(), new_handler());
                        }
                        out.clear();
                        match res.action {
                            Action::NoReply => continue,
                            Action::Reply => {
                                let _ = res.write_to(&mut out);
                                if write.write_all(&out).await.is_err() {
                                    return;
                                }
                            }
                            Action::Close => {
                                let _ = res.write_to(&mut out);
                                let _ = write.write_all(&out).await;
                                return;
                            }
                            Action::UpgradeTls => {
                                if let Ok(mut r) = recorded.lock() {
                                    r.starttls_requests += 1;
                                }
                                let _ = res.write_to(&mut out);
                                let _ = write.write_all(&out).await;
                                // No certificate here: the client's handshake fails.
                                return;
                            }
                        }
                    }
                });
                while connections.try_join_next().is_some() {}
            }
        });
        SmtpServer {
            addr,
            recorded,
            task,
        }
    }

    pub fn mails(&self) -> Vec<Mail> {
        self.recorded
            .lock()
            .map(|r| r.mails.clone())
            .unwrap_or_default()
    }

    pub fn starttls_requests(&self) -> usize {
        self.recorded
            .lock()
            .map(|r| r.starttls_requests)
            .unwrap_or(0)
    }

    pub fn connections(&self) -> usize {
        self.recorded.lock().map(|r| r.connections).unwrap_or(0)
    }
}
