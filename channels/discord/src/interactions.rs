//! Slash commands and interaction responses: registering the command table,
//! the opaque handle an interaction is answered through, and the answers
//! themselves (the deferred response's edit, follow-ups, ephemeral notices).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use switchboard_channel_core::{ChannelError, CommandSpec};
use tokio::sync::watch;

use crate::rest::Rest;
use crate::wire::{callback, context};

/// `/ask text`: talking to the agent without a mention.
pub const ASK: &str = "ask";

/// Message flag: only the person who triggered the interaction sees it.
pub const EPHEMERAL: u64 = 1 << 6;

/// What an interaction was, which decides how it is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A slash command: acknowledged with "thinking…", answered by editing that.
    Command,
    /// A button press: acknowledged with a deferred update of its message.
    Press,
}

/// An interaction as the gateway carries it (opaque to it): what answering it needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handle {
    pub application: String,
    pub interaction: String,
    pub token: String,
    pub kind: Kind,
}

impl Handle {
    /// The text the gateway stores.
    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads a handle made by [`Handle::encode`].
    pub fn decode(text: &str) -> Result<Handle, ChannelError> {
        serde_json::from_str(text).map_err(|_| ChannelError::Rejected("discord: not an interaction handle".into()))
    }

    /// The interaction's webhook, where its response and follow-ups live.
    pub fn webhook(&self) -> String {
        format!("/webhooks/{}/{}", self.application, self.token)
    }
}

/// The longest an answer waits for its interaction's acknowledgement.
const ACK_WAIT: Duration = Duration::from_secs(3);

/// Interactions being acknowledged. The gateway may answer an interaction as
/// soon as it is journaled, which is before the adapter acknowledged it; Discord
/// refuses an answer (an edit of the response, a follow-up) until then, so an
/// answer waits here for its acknowledgement first.
#[derive(Clone, Default)]
pub struct Acks(Arc<Mutex<HashMap<String, watch::Receiver<bool>>>>);

/// Marks one acknowledgement done when dropped.
pub struct Acking {
    acks: Acks,
    id: String,
    done: watch::Sender<bool>,
}

impl Acks {
    /// An acknowledgement of `interaction` is under way until the guard drops.
    pub fn begin(&self, interaction: &str) -> Acking {
        let (done, waiting) = watch::channel(false);
        self.0.lock().unwrap_or_else(PoisonError::into_inner).insert(interaction.to_string(), waiting);
        Acking { acks: self.clone(), id: interaction.to_string(), done }
    }

    /// Returns once `interaction` is acknowledged (at once when none is under
    /// way, as after a restart), or after [`ACK_WAIT`].
    pub async fn settled(&self, interaction: &str) {
        let waiting = self.0.lock().unwrap_or_else(PoisonError::into_inner).get(interaction).cloned();
        if let Some(mut waiting) = waiting {
            let _ = tokio::time::timeout(ACK_WAIT, waiting.wait_for(|done| *done)).await;
        }
    }
}

impl Drop for Acking {
    fn drop(&mut self) {
        let _ = self.done.send(true);
        self.acks.0.lock().unwrap_or_else(PoisonError::into_inner).remove(&self.id);
    }
}

/// Nothing the bot sends may ping anyone.
pub fn no_pings() -> Value {
    json!({"parse": [], "replied_user": false})
}

/// The command table as Discord's application commands, with `/ask` first.
pub fn definitions(commands: &[CommandSpec]) -> Value {
    let mut list = vec![json!({
        "name": ASK,
        "type": 1,
        "description": "Ask the agent something",
        "options": [{"type": 3, "name": "text", "description": "What to ask", "required": true, "max_length": 4000}],
        "contexts": CONTEXTS,
        "integration_types": [GUILD_INSTALL],
    })];
    for command in commands.iter().filter(|c| c.name != ASK) {
        let mut definition = json!({
            "name": command.name,
            "type": 1,
            "description": short(command.description),
            "contexts": CONTEXTS,
            "integration_types": [GUILD_INSTALL],
        });
        if let Some(argument) = command.argument {
            definition["options"] =
                json!([{"type": 3, "name": option_name(argument), "description": short(argument), "required": false}]);
        }
        list.push(definition);
    }
    Value::Array(list)
}

