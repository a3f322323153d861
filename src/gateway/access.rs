//! Who may talk to the agent, judged from a channel's access block alone: the DM
//! policy (pairing, allowlist, open), admins, and which groups the bot works in
//! and how (mention, open, listen, disabled).

use switchboard_channel_core::{AccessSettings, ChatKey, ChatKind, DmPolicy, GroupPolicy, Sender};

use super::pairing::{CodeRequest, Pairing};
use crate::policy::Tier;
use crate::store::StoreResult;

/// One channel's rules: its section's access block, read for senders whose ids
/// are channel-scoped (`telegram:42`) while the block's are the platform's (`42`),
/// and the daemon's approvers (channel-scoped ids, any channel).
#[derive(Debug, Clone)]
pub struct ChannelAccess {
    pub channel: String,
    rules: AccessSettings,
    approvers: Vec<String>,
}

impl ChannelAccess {
    /// The rules of channel `name` from its section's access block.
    pub fn new(name: &str, rules: &AccessSettings, approvers: &[String]) -> ChannelAccess {
        ChannelAccess { channel: name.to_string(), rules: rules.clone(), approvers: approvers.to_vec() }
    }

    /// How far `sender` is trusted here: admins and approvers, then allowlisted
    /// or paired people, then everyone else.
    pub async fn tier(&self, pairing: &Pairing, sender: &str) -> StoreResult<Tier> {
        Ok(if self.is_admin(sender) {
            Tier::Admin
        } else if self.is_allowed(sender) || pairing.is_paired(sender).await? {
            Tier::User
        } else {
            Tier::Guest
        })
    }

    /// Whether the channel-scoped `sender` is one of the platform `ids`.
    fn listed(&self, ids: &[String], sender: &str) -> bool {
        let raw = sender.strip_prefix(self.channel.as_str()).and_then(|rest| rest.strip_prefix(':'));
        raw.is_some_and(|raw| ids.iter().any(|id| id == raw))
    }

    /// Everyone who may decide any request here: the channel's admins and the
    /// daemon's approvers on this channel, channel-scoped.
    pub fn admin_ids(&self) -> Vec<String> {
        let prefix = format!("{}:", self.channel);
        let mut ids: Vec<String> = self.rules.admins.iter().map(|id| format!("{prefix}{id}")).collect();
        for approver in self.approvers.iter().filter(|a| a.starts_with(&prefix)) {
            if !ids.contains(approver) {
                ids.push(approver.clone());
            }
        }
        ids
    }

    /// A channel admin or one of the daemon's approvers.
    pub fn is_admin(&self, sender: &str) -> bool {
        self.listed(&self.rules.admins, sender) || self.approvers.iter().any(|a| a == sender)
    }

    fn is_allowed(&self, sender: &str) -> bool {
        self.listed(&self.rules.allowed_users, sender)
    }
}

/// What the access rules see of a message or command.
pub struct Attempt<'a> {
    pub chat: &'a ChatKey,
    pub kind: ChatKind,
    pub sender: &'a Sender,
    /// Mentioned, replied to, or invoked as the bot's command.
    pub addressed: bool,
    /// The server or workspace the chat belongs to, which the group rules may
    /// name instead of the chat (a Discord guild).
    pub space: Option<&'a str>,
}

impl Attempt<'_> {
    /// The ids the group rules may name for this chat: the chat first, then its space.
    fn group_ids(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.chat.chat.as_str()).chain(self.space)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Goes on to the agent (or a command), from someone of this tier.
    Answer(Tier),
    /// Stored in the conversation, not answered (`listen` groups).
    Listen(Tier),
    /// Dropped. The text never reaches the agent.
    Refuse(Refusal),
}

/// How a refused attempt is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Not at all (groups: a refusal there would be noise).
    Silent,
    /// The person may pair: what asking for a code gave.
    Pairing(CodeRequest),
    /// The bot is private.
    Private,
}

