//! A small SMTP server for tests: mailin's protocol state machine behind a tokio TCP loop on
//! 127.0.0.1. Replies at MAIL, RCPT and DATA are configurable (accept, 4xx, 5xx, "too big");
//! AUTH PLAIN/LOGIN is checked against configured credentials. TLS with tokio-rustls and a
//! certificate from [`super::pki`]: STARTTLS (advertised, then a real upgrade) or implicit TLS
//! (handshake first, as on port 465); with a certificate, AUTH is offered only inside TLS.
//! STARTTLS advertised without a certificate records that the client asked, then drops the
//! connection.

use mailin::{response, Action, AuthMechanism, Handler, Response, Session, SessionBuilder};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// How the server answers one SMTP step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reply {
    Accept,
    /// 4xx: try again later (greylisting, full mailbox).
    Temporary,
    /// 5xx: do not try again.
    Permanent,
    /// 552 5.3.4: this message is over the server's size limit.
    TooLarge,
}

#[derive(Debug, Clone)]
pub struct SmtpConfig {
    pub mail: Reply,
    pub rcpt: Reply,
    pub data: Reply,
    /// Required credentials; `None`: AUTH not offered.
    pub auth: Option<(String, String)>,
    /// Advertise STARTTLS (upgraded when `tls` is set, else the connection is dropped).
    pub starttls: bool,
    /// The server's certificate ([`super::pki::TestPki::server`]).
    pub tls: Option<Arc<ServerConfig>>,
    /// TLS from the first byte (port 465 style); needs `tls`.
    pub implicit_tls: bool,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            mail: Reply::Accept,
            rcpt: Reply::Accept,
            data: Reply::Accept,
            auth: None,
            starttls: false,
            tls: None,
            implicit_tls: false,
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
    /// Whether the mail arrived inside TLS.
    pub over_tls: bool,
}

#[derive(Default)]
struct Recorded {
    mails: Vec<Mail>,
    starttls_requests: usize,
    tls_handshakes: usize,
    failed_handshakes: usize,
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
    tls: Arc<AtomicBool>,
}

fn reply(reply: Reply, temporary: &'static str, permanent: &'static str) -> Response {
    match reply {
        Reply::Accept => response::OK,
        Reply::Temporary => Response::custom(451, temporary.to_string()),
        Reply::Permanent => Response::custom(550, permanent.to_string()),
        Reply::TooLarge => Response::custom(
            552,
            "5.3.4 Message size exceeds fixed maximum message size".to_string(),
        ),
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
                        over_tls: self.tls.load(Ordering::SeqCst),
                    });
                }
                Response::custom(250, "2.0.0 OK queued as FAKE123".to_string())
            }
            Reply::Temporary => {
                Response::custom(452, "4.3.1 Insufficient system storage".to_string())
            }
            Reply::Permanent => Response::custom(554, "5.6.0 Message rejected".to_string()),
            Reply::TooLarge => Response::custom(
                552,
                "5.3.4 Message size exceeds fixed maximum message size".to_string(),
            ),
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

/// What a connection needs to build sessions and record what happens.
#[derive(Clone)]
struct Connection {
    config: SmtpConfig,
    builder: SessionBuilder,
    recorded: Arc<Mutex<Recorded>>,
    peer: IpAddr,
    /// Set once this connection runs inside TLS; read by the handler when a mail arrives.
    tls: Arc<AtomicBool>,
}

impl Connection {
    /// A fresh session; inside TLS it is told so (no STARTTLS offered, AUTH allowed).
    fn session(&self) -> Session<MailHandler> {
        let mut session = self.builder.build(
            self.peer,
            MailHandler {
                config: self.config.clone(),
                recorded: self.recorded.clone(),
                from: String::new(),
                to: Vec::new(),
                data: Vec::new(),
                user: None,
                tls: self.tls.clone(),
            },
        );
        if self.tls.load(Ordering::SeqCst) {
            session.tls_active();
        }
        session
    }