/// An option's name: lower case, words joined by `_`, at most 32 characters.
fn option_name(argument: &str) -> String {
    let name: String =
        argument.to_lowercase().chars().map(|c| if c.is_alphanumeric() { c } else { '_' }).take(32).collect();
    if name.is_empty() {
        "value".into()
    } else {
        name
    }
}

/// Descriptions are 1 to 100 characters.
fn short(text: &str) -> String {
    let text: String = text.chars().take(100).collect();
    if text.is_empty() {
        "-".into()
    } else {
        text
    }
}

/// Registers the commands (bulk overwrite) in each guild, or globally when none
/// is given. A failure is logged, not fatal: the bot still answers mentions.
pub async fn register(rest: &Rest, application: &str, guilds: &[String], commands: &[CommandSpec]) {
    let body = definitions(commands);
    let paths: Vec<String> = match guilds {
        [] => vec![format!("/applications/{application}/commands")],
        guilds => guilds.iter().map(|g| format!("/applications/{application}/guilds/{g}/commands")).collect(),
    };
    for path in paths {
        if let Err(e) = rest.put(&path, &body).await {
            tracing::warn!(error = %e.into_channel("register slash commands"), "discord: slash commands not registered");
        }
    }
}

/// Commands are offered in guilds that installed the bot and in DMs with it,
/// never in group DMs or other people's DMs.
const CONTEXTS: [u64; 2] = [context::GUILD, context::BOT_DM];
/// Installed to a guild (not to a user's account).
const GUILD_INSTALL: u64 = 0;

/// A command this bot does not have (one an older version registered).
pub const UNKNOWN: &str = "I don't know that command any more.";
/// A command used where the bot has no place (a group DM).
pub const NOT_HERE: &str = "I only work in servers that added me and in direct messages with me.";

/// Answers an interaction at once with a private notice (not journaled: it
/// reaches no conversation).
pub async fn answer_privately(rest: &Rest, id: &str, token: &str, text: &str) {
    let body = json!({"type": callback::MESSAGE, "data": {
        "content": text,
        "flags": EPHEMERAL,
        "allowed_mentions": no_pings(),
    }});
    if let Err(e) = rest.post(&format!("/interactions/{id}/{token}/callback"), &body).await {
        tracing::debug!(error = ?e, "discord: an interaction could not be answered");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_round_trip() {
        let h = Handle { application: "1".into(), interaction: "2".into(), token: "to:ken".into(), kind: Kind::Press };
        assert_eq!(Handle::decode(&h.encode()).unwrap(), h);
        assert_eq!(h.webhook(), "/webhooks/1/to:ken");
        assert!(Handle::decode("1:2:3").is_err());
    }

    #[tokio::test]
    async fn an_answer_waits_for_its_acknowledgement_and_no_longer() {
        let acks = Acks::default();
        acks.settled("none").await;
        let acking = acks.begin("1");
        let waiter = tokio::spawn({
            let acks = acks.clone();
            async move { acks.settled("1").await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "waits while the acknowledgement is under way");
        drop(acking);
        tokio::time::timeout(Duration::from_secs(1), waiter).await.unwrap().unwrap();
        acks.settled("1").await;
    }

    #[test]
    fn definitions_fit_discords_rules() {
        let table = [
            CommandSpec { name: "status", description: "Status", argument: None },
            CommandSpec { name: "model", description: "Model", argument: Some("model name") },
        ];
        let defs = definitions(&table);
        let names: Vec<&str> = defs.as_array().unwrap().iter().map(|d| d["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["ask", "status", "model"]);
        assert_eq!(defs[2]["options"][0]["name"], "model_name");
        assert_eq!(defs[0]["options"][0]["required"], true);
        assert_eq!(defs[1]["contexts"], json!([0, 1]), "never in group DMs");
    }
}
