//! Chat commands: the table adapters register with their platform, and the
//! answers. Commands are answered by the gateway itself, in the chat's arrival
//! order, never queued behind a turn.

use std::sync::Arc;

use switchboard_channel_core::{ChatKey, ChatKind, CommandSpec, Sender};

use super::decisions::{Decisions, Via};
use super::names::Names;
use super::pairing::Pairing;
use super::registry::Registry;
use super::router::Router;
use super::turns::{Cancel, Turns};
use crate::agent::AgentBackend;
use crate::policy::approvals::{outcome_text, Choice, DecideError, Decider};
use crate::policy::summary::one_line;
use crate::policy::Tier;
use crate::store::{format_time, ApprovalState};

/// Every command, as registered with the platforms.
pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec { name: "start", description: "Say hello", argument: None },
    CommandSpec { name: "help", description: "What I can do", argument: None },
    CommandSpec { name: "new", description: "Start a fresh conversation in this chat", argument: None },
    CommandSpec { name: "status", description: "Agent, conversation, model and queue", argument: None },
    CommandSpec { name: "cancel", description: "Stop the current reply", argument: None },
    CommandSpec { name: "model", description: "Show or set the model (admins)", argument: Some("model name") },
    CommandSpec { name: "approve", description: "Allow the pending tool request", argument: None },
    CommandSpec { name: "deny", description: "Deny the pending tool request", argument: Some("reason") },
    CommandSpec { name: "whoami", description: "Your id and role", argument: None },
    CommandSpec { name: "pair", description: "Approve a pairing code (admins)", argument: Some("code") },
    CommandSpec { name: "unpair", description: "Unpair someone (admins)", argument: Some("user id") },
    CommandSpec { name: "grants", description: "List this chat's always-allow grants (admins)", argument: None },
    CommandSpec { name: "revoke", description: "Take back grant N of /grants (admins)", argument: Some("number") },
];

/// One command as invoked.
pub struct Invocation<'a> {
    pub chat: &'a ChatKey,
    pub kind: ChatKind,
    pub sender: &'a Sender,
    /// The sender's tier, as judged for this command.
    pub tier: Tier,
    /// A name from [`COMMANDS`].
    pub name: &'a str,
    pub args: &'a str,
}

/// What a command answers; `private` answers only the person who asked, where
/// the platform can.
pub struct Answer {
    pub text: String,
    pub private: bool,
}

impl Answer {
    fn public(text: impl Into<String>) -> Answer {
        Answer { text: text.into(), private: false }
    }

    fn private(text: impl Into<String>) -> Answer {
        Answer { text: text.into(), private: true }
    }
}

#[derive(Clone)]
pub struct Commands {
    pub(super) backend: Arc<dyn AgentBackend>,
    pub(super) registry: Registry,
    pub(super) router: Arc<Router>,
    pub(super) pairing: Pairing,
    pub(super) turns: Turns,
    pub(super) decisions: Decisions,
    pub(super) names: Names,
    pub(super) default_model: String,
    /// With replicas: where exclusive channels receive.
    pub(super) standby: Option<super::standby::Standby>,
}

impl Commands {
    /// The answer to one command.
    pub async fn run(&self, call: &Invocation<'_>) -> Answer {
        let admin = call.tier == Tier::Admin;
        let chat = call.chat;
        match call.name {
            "whoami" => Answer::private(format!(
                "You are {} ({}). Role: {}. This chat: {}.",
                call.sender.name,
                call.sender.id,
                call.tier.as_str(),
                chat.id()
            )),
            "new" => self.new_conversation(call).await,
            "status" => self.status(chat, admin).await,
            "cancel" => self.cancel(call).await,
            "model" | "pair" | "unpair" | "grants" | "revoke" if !admin => {
                Answer::private("Only an admin can do that.")
            }
            "unpair" => {
                // A bare platform id is taken to be of this channel.
                let user = call.args.trim();
                let user = if user.contains(':') { user.to_string() } else { format!("{}:{user}", chat.channel) };
                match self.pairing.revoke(&user).await {
                    Ok(true) => Answer::public(format!("Unpaired {user}: a stranger to me again.")),
                    Ok(false) => Answer::private(format!("{user} is not paired.")),
                    Err(e) => failed("unpair", &e.to_string()),
                }
            }
            "grants" => self.grants(chat).await,
            "revoke" => self.revoke(chat, call.args).await,
            "model" => self.model(chat, call.args).await,
            "pair" => match self.pairing.approve(&chat.channel, call.args, &call.sender.id).await {
                Ok(Some(r)) => Answer::public(format!("Paired {} ({}). They can talk to me now.", r.name, r.user)),
                Ok(None) => Answer::private("That pairing code is not valid (or it expired)."),
                Err(e) => failed("pair", &e.to_string()),
            },
            "approve" => self.decide_pending(call, Choice::AllowOnce, None).await,
            "deny" => {
                let reason = Some(call.args.to_string()).filter(|r| !r.is_empty());
                self.decide_pending(call, Choice::Deny, reason).await
            }
            _ => Answer::public(help()),
        }
    }

