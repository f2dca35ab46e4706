//! A small PostgreSQL frontend (protocol 3, simple queries) that behaves like libpq's
//! asynchronous API as isolationtester uses it: `send_query`, `is_busy`, `wait_readable`
//! (select with a timeout), `get_result` one result per statement, notices handed out in the
//! order libpq's parser would call the notice processor, NOTIFY messages, and cancel requests.
//!
//! Why not the `postgres` crate the db backend uses: isolationtester's output depends on
//! libpq's exact parsing order — a multi-statement step prints the results that preceded an
//! error, a notice is printed when parsed (before or between result tables), a step counts as
//! complete once its *first* result is ready. The `postgres` crate's `simple_query` returns all
//! or nothing and has no "first result is ready" state. Connection settings still come from
//! the same URL the db backend takes, parsed by `postgres::Config`.

use std::io::ErrorKind;
use std::time::Duration;

mod message;
mod stream;
use self::message::{cstr, field, fields, message, notice_text, put_cstr};
use self::stream::{open, Stream};

/// One result, as `PQgetResult` returns it.
#[derive(Debug, Clone, PartialEq)]
pub enum PgResult {
    /// A statement that returns no rows (PGRES_COMMAND_OK).
    Command,
    /// An empty query string (PGRES_EMPTY_QUERY).
    Empty,
    /// Rows (PGRES_TUPLES_OK): column names and text values (None is NULL).
    Tuples {
        columns: Vec<String>,
        rows: Vec<Vec<Option<String>>>,
    },
    /// libpq's own error when the connection is lost (no fields; printed as its message).
    Lost(String),
    /// An error (PGRES_FATAL_ERROR): severity and primary message.
    Error {
        severity: String,
        message: String,
        sqlstate: String,
    },
}

/// Where and as whom to connect.
#[derive(Debug, Clone)]
pub struct ConnParams {
    /// A TCP address `host:port`, or a Unix socket path.
    pub target: Target,
    pub user: String,
    pub dbname: String,
    /// Startup parameters sent to the server (TimeZone, DateStyle, application_name, ...).
    pub options: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub enum Target {
    Tcp(String),
    Unix(String),
}

impl ConnParams {
    /// From a db-backend URL (`host=127.0.0.1 port=N user=U dbname=D` or
    /// `postgresql://user@host:port/db`), parsed by `postgres::Config`.
    pub(crate) fn from_url(url: &str) -> Result<ConnParams, String> {
        let config: postgres::Config = url
            .parse()
            .map_err(|e| format!("bad PostgreSQL URL `{url}`: {e}"))?;
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let target = match config.get_hosts().first() {
            Some(postgres::config::Host::Tcp(h)) => Target::Tcp(format!("{h}:{port}")),
            Some(postgres::config::Host::Unix(dir)) => {
                Target::Unix(format!("{}/.s.PGSQL.{port}", dir.display()))
            }
            None => Target::Unix(format!("/var/run/postgresql/.s.PGSQL.{port}")),
        };
        let user = config
            .get_user()
            .map(str::to_string)
            .unwrap_or_else(|| std::env::var("USER").unwrap_or_else(|_| "postgres".into()));
        let dbname = config
            .get_dbname()
            .map(str::to_string)
            .unwrap_or_else(|| user.clone());
        Ok(ConnParams {
            target,
            user,
            dbname,
            options: vec![],
        })
    }
}
/// libpq's PGASYNC_* states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Async {
    Idle,
    Busy,
    Ready,
}

/// A notice, formatted as libpq's default notice processor receives it.
pub(crate) type Notice = String;

/// A NOTIFY received: channel, payload, sender's backend pid.
#[derive(Debug, Clone, PartialEq)]
pub struct Notify {
    pub channel: String,
    pub payload: String,
    pub pid: i32,
}

/// One connection.
pub struct Conn {
    stream: Stream,
    target: Target,
    inbuf: Vec<u8>,
    status: Async,
    /// The result being assembled or ready to hand out.
    result: Option<PgResult>,
    /// Notices parsed and not yet taken by the caller, in order.
    notices: Vec<Notice>,
    notifies: Vec<Notify>,
    pub pid: i32,
    secret: i32,
    /// libpq's message once the server closed the connection (or it failed).
    broken: Option<String>,
    /// The lost-connection result was handed out: the query is over.
    lost: bool,
}