    fn record(&self, f: impl FnOnce(&mut Recorded)) {
        if let Ok(mut recorded) = self.recorded.lock() {
            f(&mut recorded);
        }
    }

    async fn handshake(&self, stream: TcpStream) -> Option<TlsStream<TcpStream>> {
        let server = self.config.tls.clone()?;
        match TlsAcceptor::from(server).accept(stream).await {
            Ok(tls) => {
                self.tls.store(true, Ordering::SeqCst);
                self.record(|r| r.tls_handshakes += 1);
                Some(tls)
            }
            Err(_) => {
                self.record(|r| r.failed_handshakes += 1);
                None
            }
        }
    }

    async fn serve(self, stream: TcpStream) {
        if self.config.implicit_tls {
            if let Some(tls) = self.handshake(stream).await {
                let mut session = self.session();
                self.converse(tls, &mut session, true).await;
            }
            return;
        }
        let mut session = self.session();
        let Some(plain) = self.converse(stream, &mut session, true).await else {
            return;
        };
        // STARTTLS was answered with 220: the client's handshake comes next.
        if let Some(tls) = self.handshake(plain).await {
            let mut session = self.session();
            self.converse(tls, &mut session, false).await;
        }
    }

    /// Runs the SMTP dialogue on `stream`. Returns the stream when the client asked for
    /// STARTTLS and this server has a certificate to upgrade with.
    async fn converse<S>(
        &self,
        stream: S,
        session: &mut Session<MailHandler>,
        greet: bool,
    ) -> Option<S>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let mut stream = BufReader::new(stream);
        let mut out = Vec::new();
        if greet
            && (session.greeting().write_to(&mut out).is_err()
                || stream.write_all(&out).await.is_err())
        {
            return None;
        }
        let mut line = Vec::new();
        loop {
            line.clear();
            match stream.read_until(b'\n', &mut line).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
            let res = session.process(&line);
            if line == b".\r\n" && res.is_error {
                // mailin stays in its DATA state after a refused message, where real servers
                // return to the command state: start a fresh session (the client resets or
                // quits next anyway).
                *session = self.session();
            }
            out.clear();
            let _ = res.write_to(&mut out);
            match res.action {
                Action::NoReply => continue,
                Action::Reply => {
                    if stream.write_all(&out).await.is_err() {
                        return None;
                    }
                }
                Action::Close => {
                    let _ = stream.write_all(&out).await;
                    return None;
                }
                Action::UpgradeTls => {
                    self.record(|r| r.starttls_requests += 1);
                    if stream.write_all(&out).await.is_err() || stream.flush().await.is_err() {
                        return None;
                    }
                    // Without a certificate the client's handshake fails on the closed socket.
                    return self.config.tls.is_some().then(|| stream.into_inner());
                }
            }
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
                .enable_auth(AuthMechanism::Login);
            // A server with a certificate offers AUTH only inside TLS, as real ones do.
            if config.tls.is_none() {
                builder.insecure_enable_plaintext_auth();
            }
        }
        let task_recorded = recorded.clone();
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((stream, peer)) = listener.accept().await {
                if let Ok(mut r) = task_recorded.lock() {
                    r.connections += 1;
                }
                let connection = Connection {
                    config: config.clone(),
                    builder: builder.clone(),
                    recorded: task_recorded.clone(),
                    peer: peer.ip(),
                    tls: Arc::new(AtomicBool::new(false)),
                };
                connections.spawn(connection.serve(stream));
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

    /// TLS handshakes that completed (STARTTLS upgrades and implicit TLS).
    pub fn tls_handshakes(&self) -> usize {
        self.recorded.lock().map(|r| r.tls_handshakes).unwrap_or(0)
    }

    /// TLS handshakes the client abandoned or that failed.
    pub fn failed_handshakes(&self) -> usize {
        self.recorded
            .lock()
            .map(|r| r.failed_handshakes)
            .unwrap_or(0)
    }

    pub fn connections(&self) -> usize {
        self.recorded.lock().map(|r| r.connections).unwrap_or(0)
    }
}