    /// `/new`: the chat continues in a fresh conversation; what the old one was
    /// doing stops and its pending requests are cancelled. Not for guests in groups.
    async fn new_conversation(&self, call: &Invocation<'_>) -> Answer {
        if call.tier == Tier::Guest && call.kind == ChatKind::Group {
            return Answer::private("Only the people I know here can start a new conversation.");
        }
        if let Ok(old) = self.router.route(call.chat).await {
            self.turns.cancel(&old.conversation_id, &call.sender.id, Tier::Admin);
            self.turns.discard(&old.conversation_id, None).await;
            self.decisions.settle(&old.conversation_id, None, "the chat started a new conversation").await;
        }
        match self.router.start_new(call.chat).await {
            Ok(_) => Answer::public("Started a new conversation. I still remember what is in my memory."),
            Err(e) => failed("start a new conversation", &e.to_string()),
        }
    }

    /// `/cancel`: stops the running turn and cancels its pending requests, for the
    /// person it answers or an admin, and drops the messages waiting for a turn
    /// (an admin's: all of them; anyone else's: their own), saying how many.
    async fn cancel(&self, call: &Invocation<'_>) -> Answer {
        let route = match self.router.route(call.chat).await {
            Ok(route) => route,
            Err(e) => return failed("cancel", &e.to_string()),
        };
        let conversation = &route.conversation_id;
        let reason = "cancelled with /cancel";
        // Only their own requests, unless an admin asks.
        let whose = (call.tier != Tier::Admin).then_some(call.sender.id.as_str());
        let stopped = self.turns.cancel(conversation, &call.sender.id, call.tier);
        let dropped = match self.turns.discard(conversation, whose).await {
            0 => String::new(),
            1 => " 1 waiting message was dropped unread.".to_string(),
            n => format!(" {n} waiting messages were dropped unread."),
        };
        match stopped {
            Cancel::NotYours if dropped.is_empty() => {
                Answer::private("Only the person I am answering, or an admin, can cancel this.")
            }
            Cancel::NotYours => {
                Answer::private(format!("Only the person I am answering, or an admin, can stop the reply.{dropped}"))
            }
            Cancel::Cancelled => {
                self.decisions.settle(conversation, whose, reason).await;
                Answer::public(format!("Cancelled.{dropped}"))
            }
            Cancel::NothingRunning => match self.decisions.settle(conversation, whose, reason).await {
                0 if dropped.is_empty() => Answer::private("Nothing to cancel."),
                0 => Answer::public(dropped.trim_start().to_string()),
                n => {
                    Answer::public(format!("Cancelled {n} pending request{}.{dropped}", if n == 1 { "" } else { "s" }))
                }
            },
        }
    }

    /// The chat's agent, conversation, model, queue and approvals; for admins
    /// also each channel's health.
    async fn status(&self, chat: &ChatKey, admin: bool) -> Answer {
        let route = match self.router.route(chat).await {
            Ok(r) => r,
            Err(e) => return failed("read the status", &e.to_string()),
        };
        let agent = match self.backend.agent(&route.agent_id).await {
            Ok(a) => a.agent,
            Err(e) => return failed("read the status", &e.to_string()),
        };
        // Anywhere in the chat: conversations it left with /new included.
        let chat_id = chat.id();
        let pending = self
            .backend
            .approvals()
            .await
            .map(|all| {
                all.iter()
                    .filter(|a| a.chat.as_deref() == Some(chat_id.as_str()) && a.state == ApprovalState::Pending)
                    .count()
            })
            .unwrap_or(0);
        let mut text = format!(
            "Agent: {} ({})\nConversation: {}\nModel: {}\nQueued or running: {}\nPending approvals: {}",
            agent.name,
            agent.id,
            route.conversation_id,
            agent.model.unwrap_or_else(|| self.default_model.clone()),
            self.turns.waiting(&route.conversation_id),
            pending,
        );
        if admin {
            let channels: Vec<String> = self
                .registry
                .all()
                .map(|s| {
                    format!("{}: {}", s.channel.name(), super::standby::status_line(&*s.channel, self.standby.as_ref()))
                })
                .collect();
            text.push_str(&format!("\nChannels: {}", channels.join("; ")));
        }
        Answer::public(text)
    }