impl Conn {
    /// Connects and authenticates (trust; the throwaway servers use it), then waits for
    /// ReadyForQuery.
    pub(crate) fn connect(params: &ConnParams) -> Result<Conn, String> {
        let mut stream = open(&params.target)?;
        let mut body = Vec::new();
        body.extend_from_slice(&196608i32.to_be_bytes());
        put_cstr(&mut body, "user");
        put_cstr(&mut body, &params.user);
        put_cstr(&mut body, "database");
        put_cstr(&mut body, &params.dbname);
        for (k, v) in &params.options {
            put_cstr(&mut body, k);
            put_cstr(&mut body, v);
        }
        body.push(0);
        let mut startup = ((body.len() + 4) as i32).to_be_bytes().to_vec();
        startup.extend_from_slice(&body);
        stream
            .write_all(&startup)
            .map_err(|e| format!("cannot talk to PostgreSQL: {e}"))?;
        let mut conn = Conn {
            stream,
            target: params.target.clone(),
            inbuf: Vec::new(),
            status: Async::Busy,
            result: None,
            notices: vec![],
            notifies: vec![],
            pid: 0,
            secret: 0,
            broken: None,
            lost: false,
        };
        loop {
            let (kind, body) = conn.next_message_blocking()?;
            match kind {
                b'R' => {
                    let code = i32::from_be_bytes(body[0..4].try_into().unwrap_or_default());
                    if code != 0 {
                        return Err(format!("PostgreSQL asks for authentication method {code}; racelab's isolation runner connects with trust authentication only (as `cargo xtask db up` configures)"));
                    }
                }
                b'K' if body.len() >= 8 => {
                    conn.pid = i32::from_be_bytes(body[0..4].try_into().unwrap_or_default());
                    conn.secret = i32::from_be_bytes(body[4..8].try_into().unwrap_or_default());
                }
                b'E' => {
                    let f = fields(&body);
                    return Err(format!(
                        "PostgreSQL refused the connection: {}",
                        field(&f, b'M').unwrap_or("?")
                    ));
                }
                b'Z' => break,
                _ => {}
            }
        }
        conn.status = Async::Idle;
        Ok(conn)
    }

    fn next_message_blocking(&mut self) -> Result<(u8, Vec<u8>), String> {
        loop {
            if let Some(m) = self.take_message() {
                return Ok(m);
            }
            self.read_some(None)?;
        }
    }

    /// A complete message at the front of the buffer, removed.
    fn take_message(&mut self) -> Option<(u8, Vec<u8>)> {
        let (kind, body_len) = self.peek_message()?;
        let body = self.inbuf[5..5 + body_len].to_vec();
        self.inbuf.drain(..5 + body_len);
        Some((kind, body))
    }

    fn peek_message(&self) -> Option<(u8, usize)> {
        if self.inbuf.len() < 5 {
            return None;
        }
        let len = i32::from_be_bytes(self.inbuf[1..5].try_into().ok()?) as usize;
        if len < 4 || self.inbuf.len() < 1 + len {
            return None;
        }
        Some((self.inbuf[0], len - 4))
    }

    /// Reads what is available (blocking up to `timeout`, forever for None). Ok(false) on timeout.
    fn read_some(&mut self, timeout: Option<Duration>) -> Result<bool, String> {
        if self.broken.is_some() {
            return Ok(false);
        }
        self.stream
            .set_read_timeout(timeout.map(|t| t.max(Duration::from_micros(1))))
            .map_err(|e| e.to_string())?;
        let mut buf = [0u8; 65536];
        match self.stream.read(&mut buf) {
            Ok(0) => {
                // libpq's words, which isolationtester prints as the step's last result.
                self.broken = Some("server closed the connection unexpectedly\n\tThis probably means the server terminated abnormally\n\tbefore or while processing the request.\n".into());
                Ok(true)
            }
            Ok(n) => {
                self.inbuf.extend_from_slice(&buf[..n]);
                Ok(true)
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                Ok(false)
            }
            Err(e) => {
                self.broken = Some(format!("could not receive data from server: {e}\n"));
                Ok(true)
            }
        }
    }

