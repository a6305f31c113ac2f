//! The chat itself: registration, the room, commands and fan-out of lines.

use std::collections::HashMap;

use charla_proto::command::HELP;

use crate::address::address_key;
use charla_proto::reply::{push_line, push_user_list};
use charla_proto::{
    clean_text, nick_key, notice, parse_client_line, validate_nick, ClientLine, ErrorCode, Frame,
};
use mio::Token;

use crate::conn::{BufferPool, Conn, Phase, Slab};
use crate::log::log;
use crate::reactor::{CloseReason, Server};

/// Who is in the chat: registered connections and their nicknames, and what was said to all of
/// them in the current pass of the event loop.
///
/// A line for the whole room is appended once to `log`; at the end of the pass each member's
/// socket is written straight from it (`Server::flush_room`), so a line is not copied once per
/// recipient. A member only gets a copy of the log's bytes in its own queue (`catch_up`) when
/// something private must come after them (a reply, its own line skipped) or when its socket
/// is full. Every member has been served the whole log by the end of the pass, when it is
/// emptied.
#[derive(Default)]
pub struct Room {
    /// Every registered connection, for fan-out without scanning idle slots.
    members: Vec<Token>,
    /// Case-insensitive nickname key → connection.
    by_key: HashMap<String, Token>,
    /// Lines for everyone, this pass.
    log: Vec<u8>,
    /// Position of `log[0]` in everything the room has been sent since the server started.
    log_base: u64,
    /// Lines were added since the room was last flushed.
    pub dirty: bool,
}

/// Largest log capacity kept from one pass to the next.
const LOG_KEEP: usize = 256 << 10;

impl Room {
    pub fn log_end(&self) -> u64 {
        self.log_base + self.log.len() as u64
    }

    /// The room's bytes `conn` has not been served yet.
    pub fn unserved(&self, conn: &Conn) -> &[u8] {
        let from = conn.room_pos.saturating_sub(self.log_base) as usize;
        &self.log[from.min(self.log.len())..]
    }

    /// Copies the room's bytes `conn` has not been served into its own queue, so that whatever
    /// is queued for it next comes after them.
    pub fn catch_up(&self, conn: &mut Conn, pool: &mut BufferPool) {
        if conn.room_slot.is_some() {
            let unserved = self.unserved(conn);
            if !unserved.is_empty() {
                conn.out.push(unserved, pool);
            }
            conn.room_pos = self.log_end();
        }
    }

    /// Marks the log served to every member (the end of a flush) and empties it.
    pub fn clear_log(&mut self) {
        self.log_base = self.log_end();
        self.log.clear();
        if self.log.capacity() > LOG_KEEP {
            self.log = Vec::new();
        }
    }

    pub fn members(&self) -> &[Token] {
        &self.members
    }

    pub fn find(&self, nick: &str) -> Option<Token> {
        self.by_key.get(&nick_key(nick)).copied()
    }

    fn join(&mut self, token: Token, conn: &mut Conn) {
        conn.room_slot = Some(self.members.len());
        conn.room_pos = self.log_end();
        self.members.push(token);
        self.by_key.insert(nick_key(&conn.nick), token);
    }

    pub fn leave(&mut self, conns: &mut Slab, slot: usize, nick: &str) {
        self.members.swap_remove(slot);
        if let Some(&moved) = self.members.get(slot) {
            if let Some(conn) = conns.get_mut(moved.0) {
                conn.room_slot = Some(slot);
            }
        }
        self.by_key.remove(&nick_key(nick));
    }

    fn rename(&mut self, token: Token, old: &str, new: &str) {
        self.by_key.remove(&nick_key(old));
        self.by_key.insert(nick_key(new), token);
    }

    /// Appends the user list as `USERS`/`USERS+` lines.
    fn push_user_list(&self, conns: &Slab, out: &mut Vec<u8>) {
        let nicks = self
            .members
            .iter()
            .map(|t| conns.get(t.0).map_or("", |c| &*c.nick));
        push_user_list(out, nicks);
    }
}