/// Judges one attempt under `rules`.
pub async fn judge(pairing: &Pairing, rules: &ChannelAccess, attempt: &Attempt<'_>) -> StoreResult<Verdict> {
    let sender = &attempt.sender.id;
    if attempt.sender.is_bot {
        return Ok(Verdict::Refuse(Refusal::Silent));
    }
    let tier = rules.tier(pairing, sender).await?;
    // Whether the person may talk under the DM policy without asking.
    let known = tier >= Tier::User || rules.rules.dm_policy == DmPolicy::Open;
    match attempt.kind {
        ChatKind::Group => {
            let verdict = group_verdict(rules, attempt, tier);
            // Only a group the operator listed lets everyone in it talk; elsewhere a
            // person must be allowed as in a DM, or adding the bot to one's own
            // group would get around pairing.
            let listed = attempt.group_ids().any(|id| rules.rules.allowed_groups.iter().any(|g| g == id));
            if verdict == Verdict::Refuse(Refusal::Silent) || listed || known {
                Ok(verdict)
            } else {
                Ok(Verdict::Refuse(Refusal::Silent))
            }
        }
        ChatKind::Direct if known => Ok(Verdict::Answer(tier)),
        ChatKind::Direct => match rules.rules.dm_policy {
            DmPolicy::Pairing => {
                let code = pairing.request_code(&rules.channel, sender, &attempt.sender.name).await?;
                Ok(Verdict::Refuse(Refusal::Pairing(code)))
            }
            _ => Ok(Verdict::Refuse(Refusal::Private)),
        },
    }
}

fn group_verdict(rules: &ChannelAccess, attempt: &Attempt<'_>, tier: Tier) -> Verdict {
    let rules = &rules.rules;
    if !rules.allowed_groups.is_empty() && !attempt.group_ids().any(|id| rules.allowed_groups.iter().any(|g| g == id)) {
        return Verdict::Refuse(Refusal::Silent);
    }
    // The chat's own policy wins over its space's.
    let configured = attempt.group_ids().find_map(|id| rules.groups.get(id).copied());
    match configured.unwrap_or(rules.group_policy) {
        GroupPolicy::Disabled => Verdict::Refuse(Refusal::Silent),
        GroupPolicy::Listen => Verdict::Listen(tier),
        GroupPolicy::Open => Verdict::Answer(tier),
        GroupPolicy::Mention if attempt.addressed => Verdict::Answer(tier),
        // Not addressed to the bot: kept out of the conversation entirely.
        GroupPolicy::Mention => Verdict::Refuse(Refusal::Silent),
    }
}