    /// PQsendQuery: a simple query, possibly several statements.
    pub(crate) fn send_query(&mut self, sql: &str) -> Result<(), String> {
        if self.status != Async::Idle {
            return Err("another command is already in progress".into());
        }
        if self.broken.is_some() {
            return Err("connection not open".into());
        }
        let mut body = Vec::new();
        put_cstr(&mut body, sql);
        self.stream
            .write_all(&message(b'Q', &body))
            .map_err(|e| format!("cannot send the query: {e}"))?;
        self.status = Async::Busy;
        self.result = None;
        Ok(())
    }

    /// pqParseInput3: handles complete messages while busy; notices and notifies in any state.
    fn parse_input(&mut self) {
        while let Some((kind, _)) = self.peek_message() {
            if kind != b'A' && kind != b'N' && self.status != Async::Busy {
                if self.status == Async::Ready {
                    return;
                }
                // Idle: an error becomes a notice, anything else is dropped (libpq's recovery).
                let (kind, body) = self.take_message().unwrap_or_default();
                if kind == b'E' {
                    self.notices.push(notice_text(&fields(&body)));
                }
                continue;
            }
            let Some((kind, body)) = self.take_message() else {
                return;
            };
            match kind {
                b'A' => {
                    let mut at = 4;
                    let pid = i32::from_be_bytes(
                        body.get(0..4)
                            .and_then(|b| b.try_into().ok())
                            .unwrap_or_default(),
                    );
                    let channel = cstr(&body, &mut at);
                    let payload = cstr(&body, &mut at);
                    self.notifies.push(Notify {
                        channel,
                        payload,
                        pid,
                    });
                }
                b'N' => self.notices.push(notice_text(&fields(&body))),
                b'T' => {
                    let n = u16::from_be_bytes(
                        body.get(0..2)
                            .and_then(|b| b.try_into().ok())
                            .unwrap_or_default(),
                    ) as usize;
                    let mut at = 2;
                    let mut columns = Vec::with_capacity(n);
                    for _ in 0..n {
                        columns.push(cstr(&body, &mut at));
                        at += 18;
                    }
                    self.result = Some(PgResult::Tuples {
                        columns,
                        rows: vec![],
                    });
                }
                b'D' => {
                    let n = u16::from_be_bytes(
                        body.get(0..2)
                            .and_then(|b| b.try_into().ok())
                            .unwrap_or_default(),
                    ) as usize;
                    let mut at = 2;
                    let mut row = Vec::with_capacity(n);
                    for _ in 0..n {
                        let len = i32::from_be_bytes(
                            body.get(at..at + 4)
                                .and_then(|b| b.try_into().ok())
                                .unwrap_or([255; 4]),
                        );
                        at += 4;
                        if len < 0 {
                            row.push(None);
                        } else {
                            let end = (at + len as usize).min(body.len());
                            row.push(Some(String::from_utf8_lossy(&body[at..end]).into_owned()));
                            at = end;
                        }
                    }
                    if let Some(PgResult::Tuples { rows, .. }) = &mut self.result {
                        rows.push(row);
                    }
                }
                b'C' => {
                    if !matches!(self.result, Some(PgResult::Tuples { .. })) {
                        self.result = Some(PgResult::Command);
                    }
                    self.status = Async::Ready;
                }
                b'I' => {
                    self.result = Some(PgResult::Empty);
                    self.status = Async::Ready;
                }
                b'E' => {
                    let f = fields(&body);
                    self.result = Some(PgResult::Error {
                        severity: field(&f, b'S').unwrap_or("ERROR").to_string(),
                        message: field(&f, b'M').unwrap_or("").to_string(),
                        sqlstate: field(&f, b'C').unwrap_or("").to_string(),
                    });
                    self.status = Async::Ready;
                }
                b'Z' => {
                    self.status = Async::Idle;
                }
                // ParameterStatus, BackendKeyData, CopyIn/Out (refused below) and the rest.
                b'G' | b'H' => {
                    self.result = Some(PgResult::Error {
                        severity: "ERROR".into(),
                        message: "racelab's isolation runner does not support COPY".into(),
                        sqlstate: String::new(),
                    });
                    self.broken = Some("COPY is not supported".into());
                    self.status = Async::Ready;
                    self.lost = true;
                }
                _ => {}
            }
        }
    }