impl Server {
    /// Queues raw protocol bytes for one connection. A connection whose queue would pass
    /// --max-queue, even after writing what its socket takes, is marked too slow instead, to be
    /// closed once the current pass is done.
    fn send_bytes(&mut self, token: Token, line: &[u8]) {
        let max_queue = self.cfg.max_queue;
        let Server {
            room,
            conns,
            flush_queue,
            to_close,
            pool,
            ..
        } = self;
        let Some(conn) = conns.get_mut(token.0) else {
            return;
        };
        if !matches!(conn.phase, Phase::Registering | Phase::Chatting) {
            return;
        }
        // What was said to the room before this line reaches this client before it.
        room.catch_up(conn, pool);
        if conn.out.pending() + line.len() > max_queue {
            // Lines queued this pass have not been offered to the socket yet: a burst bigger than
            // the queue must not drop a client that reads. Only what the socket refuses counts.
            let written = conn.out.write_to(&mut conn.tls, pool);
            let reason = match written {
                Err(e) => Some(CloseReason::Lost(e.to_string())),
                Ok(_) if conn.out.pending() + line.len() > max_queue => Some(CloseReason::TooSlow),
                Ok(_) => None,
            };
            if let Some(reason) = reason {
                conn.give_up();
                to_close.push((token, conn.serial, reason));
                return;
            }
        }
        conn.out.push(line, pool);
        if !conn.flush_queued {
            conn.flush_queued = true;
            flush_queue.push(token);
        }
    }

    /// Formats into the server's reusable line buffer (no allocation per line), then sends
    /// what was formatted, if anything.
    fn with_line(
        &mut self,
        format: impl FnOnce(&Server, &mut Vec<u8>),
        send: impl FnOnce(&mut Server, &[u8]),
    ) {
        let mut line = std::mem::take(&mut self.line_buf);
        line.clear();
        format(self, &mut line);
        if !line.is_empty() {
            send(self, &line);
        }
        self.line_buf = line;
    }

    /// Sends one line made of `words` to one connection.
    pub(crate) fn reply(&mut self, token: Token, words: &[&str]) {
        self.with_line(
            |_, line| push_line(line, words),
            |s, line| s.send_bytes(token, line),
        );
    }

    pub(crate) fn reply_error(&mut self, token: Token, code: ErrorCode, text: &str) {
        self.reply(token, &["ERROR", code.as_str(), text]);
    }

    /// Sends one line to everyone in the room but `except`, formatted once.
    pub(crate) fn send_to_room(&mut self, except: Option<Token>, words: &[&str]) {
        self.with_line(
            |_, line| push_line(line, words),
            |s, line| s.fan_out(except, line),
        );
    }

    fn fan_out(&mut self, except: Option<Token>, line: &[u8]) {
        let Server {
            room, conns, pool, ..
        } = self;
        // The one left out is served up to here, then skips the line.
        let skipping = except
            .and_then(|t| conns.get_mut(t.0))
            .filter(|c| matches!(c.phase, Phase::Registering | Phase::Chatting));
        if let Some(conn) = skipping {
            room.catch_up(conn, pool);
            room.log.extend_from_slice(line);
            conn.room_pos = room.log_end();
        } else {
            room.log.extend_from_slice(line);
        }
        room.dirty = true;
    }

    fn send_user_list(&mut self, token: Token) {
        self.with_line(
            |s, lines| s.room.push_user_list(&s.conns, lines),
            |s, lines| s.send_bytes(token, lines),
        );
    }

    /// Handles one frame from a connection; returns whether to keep reading its input.
    pub(crate) fn handle_frame(&mut self, token: Token, frame: Frame<'_>) -> bool {
        let Some(conn) = self.conns.get_mut(token.0) else {
            return false;
        };
        if !matches!(conn.phase, Phase::Registering | Phase::Chatting) {
            return false;
        }
        if self.cfg.flood_rate > 0.0
            && !conn
                .flood
                .allow(self.now, self.cfg.flood_rate, self.cfg.flood_burst)
        {
            if !conn.flood.warned {
                conn.flood.warned = true;
                log!("limit: flood from {}, dropping lines", conn.who());
                let text = format!(
                    "too many lines: at most {} per second; lines dropped",
                    self.cfg.flood_rate
                );
                self.reply_error(token, ErrorCode::Flood, &text);
            }
            return true;
        }
        let registered = conn.phase == Phase::Chatting;
        match frame {
            Frame::TooLong => {
                log!("limit: line too long from {}", conn.who());
                let text = format!(
                    "lines are at most {} bytes; line dropped",
                    self.cfg.max_line
                );
                self.reply_error(token, ErrorCode::LineTooLong, &text);
            }
            Frame::BadUtf8 => self.reply_error(
                token,
                ErrorCode::BadUtf8,
                "lines must be UTF-8; line dropped",
            ),
            Frame::Line(line) if registered => self.chat_line(token, line),
            Frame::Line(line) => self.registration_line(token, line),
        }
        self.conns
            .get(token.0)
            .is_some_and(|c| matches!(c.phase, Phase::Registering | Phase::Chatting))
    }