/// The reply to a refused person, if any.
pub fn refusal_text(refusal: &Refusal, channel: &str) -> Option<String> {
    match refusal {
        Refusal::Silent => None,
        Refusal::Pairing(CodeRequest::Code(code)) => Some(format!(
            "Hi! I don't know you yet. Your pairing code is {code} (valid for one hour). Ask the owner to approve it: /pair {code} from an admin, or `switchboard pairing approve {channel} {code}`."
        )),
        Refusal::Pairing(CodeRequest::ChannelFull) => Some(
            "Hi! I don't know you yet, and too many pairing requests are waiting right now. Please try again later."
                .into(),
        ),
        Refusal::Pairing(CodeRequest::TooOften) => {
            Some("Hi! You have asked for pairing codes too often today; please try again tomorrow.".into())
        }
        Refusal::Private => Some("Sorry, this assistant is private.".into()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::SledStore;

    fn rules(dm: DmPolicy, group: GroupPolicy) -> ChannelAccess {
        let settings = AccessSettings {
            dm_policy: dm,
            admins: vec!["7".into()],
            allowed_users: vec!["8".into()],
            group_policy: group,
            allowed_groups: vec!["team".into(), "quiet".into()],
            groups: [("quiet".to_string(), GroupPolicy::Listen)].into(),
        };
        ChannelAccess::new("fake", &settings, &["other:1".to_string(), "fake:6".to_string()])
    }

    fn chat(id: &str) -> ChatKey {
        ChatKey { channel: "fake".into(), account: "b".into(), chat: id.into(), thread: None }
    }

    fn sender(id: &str) -> Sender {
        Sender { id: format!("fake:{id}"), name: format!("User {id}"), is_bot: false }
    }

    async fn verdict(
        pairing: &Pairing,
        rules: &ChannelAccess,
        kind: ChatKind,
        chat_id: &str,
        who: &str,
        addressed: bool,
    ) -> Verdict {
        let (chat, sender) = (chat(chat_id), sender(who));
        judge(pairing, rules, &Attempt { chat: &chat, kind, sender: &sender, addressed, space: None }).await.unwrap()
    }

    #[tokio::test]
    async fn a_space_named_in_the_rules_covers_its_chats_and_a_chats_own_policy_wins() {
        let dir = tempfile::tempdir().unwrap();
        let pairing = Pairing::new(Arc::new(SledStore::open(dir.path()).unwrap()));
        let mut settings = AccessSettings {
            dm_policy: DmPolicy::Allowlist,
            group_policy: GroupPolicy::Mention,
            allowed_groups: vec!["guild".into()],
            groups: [("guild".to_string(), GroupPolicy::Open), ("quiet".to_string(), GroupPolicy::Listen)].into(),
            ..AccessSettings::default()
        };
        let in_space = |rules: &ChannelAccess, chat_id: &str, space: Option<&'static str>| {
            let (chat, sender, rules, pairing) = (chat(chat_id), sender("9"), rules.clone(), pairing.clone());
            async move {
                let attempt = Attempt { chat: &chat, kind: ChatKind::Group, sender: &sender, addressed: false, space };
                judge(&pairing, &rules, &attempt).await.unwrap()
            }
        };
        let rules = ChannelAccess::new("fake", &settings, &[]);
        assert_eq!(
            in_space(&rules, "general", Some("guild")).await,
            Verdict::Answer(Tier::Guest),
            "the guild's policy"
        );
        assert_eq!(in_space(&rules, "quiet", Some("guild")).await, Verdict::Listen(Tier::Guest), "the chat's own wins");
        assert_eq!(in_space(&rules, "general", Some("other")).await, Verdict::Refuse(Refusal::Silent), "not listed");
        assert_eq!(in_space(&rules, "general", None).await, Verdict::Refuse(Refusal::Silent));
        settings.allowed_groups = vec!["general".into()];
        let rules = ChannelAccess::new("fake", &settings, &[]);
        assert_eq!(in_space(&rules, "general", Some("guild")).await, Verdict::Answer(Tier::Guest), "a listed chat");
    }

    #[tokio::test]
    async fn direct_chats_follow_the_dm_policy_and_groups_their_policy() {
        let dir = tempfile::tempdir().unwrap();
        let pairing = Pairing::new(Arc::new(SledStore::open(dir.path()).unwrap()));
        let r = rules(DmPolicy::Allowlist, GroupPolicy::Mention);
        let answer = |tier| Verdict::Answer(tier);
        assert_eq!(verdict(&pairing, &r, ChatKind::Direct, "7", "7", false).await, answer(Tier::Admin), "admin");
        assert_eq!(verdict(&pairing, &r, ChatKind::Direct, "6", "6", false).await, answer(Tier::Admin), "approver");
        assert_eq!(verdict(&pairing, &r, ChatKind::Direct, "8", "8", false).await, answer(Tier::User), "allowed");
        assert_eq!(verdict(&pairing, &r, ChatKind::Direct, "9", "9", false).await, Verdict::Refuse(Refusal::Private));
        let listed = verdict(&pairing, &r, ChatKind::Group, "team", "9", true).await;
        assert_eq!(listed, answer(Tier::Guest), "a listed group lets a stranger talk, as a guest");
        assert_eq!(verdict(&pairing, &r, ChatKind::Group, "team", "9", false).await, Verdict::Refuse(Refusal::Silent));
        let quiet = verdict(&pairing, &r, ChatKind::Group, "quiet", "8", true).await;
        assert_eq!(quiet, Verdict::Listen(Tier::User), "override");
        assert_eq!(
            verdict(&pairing, &r, ChatKind::Group, "elsewhere", "7", true).await,
            Verdict::Refuse(Refusal::Silent)
        );

        let p = rules(DmPolicy::Pairing, GroupPolicy::Open);
        let Verdict::Refuse(Refusal::Pairing(CodeRequest::Code(code))) =
            verdict(&pairing, &p, ChatKind::Direct, "9", "9", false).await
        else {
            panic!("a pairing code")
        };
        pairing.approve("fake", &code, "fake:7").await.unwrap().unwrap();
        assert_eq!(verdict(&pairing, &p, ChatKind::Direct, "9", "9", false).await, answer(Tier::User), "paired");
        let open = rules(DmPolicy::Open, GroupPolicy::Open);
        let stranger = verdict(&pairing, &open, ChatKind::Direct, "5", "5", false).await;
        assert_eq!(stranger, answer(Tier::Guest), "an open DM is a guest's");
        let mut bot = sender("5");
        bot.is_bot = true;
        let key = chat("team");
        let attempt = Attempt { chat: &key, kind: ChatKind::Group, sender: &bot, addressed: true, space: None };
        assert_eq!(judge(&pairing, &p, &attempt).await.unwrap(), Verdict::Refuse(Refusal::Silent), "bots never");
    }
}
