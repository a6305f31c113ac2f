//! What the load looks like on the wire: Charla's protocol v1, or IRC so that the same scenarios
//! can be run against ngIRCd and InspIRCd (`--dialect irc`) and the figures compared on one day.

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Charla,
    Irc,
}

/// The IRC channel that stands for Charla's one room.
const CHANNEL: &str = "#charla";

impl Dialect {
    pub fn parse(name: &str) -> Option<Dialect> {
        match name {
            "charla" => Some(Dialect::Charla),
            "irc" => Some(Dialect::Irc),
            _ => None,
        }
    }

    /// Registers `nick`, which also enters the room in Charla; an IRC client joins the channel
    /// once welcomed (see [`Dialect::auto_reply`]): InspIRCd refuses a JOIN sent before that.
    pub fn register(self, nick: &str) -> String {
        match self {
            Dialect::Charla => format!("{nick}\n"),
            Dialect::Irc => format!("NICK {nick}\r\nUSER {nick} 0 * :{nick}\r\n"),
        }
    }

    /// What a client answers by itself, without the scenario seeing the line: an IRC server's
    /// keep-alive `PING`, and its welcome (001), which is when to join the channel.
    pub fn auto_reply(self, line: &str) -> Option<String> {
        match self {
            Dialect::Charla => None,
            Dialect::Irc if numeric(line) == Some("001") => Some(format!("JOIN {CHANNEL}\r\n")),
            Dialect::Irc => line
                .strip_prefix("PING ")
                .map(|arg| format!("PONG {arg}\r\n")),
        }
    }

    /// The line that says registration is complete and the client is in the room: Charla's
    /// WELCOME; IRC's end of the channel's NAMES list, the last reply to JOIN.
    pub fn is_registered(self, line: &str) -> bool {
        match self {
            Dialect::Charla => line.starts_with("WELCOME "),
            Dialect::Irc => numeric(line) == Some("366"),
        }
    }

    /// A refusal: Charla's ERROR line; IRC's ERROR or an error numeric (4xx, 5xx) other than
    /// 422, "MOTD file is missing", which servers without a MOTD send to everyone.
    pub fn is_error(self, line: &str) -> bool {
        match self {
            Dialect::Charla => line.starts_with("ERROR "),
            Dialect::Irc => {
                line.starts_with("ERROR ")
                    || numeric(line)
                        .is_some_and(|n| (n.starts_with('4') || n.starts_with('5')) && n != "422")
            }
        }
    }

    /// A chat line from this client to the room.
    pub fn say(self, text: &str, out: &mut String) {
        match self {
            Dialect::Charla => {
                out.push_str(text);
                out.push('\n');
            }
            Dialect::Irc => {
                out.push_str("PRIVMSG ");
                out.push_str(CHANNEL);
                out.push_str(" :");
                out.push_str(text);
                out.push_str("\r\n");
            }
        }
    }

    /// The text of a chat line someone else said in the room.
    pub fn heard(self, line: &str) -> Option<&str> {
        match self {
            // [#room ]MSG <nick> <text>
            Dialect::Charla => {
                let line = match line.strip_prefix('#') {
                    Some(rest) => rest.split_once(' ')?.1,
                    None => line,
                };
                line.strip_prefix("MSG ")?.split_once(' ').map(|(_, t)| t)
            }
            // :nick!user@host PRIVMSG #charla :<text>
            Dialect::Irc => {
                let (_, rest) = line.strip_prefix(':')?.split_once(' ')?;
                rest.strip_prefix("PRIVMSG ")?
                    .strip_prefix(CHANNEL)?
                    .strip_prefix(" :")
            }
        }
    }

    /// Asks the server to echo `token`: every line to this client before it has been read when
    /// the answer arrives.
    pub fn ping(self, token: &str) -> String {
        match self {
            Dialect::Charla => format!("/ping {token}\n"),
            Dialect::Irc => format!("PING :{token}\r\n"),
        }
    }

    pub fn is_pong(self, line: &str, token: &str) -> bool {
        match self {
            Dialect::Charla => line.strip_prefix("PONG ") == Some(token),
            // :server PONG server :token (the colon is optional)
            Dialect::Irc => {
                line.split(' ').nth(1) == Some("PONG")
                    && line
                        .strip_suffix(token)
                        .is_some_and(|l| l.ends_with([' ', ':']))
            }
        }
    }

    pub fn quit(self) -> &'static str {
        match self {
            Dialect::Charla => "/quit\n",
            Dialect::Irc => "QUIT\r\n",
        }
    }
}

/// The numeric of a server reply (`:server 366 nick #charla :End of NAMES list`).
fn numeric(line: &str) -> Option<&str> {
    let mut words = line.strip_prefix(':')?.split(' ');
    let n = words.nth(1)?;
    (n.len() == 3 && n.bytes().all(|b| b.is_ascii_digit())).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charla_lines() {
        let d = Dialect::Charla;
        assert_eq!(d.register("ana"), "ana\n");
        assert!(d.is_registered("WELCOME ana 3"));
        assert_eq!(d.heard("MSG ana 1 2 3 xx"), Some("1 2 3 xx"));
        assert_eq!(d.heard("#r7 MSG ana 1 2 3 xx"), Some("1 2 3 xx"));
        assert_eq!(d.heard("#r7 JOIN ana"), None);
        assert_eq!(d.heard("JOIN bob"), None);
        assert!(d.is_pong("PONG barrier", "barrier"));
        assert!(!d.is_pong("PONG barrierx", "barrier"));
        assert!(d.is_error("ERROR nick-taken that nickname is in use"));
    }

    #[test]
    fn irc_lines() {
        let d = Dialect::Irc;
        assert!(d.is_registered(":irc.local 366 ana #charla :End of /NAMES list."));
        assert!(!d.is_registered(":irc.local 353 ana = #charla :ana"));
        assert!(d.is_error(":irc.local 433 * ana :Nickname already in use"));
        assert!(!d.is_error(":irc.local 001 ana :Welcome"));
        assert!(!d.is_error(":irc.local 422 ana :MOTD File is missing"));
        assert_eq!(
            d.heard(":ana!ana@127.0.0.1 PRIVMSG #charla :1 2 3 xx"),
            Some("1 2 3 xx")
        );
        assert_eq!(d.heard(":ana!ana@127.0.0.1 JOIN :#charla"), None);
        assert!(d.is_pong(":irc.local PONG irc.local :barrier", "barrier"));
        assert!(d.is_pong(":irc.local PONG irc.local barrier", "barrier"));
        assert!(!d.is_pong(":irc.local PONG irc.local :xbarrier", "barrier"));
        let mut out = String::new();
        d.say("hola", &mut out);
        assert_eq!(out, "PRIVMSG #charla :hola\r\n");
        assert_eq!(
            d.auto_reply("PING :irc.local").as_deref(),
            Some("PONG :irc.local\r\n")
        );
        assert_eq!(
            d.auto_reply(":irc.local 001 ana :Welcome to IRC")
                .as_deref(),
            Some("JOIN #charla\r\n")
        );
        assert_eq!(d.auto_reply(":irc.local 002 ana :Your host"), None);
        assert_eq!(Dialect::Charla.auto_reply("PING :x"), None);
    }
}