    /// A line before the client has a nickname: the nickname, or one of the few commands that
    /// make sense without one.
    fn registration_line(&mut self, token: Token, line: &str) {
        let wanted = line.trim();
        let authenticated = self.conns.get(token.0).is_some_and(|c| c.authenticated);
        match parse_client_line(wanted) {
            ClientLine::Pass(given) if !authenticated => self.check_password(token, given),
            ClientLine::Pass(_) => {
                self.reply(token, &["NOTICE", notice::PASSWORD_ALREADY_ACCEPTED])
            }
            ClientLine::Ping(tok) => self.pong(token, tok),
            ClientLine::Help => self.help(token),
            ClientLine::Quit(reason) => self.quit(token, reason),
            _ if !authenticated => self.reply_error(
                token,
                ErrorCode::PasswordRequired,
                "this server needs a password: send /pass <password> first",
            ),
            ClientLine::Message(_) | ClientLine::Empty if !wanted.starts_with("//") => {
                self.try_register(token, wanted)
            }
            ClientLine::Nick(nick) => self.try_register(token, nick),
            ClientLine::MissingArgument(usage) => self.reply_error(
                token,
                ErrorCode::MissingArgument,
                &format!("usage: {usage}"),
            ),
            _ => self.reply_error(
                token,
                ErrorCode::NickInvalid,
                "choose a nickname first: send it alone on a line",
            ),
        }
    }

    fn check_password(&mut self, token: Token, given: &str) {
        let Some(conn) = self.conns.get_mut(token.0) else {
            return;
        };
        // IPv6 by /64: one host usually has the whole network.
        let ip = address_key(conn.addr.ip());
        if let Some(wait) = self.throttle.wait_left(ip, self.now) {
            log!("limit: password attempt from {ip} while blocked");
            let text = format!(
                "too many wrong passwords from your address; try again in {} s",
                wait.as_secs() + 1
            );
            self.reply_error(token, ErrorCode::BadPassword, &text);
            return self.close(token, CloseReason::Rejected(ErrorCode::BadPassword));
        }
        let right = self.password.as_ref().is_some_and(|p| p.matches(given));
        if right {
            conn.authenticated = true;
            self.throttle.succeeded(ip);
            return self.reply(token, &["NOTICE", notice::PASSWORD_ACCEPTED]);
        }
        let wait = self.throttle.failed(ip, self.now);
        log!(
            "limit: wrong password from {ip} (next attempt allowed in {} s)",
            wait.as_secs()
        );
        self.reply_error(token, ErrorCode::BadPassword, "wrong password");
        self.close(token, CloseReason::Rejected(ErrorCode::BadPassword));
    }

    fn try_register(&mut self, token: Token, nick: &str) {
        if let Err(e) = validate_nick(nick) {
            return self.reply_error(token, ErrorCode::NickInvalid, &e.to_string());
        }
        if self.room.find(nick).is_some() {
            return self.reply_error(
                token,
                ErrorCode::NickTaken,
                &format!("{nick} is already in use, choose another"),
            );
        }
        let Some(conn) = self.conns.get_mut(token.0) else {
            return;
        };
        conn.nick = nick.into();
        conn.phase = Phase::Chatting;
        if std::mem::take(&mut conn.joining) {
            self.joining.remove(address_key(conn.addr.ip()));
        }
        self.room.join(token, conn);
        log!("registered {}", conn.who());
        self.reply(token, &["WELCOME", nick]);
        self.send_user_list(token);
        self.send_to_room(Some(token), &["JOIN", nick]);
    }