    /// This chat's grants, numbered for `/revoke N`.
    async fn grants(&self, chat: &ChatKey) -> Answer {
        match self.backend.grants(Some(&chat.id())).await {
            Ok(grants) if grants.is_empty() => Answer::public("No always-allow grants in this chat."),
            Ok(grants) => {
                let mut text = String::from("Always allowed here:\n");
                for (n, g) in grants.iter().enumerate() {
                    text.push_str(&format!(
                        "{}. {}: {} (for {}s and above, until {})\n",
                        n + 1,
                        g.tool,
                        one_line(&g.subject, 200),
                        g.tier.as_str(),
                        format_time(g.expires_at)
                    ));
                }
                text.push_str("Take one back with /revoke N.");
                Answer::public(text)
            }
            Err(e) => failed("list the grants", &e.to_string()),
        }
    }

    /// `/revoke N`: the Nth grant of `/grants`.
    async fn revoke(&self, chat: &ChatKey, args: &str) -> Answer {
        let grants = match self.backend.grants(Some(&chat.id())).await {
            Ok(g) => g,
            Err(e) => return failed("revoke the grant", &e.to_string()),
        };
        let Some(grant) = args.trim().parse::<usize>().ok().and_then(|n| grants.get(n.wrapping_sub(1))) else {
            return Answer::private("Say which grant: /revoke N, with N from /grants.");
        };
        match self.backend.revoke_grant(&grant.id).await {
            Ok(_) => {
                Answer::public(format!("{} on {} asks again from now on.", grant.tool, one_line(&grant.subject, 200)))
            }
            Err(e) => failed("revoke the grant", &e.to_string()),
        }
    }

    async fn model(&self, chat: &ChatKey, args: &str) -> Answer {
        let route = match self.router.route(chat).await {
            Ok(r) => r,
            Err(e) => return failed("change the model", &e.to_string()),
        };
        if args.is_empty() {
            return match self.backend.agent(&route.agent_id).await {
                Ok(a) => {
                    Answer::public(format!("Model: {}", a.agent.model.unwrap_or_else(|| self.default_model.clone())))
                }
                Err(e) => failed("read the model", &e.to_string()),
            };
        }
        match self.backend.set_model(&route.agent_id, Some(args.to_string())).await {
            Ok(_) => Answer::public(format!("Model set to {args}.")),
            Err(e) => failed("change the model", &e.to_string()),
        }
    }

    /// `/approve` and `/deny`: the text fallback for the one pending request
    /// whose prompt this chat was shown, whichever conversation asked (an
    /// approver's DM shows other chats' requests). The command names none, so it
    /// decides only when one is shown: never one the chat has not seen (not shown
    /// yet, or shown cut), and never a guess between several (someone could ask
    /// for something just before the approver types it).
    async fn decide_pending(&self, call: &Invocation<'_>, choice: Choice, reason: Option<String>) -> Answer {
        let all = match self.backend.approvals().await {
            Ok(all) => all,
            Err(e) => return failed("decide", &e.to_string()),
        };
        let mut shown = Vec::new();
        for pending in all.into_iter().filter(|a| a.state == ApprovalState::Pending) {
            match self.decisions.shown_in(&pending.id, call.chat).await {
                Ok(true) => shown.push(pending),
                Ok(false) => {}
                Err(e) => return failed("decide", &e.to_string()),
            }
        }
        let approval = match shown.len() {
            0 => return Answer::private("There is no pending request here."),
            1 => shown.remove(0),
            n => {
                return Answer::private(format!(
                    "{n} requests wait for a decision here; use the buttons under the one you mean."
                ))
            }
        };
        self.names.remember(call.sender);
        let decider = Decider::Person { id: call.sender.id.clone(), tier: call.tier };
        match self.decisions.decide(&approval.id, &decider, choice, reason, Via::Command(call.chat)).await {
            Ok(decided) => Answer::public(outcome_text(decided.state, Some(&call.sender.name))),
            Err(e @ (DecideError::NotEntitled | DecideError::NotPending | DecideError::NotShownInFull)) => {
                Answer::private(e.to_string())
            }
            Err(e) => failed("decide", &e.to_string()),
        }
    }
}

fn help() -> String {
    let mut text = String::from("Talk to me in plain words. Commands:\n");
    for c in COMMANDS {
        text.push_str(&format!("/{} — {}\n", c.name, c.description));
    }
    text
}

/// A short line for the chat; the detail goes to the log.
fn failed(what: &str, detail: &str) -> Answer {
    tracing::error!(error = %detail, "command failed: {what}");
    Answer::public(format!("Sorry, I could not {what} just now; please try again."))
}
