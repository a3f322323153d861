//! The command table as adapters see it: what they register with their platform
//! (Telegram's menu, Discord's and Slack's slash commands), and how a typed
//! `/name args` is recognised on platforms that deliver commands as plain text.

/// One command the gateway answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandSpec {
    /// Lower-case, without a leading `/`: `status`.
    pub name: &'static str,
    /// One line for the platform's command menu.
    pub description: &'static str,
    /// What the optional argument is, for platforms that declare arguments (a
    /// Discord option, a Slack usage hint); `None` when the command takes none.
    pub argument: Option<&'static str>,
}

/// `/name args` when `name` (compared case-insensitively) is in `table`; the
/// returned name is the table's spelling. A name with `@` in it (`/new@otherbot`)
/// never matches: adapters remove their own bot's name before asking.
pub fn parse_text<'t>(text: &str, table: &'t [CommandSpec]) -> Option<(&'t CommandSpec, String)> {
    let rest = text.trim().strip_prefix('/')?;
    let (name, args) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    let spec = table.iter().find(|c| c.name.eq_ignore_ascii_case(name))?;
    Some((spec, args.trim().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &[CommandSpec] = &[
        CommandSpec { name: "status", description: "s", argument: None },
        CommandSpec { name: "deny", description: "d", argument: Some("reason") },
        CommandSpec { name: "model", description: "m", argument: Some("name") },
    ];

    fn parsed(text: &str) -> Option<(&'static str, String)> {
        parse_text(text, TABLE).map(|(spec, args)| (spec.name, args))
    }

    #[test]
    fn known_commands_parse_with_their_arguments() {
        assert_eq!(parsed("/status"), Some(("status", String::new())));
        assert_eq!(parsed(" /deny  too risky "), Some(("deny", "too risky".into())));
        assert_eq!(parsed("/Model gpt-4o"), Some(("model", "gpt-4o".into())));
    }

    #[test]
    fn unknown_other_bots_and_inline_slashes_are_not_commands() {
        assert_eq!(parsed("/new@otherbot"), None);
        assert_eq!(parsed("/unknown"), None);
        assert_eq!(parsed("hello /status"), None);
        assert_eq!(parsed("/"), None);
    }
}