    fn chat_line(&mut self, token: Token, line: &str) {
        match parse_client_line(line) {
            ClientLine::Empty => {}
            ClientLine::Message(text) => self.say(token, "MSG", text),
            ClientLine::Me(text) => self.say(token, "ACTION", text),
            ClientLine::Users => self.send_user_list(token),
            ClientLine::Msg { to, text } => self.private_message(token, to, text),
            ClientLine::Nick(new) => self.change_nick(token, new),
            ClientLine::Ping(tok) => self.pong(token, tok),
            ClientLine::Quit(reason) => self.quit(token, reason),
            ClientLine::Help => self.help(token),
            ClientLine::MissingArgument(usage) => self.reply_error(
                token,
                ErrorCode::MissingArgument,
                &format!("usage: {usage}"),
            ),
            ClientLine::Pass(_) => self.reply_error(token, ErrorCode::UnknownCommand, "pass"),
            ClientLine::Unknown("") => self.reply_error(token, ErrorCode::UnknownCommand, "/"),
            ClientLine::Unknown(name) => {
                self.reply_error(token, ErrorCode::UnknownCommand, &clean_text(name))
            }
        }
    }

    /// A public message or action: formatted once, queued for everyone else.
    fn say(&mut self, token: Token, kind: &str, text: &str) {
        let text = clean_text(text);
        if text.trim().is_empty() {
            return;
        }
        self.relay(token, kind, &text, None);
    }

    /// `<kind> <sender's nick> <text>`, formatted once, for one connection (`to`) or for
    /// everyone but the sender.
    fn relay(&mut self, from: Token, kind: &str, text: &str, to: Option<Token>) {
        self.with_line(
            |s, line| {
                if let Some(conn) = s.conns.get(from.0) {
                    push_line(line, &[kind, &conn.nick, text]);
                }
            },
            |s, line| match to {
                Some(target) => s.send_bytes(target, line),
                None => s.fan_out(Some(from), line),
            },
        );
    }

    fn private_message(&mut self, token: Token, to: &str, text: &str) {
        let text = clean_text(text);
        if text.trim().is_empty() {
            return self.reply_error(
                token,
                ErrorCode::MissingArgument,
                "usage: /msg <nick> <text>",
            );
        }
        let Some(target) = self.room.find(to) else {
            return self.reply_error(token, ErrorCode::NoSuchUser, &clean_text(to));
        };
        self.relay(token, "PRIVMSG", &text, Some(target));
    }

    fn change_nick(&mut self, token: Token, new: &str) {
        if let Err(e) = validate_nick(new) {
            return self.reply_error(token, ErrorCode::NickInvalid, &e.to_string());
        }
        let Some(conn) = self.conns.get(token.0) else {
            return;
        };
        if *conn.nick == *new {
            return self.reply(token, &["NOTICE", notice::NICK_UNCHANGED, new]);
        }
        if self.room.find(new).is_some_and(|holder| holder != token) {
            return self.reply_error(
                token,
                ErrorCode::NickTaken,
                &format!("{new} is already in use, choose another"),
            );
        }
        let Some(conn) = self.conns.get_mut(token.0) else {
            return;
        };
        let old = std::mem::replace(&mut conn.nick, new.into());
        self.room.rename(token, &old, new);
        log!("nick {old} -> {new} ({})", conn.addr);
        // Everyone, the sender included, so that the client learns the change took effect.
        self.send_to_room(None, &["NICK", &old, new]);
    }

    fn pong(&mut self, token: Token, tok: Option<&str>) {
        match tok {
            Some(tok) => self.reply(token, &["PONG", &clean_text(tok)]),
            None => self.reply(token, &["PONG"]),
        }
    }

    fn help(&mut self, token: Token) {
        for line in HELP {
            self.reply(token, &["NOTICE", line]);
        }
    }

    fn quit(&mut self, token: Token, reason: Option<&str>) {
        let reason = reason
            .map(|r| clean_text(r).into_owned())
            .filter(|r| !r.trim().is_empty());
        self.close(token, CloseReason::Quit(reason));
    }
}