    /// Once the connection is lost and every complete message is parsed, the query's last
    /// result is libpq's own error (no fields: printed as its message).
    fn lost_connection_result(&mut self) {
        if let Some(text) = &self.broken {
            if self.status == Async::Busy && self.peek_message().is_none() {
                self.result = Some(PgResult::Lost(text.clone()));
                self.status = Async::Ready;
                self.lost = true;
            }
        }
    }

    /// PQconsumeInput: reads whatever has arrived, without waiting.
    pub(crate) fn consume_input(&mut self) -> Result<(), String> {
        // Non-blocking reads, not a tiny read timeout: the kernel rounds SO_RCVTIMEO up to a
        // scheduler tick, which made every step several milliseconds slower.
        self.stream
            .set_nonblocking(true)
            .map_err(|e| e.to_string())?;
        let mut r = Ok(());
        loop {
            match self.read_some(None) {
                Ok(true) if self.broken.is_none() => continue,
                Ok(_) => break,
                Err(e) => {
                    r = Err(e);
                    break;
                }
            }
        }
        self.stream
            .set_nonblocking(false)
            .map_err(|e| e.to_string())?;
        r
    }

    /// PQisBusy: parses what has arrived; true while the next result is not ready.
    pub(crate) fn is_busy(&mut self) -> bool {
        self.parse_input();
        self.lost_connection_result();
        self.status == Async::Busy
    }

    /// select() on the socket for up to `timeout`, then PQconsumeInput: true when data came.
    pub(crate) fn wait_readable(&mut self, timeout: Duration) -> Result<bool, String> {
        let got = self.read_some(Some(timeout))?;
        if got {
            self.consume_input()?;
        }
        Ok(got)
    }

    /// PQgetResult: the next result, waiting for it; None once the query is over.
    pub(crate) fn get_result(&mut self) -> Result<Option<PgResult>, String> {
        self.parse_input();
        self.lost_connection_result();
        while self.status == Async::Busy {
            self.read_some(None)?;
            self.parse_input();
            self.lost_connection_result();
        }
        match self.status {
            Async::Idle => Ok(None),
            _ => {
                // After a lost connection there is nothing more; otherwise parsing goes on.
                self.status = if self.lost { Async::Idle } else { Async::Busy };
                Ok(self.result.take())
            }
        }
    }

    /// Notices parsed since the last call, in order.
    pub(crate) fn take_notices(&mut self) -> Vec<Notice> {
        std::mem::take(&mut self.notices)
    }

    /// NOTIFY messages parsed since the last call.
    pub(crate) fn take_notifies(&mut self) -> Vec<Notify> {
        std::mem::take(&mut self.notifies)
    }

    /// PQexec: sends and collects every result (the last error wins, as in libpq).
    pub(crate) fn exec(&mut self, sql: &str) -> Result<Vec<PgResult>, String> {
        self.send_query(sql)?;
        let mut out = Vec::new();
        while let Some(r) = self.get_result()? {
            out.push(r);
        }
        Ok(out)
    }

    /// PQcancel: asks the server, on a new connection, to cancel this session's query.
    pub(crate) fn cancel(&self) -> Result<(), String> {
        let mut s = open(&self.target)?;
        let mut m = 16i32.to_be_bytes().to_vec();
        m.extend_from_slice(&80877102i32.to_be_bytes());
        m.extend_from_slice(&self.pid.to_be_bytes());
        m.extend_from_slice(&self.secret.to_be_bytes());
        s.write_all(&m).map_err(|e| e.to_string())?;
        let mut buf = [0u8; 1];
        let _ = s.read(&mut buf);
        Ok(())
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        let _ = self.stream.write_all(&message(b'X', &[]));
    }
}
