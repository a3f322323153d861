//! Chat commands: /start /help /new /status /cancel /model /approve /deny /whoami
//! /pair. They are answered by the gateway itself, never queued behind a turn.

use std::sync::Arc;

use switchboard_channel_core::Inbound;

use super::GatewayInner;
use crate::policy::approvals::{outcome_text, Choice, DecideError, Decider};
use crate::store::ApprovalState;

/// (command, description) as registered with the platform.
pub const COMMANDS: &[(&str, &str)] = &[
    ("start", "Say hello"),
    ("help", "What I can do"),
    ("new", "Start a fresh conversation in this chat"),
    ("status", "Agent, conversation, model and queue"),
    ("cancel", "Stop the current reply"),
    ("model", "Show or set the model (admins)"),
    ("approve", "Allow the pending tool request"),
    ("deny", "Deny the pending tool request"),
    ("whoami", "Your id and role"),
    ("pair", "Approve a pairing code (admins)"),
];

/// `/name args` for a known command.
pub fn parse(text: &str) -> Option<(&'static str, String)> {
    let text = text.trim();
    let rest = text.strip_prefix('/')?;
    let (name, args) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    // Adapters strip "@ourbot"; a name still carrying "@" is for another bot.
    if name.contains('@') {
        return None;
    }
    let name = name.to_ascii_lowercase();
    COMMANDS.iter().find(|(c, _)| *c == name).map(|(c, _)| (*c, args.trim().to_string()))
}

/// The reply to a command.
pub async fn handle(gw: &Arc<GatewayInner>, message: &Inbound, command: &str, args: &str) -> String {
    let admin = gw.is_admin(message);
    let chat = &message.chat;
    match command {
        "start" | "help" => help(),
        "whoami" => format!(
            "You are {} ({}). Admin: {}. This chat: {}.",
            message.sender.name,
            message.sender.id,
            if admin { "yes" } else { "no" },
            chat.id()
        ),
        "new" => match gw.router.start_new(chat).await {
            Ok(_) => "Started a new conversation. I still remember what is in my memory.".into(),
            Err(e) => failed("start a new conversation", &e.to_string()),
        },
        "status" => status(gw, message).await,
        "cancel" => match gw.router.route(chat).await {
            Ok(route) if gw.cancel_active(&route.conversation_id) => "Cancelled.".into(),
            Ok(_) => "Nothing to cancel.".into(),
            Err(e) => failed("cancel", &e.to_string()),
        },
        "model" if !admin => "Only an admin can do that.".into(),
        "model" => model(gw, message, args).await,
        "pair" if !admin => "Only an admin can do that.".into(),
        "pair" => match gw.access.approve(&chat.channel, args, &message.sender.id).await {
            Ok(Some(request)) => format!("Paired {} ({}). They can talk to me now.", request.name, request.user),
            Ok(None) => "That pairing code is not valid (or it expired).".into(),
            Err(e) => failed("pair", &e.to_string()),
        },
        "approve" => decide_pending(gw, message, Choice::AllowOnce, None).await,
        "deny" => decide_pending(gw, message, Choice::Deny, Some(args.to_string()).filter(|r| !r.is_empty())).await,
        _ => help(),
    }
}

fn help() -> String {
    let mut text = String::from("Talk to me in plain words. Commands:\n");
    for (name, description) in COMMANDS {
        text.push_str(&format!("/{name} — {description}\n"));
    }
    text
}

async fn status(gw: &GatewayInner, message: &Inbound) -> String {
    let route = match gw.router.route(&message.chat).await {
        Ok(r) => r,
        Err(e) => return failed("read the status", &e.to_string()),
    };
    let agent = match gw.backend.agent(&route.agent_id).await {
        Ok(a) => a.agent,
        Err(e) => return failed("read the status", &e.to_string()),
    };
    let pending = gw
        .backend
        .approvals()
        .await
        .map(|all| {
            all.iter()
                .filter(|a| a.conversation_id == route.conversation_id && a.state == ApprovalState::Pending)
                .count()
        })
        .unwrap_or(0);
    let channel = gw.channel(&message.chat.channel).map(|c| c.status()).unwrap_or_default();
    format!(
        "Agent: {} ({})\nConversation: {}\nModel: {}\nQueued or running: {}\nPending approvals: {}\nChannel: {}",
        agent.name,
        agent.id,
        route.conversation_id,
        agent.model.unwrap_or_else(|| gw.default_model.clone()),
        gw.queues.len(&route.conversation_id),
        pending,
        channel
    )
}

async fn model(gw: &GatewayInner, message: &Inbound, args: &str) -> String {
    let route = match gw.router.route(&message.chat).await {
        Ok(r) => r,
        Err(e) => return failed("change the model", &e.to_string()),
    };
    if args.is_empty() {
        return match gw.backend.agent(&route.agent_id).await {
            Ok(a) => format!("Model: {}", a.agent.model.unwrap_or_else(|| gw.default_model.clone())),
            Err(e) => failed("read the model", &e.to_string()),
        };
    }
    match gw.backend.set_model(&route.agent_id, Some(args.to_string())).await {
        Ok(_) => format!("Model set to {args}."),
        Err(e) => failed("change the model", &e.to_string()),
    }
}

/// `/approve` and `/deny`: the text fallback for the chat's newest pending request.
async fn decide_pending(gw: &Arc<GatewayInner>, message: &Inbound, choice: Choice, reason: Option<String>) -> String {
    let route = match gw.router.route(&message.chat).await {
        Ok(r) => r,
        Err(e) => return failed("decide", &e.to_string()),
    };
    let pending = gw.backend.approvals().await.ok().and_then(|all| {
        all.into_iter().rev().find(|a| a.conversation_id == route.conversation_id && a.state == ApprovalState::Pending)
    });
    let Some(approval) = pending else { return "There is no pending request here.".into() };
    let decider = Decider { id: message.sender.id.clone(), operator: false };
    gw.remember_name(&message.sender);
    match gw.backend.decide_approval(&approval.id, &decider, choice, reason).await {
        Ok(decided) => {
            if !decided.waiter_woken {
                gw.resume_after_restart(&decided.approval, &message.chat, &message.sender).await;
            }
            outcome_text(decided.approval.state.as_str(), Some(&message.sender.name))
        }
        Err(DecideError::NotEntitled) => DecideError::NotEntitled.to_string(),
        Err(DecideError::NotPending) => DecideError::NotPending.to_string(),
        Err(e) => failed("decide", &e.to_string()),
    }
}

/// A short line for the chat; the detail goes to the log.
fn failed(what: &str, detail: &str) -> String {
    tracing::error!(error = %detail, "command failed: {what}");
    format!("Sorry, I could not {what} just now; please try again.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_commands_with_and_without_the_bot_name() {
        assert_eq!(parse("/status"), Some(("status", String::new())));
        assert_eq!(parse("/deny  too risky "), Some(("deny", "too risky".into())));
        assert_eq!(parse("/new@otherbot"), None, "another bot's command");
        assert_eq!(parse("/Model gpt-4o"), Some(("model", "gpt-4o".into())));
        assert_eq!(parse("/unknown"), None);
        assert_eq!(parse("hello /status"), None);
    }
}
