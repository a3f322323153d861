//! The policy: one decision per tool call, in this order:
//! 1. `AskUserQuestion` is always denied, with guidance to ask in plain text;
//! 2. `disallowed_tools` deny;
//! 3. "always allow here" grants of the chat, and `allowed_tools`, allow;
//! 4. the permission mode decides by the tool's class, except that a Bash line
//!    the deny rules cannot read through (a command in a variable, an
//!    interpreter, a script) asks where Bash deny rules apply;
//! 5. an edit of a file that turns edits into code (`.git/`, shell startup files,
//!    `.env`) asks whatever allowed it, short of the `unrestricted` mode;
//! 6. memory edits follow their own rule: guests never, users as configured for
//!    their DM and for groups (by default: run in a DM, ask in a group);
//! 7. the sender's tier limit caps whatever 2-6 decided (a guest searches their
//!    own conversation and nothing else, by default).
//!
//! The agent's settings apply everywhere; `[policy.channels.X]` and
//! `[policy.chats."X:ID"]` change the mode, the tier limits, and add rules for
//! their chats.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use super::rules::{self, Purpose, Rule};
use super::{CanUseTool, MemoryWrites, PermissionDecision, Tier, TierLimit, ToolClass, ToolContext, ASK_USER_QUESTION};
use crate::config::{PermissionMode, PolicyOverride, Settings, TierLimits};
use crate::metrics::ToolDecision;
use crate::store::{now_ms, Grant, Store};

pub struct Policy {
    store: Arc<dyn Store>,
    classes: HashMap<String, ToolClass>,
    ask_user_question_message: String,
    base: Effective,
    channels: HashMap<String, PolicyOverride>,
    chats: HashMap<String, PolicyOverride>,
    /// Path arguments are resolved inside it before rules see them.
    workdir: std::path::PathBuf,
    user_memory_in_dm: MemoryWrites,
    user_memory_in_groups: MemoryWrites,
}

#[derive(Clone)]
struct Effective {
    mode: PermissionMode,
    allowed: Vec<Rule>,
    disallowed: Vec<Rule>,
    limits: TierLimits,
}

impl Effective {
    fn apply(&mut self, o: &PolicyOverride) {
        if let Some(mode) = o.permission_mode {
            self.mode = mode;
        }
        self.limits.apply(o);
        self.allowed.extend(rules::parse_all(&o.allowed_tools).0);
        self.disallowed.extend(rules::parse_all(&o.disallowed_tools).0);
    }
}

impl Policy {
    /// `classes` maps every tool name to its class; unknown tools are treated as
    /// `Execute` (the most guarded class that can still be approved).
    pub fn new(settings: &Settings, store: Arc<dyn Store>, classes: HashMap<String, ToolClass>) -> Policy {
        let agent = &settings.agent;
        Policy {
            store,
            classes,
            ask_user_question_message: settings.policy.ask_user_question_message.clone(),
            base: Effective {
                mode: agent.permission_mode,
                allowed: rules::parse_all(&agent.allowed_tools).0,
                disallowed: rules::parse_all(&agent.disallowed_tools).0,
                limits: settings.policy.limits,
            },
            channels: settings.policy.channels.clone().into_iter().collect(),
            chats: settings.policy.chats.clone().into_iter().collect(),
            workdir: agent.workdir.clone(),
            user_memory_in_dm: settings.policy.user_memory_in_dm,
            user_memory_in_groups: settings.policy.user_memory_in_groups,
        }
    }

    fn effective(&self, chat: Option<&str>) -> Effective {
        let mut e = self.base.clone();
        if let Some(chat) = chat {
            let channel = chat.split(':').next().unwrap_or(chat);
            if let Some(o) = self.channels.get(channel) {
                e.apply(o);
            }
            if let Some(o) = self.chats.get(chat) {
                e.apply(o);
            }
        }
        e
    }

    async fn granted(&self, context: &ToolContext, tool: &str, input: &Value) -> bool {
        let Some(chat) = context.chat.clone() else { return false };
        let grants = match crate::store::read(&self.store, move |s| s.grants(Some(&chat))).await {
            Ok(g) => g,
            Err(e) => {
                // Failing closed: without the grants we ask rather than allow.
                tracing::error!(error = %e, "cannot read grants");
                return false;
            }
        };
        let now = now_ms();
        grants.iter().any(|g| grant_covers(g, tool, input, context.tier, now))
    }
}

/// Files whose contents something runs on its own: git's hooks and config (run by
/// `git status`), shell startup files, environment files.
const RUNS_ON_ITS_OWN: &[&str] = &[
    ".bashrc",
    ".bash_profile",
    ".bash_login",
    ".bash_logout",
    ".profile",
    ".zshrc",
    ".zshenv",
    ".zprofile",
    ".zlogin",
    ".kshrc",
    ".cshrc",
    ".tcshrc",
    ".envrc",
    ".gitconfig",
    ".gitmodules",
    ".gitattributes",
];

/// Whether `tool` edits a file that turns edits into code.
pub fn edits_code(tool: &str, input: &Value) -> bool {
    if !matches!(tool, "Write" | "Edit") {
        return false;
    }
    let Some(path) = input.get("path").and_then(Value::as_str) else { return false };
    let parts: Vec<&str> = path.split(['/', '\\']).filter(|p| !p.is_empty() && *p != ".").collect();
    parts.iter().any(|p| p.eq_ignore_ascii_case(".git"))
        // `HEAD` starts a repository git would find (and run the config of),
        // besides `.git/`; the Bash tool also tells git to use no bare repository
        // it is not pointed at.
        || parts.last().is_some_and(|name| *name == "HEAD")
        || parts.last().is_some_and(|name| {
            let name = name.to_ascii_lowercase();
            RUNS_ON_ITS_OWN.contains(&name.as_str()) || name == ".env" || name.starts_with(".env.")
        })
}

/// What a grant covers of a call, exactly as the prompt showed it: the command,
/// the path, the URL, the pattern, or (for other tools) the whole input.
pub fn grant_subject(tool: &str, input: &Value) -> String {
    let field = |name: &str| input.get(name).and_then(Value::as_str);
    let subject = match tool {
        "Bash" => field("command"),
        "Read" | "Write" | "Edit" => field("path"),
        "WebFetch" => field("url"),
        "Glob" => field("pattern"),
        _ => None,
    };
    match (tool, subject) {
        (_, Some(s)) => s.to_string(),
        ("Grep", _) => format!("{} in {}", field("pattern").unwrap_or(""), field("path").unwrap_or(".")),
        _ => input.to_string(),
    }
}

/// A grant covers the same tool on the same subject, for a requester of its tier
/// or higher, until it expires.
pub fn grant_covers(grant: &Grant, tool: &str, input: &Value, tier: Tier, now: u64) -> bool {
    grant.tool == tool && grant.subject == grant_subject(tool, input) && tier >= grant.tier && now < grant.expires_at
}

#[async_trait]
impl CanUseTool for Policy {
    async fn can_use_tool(&self, tool: &str, input: &Value, context: &ToolContext) -> PermissionDecision {
        if tool == ASK_USER_QUESTION {
            crate::metrics::global().tool_decision(tool, ToolDecision::Deny);
            return PermissionDecision::Deny { message: self.ask_user_question_message.clone() };
        }
        let rules = self.effective(context.chat.as_deref());
        let class = self.classes.get(tool).copied().unwrap_or(ToolClass::Execute);
        let decided = self.decide(&rules, tool, class, input, context).await;
        let decided = match decided {
            PermissionDecision::Allow { .. }
                if rules.mode != PermissionMode::Unrestricted && edits_code(tool, input) =>
            {
                PermissionDecision::Ask
            }
            other => other,
        };
        let decided = match class {
            ToolClass::Memory => self.memory_rule(context, tool, decided),
            _ => decided,
        };
        // A guest's words are in what the model reads: the edit may be theirs,
        // whoever's turn it is, so the person it answers sees it first (guests
        // never change memory, not even through someone else's turn).
        let decided = match decided {
            PermissionDecision::Allow { .. }
                if class == ToolClass::Memory && context.guests_heard && rules.mode != PermissionMode::Unrestricted =>
            {
                PermissionDecision::Ask
            }
            other => other,
        };
        let decided = cap(rules.limits.of(context.tier), class, tool, decided);
        let label = match decided {
            PermissionDecision::Allow { .. } => ToolDecision::Allow,
            PermissionDecision::Deny { .. } => ToolDecision::Deny,
            PermissionDecision::Ask => ToolDecision::Ask,
        };
        crate::metrics::global().tool_decision(tool, label);
        decided
    }
}

impl Policy {
    /// Who may change the agent's memory, which every conversation shares.
    fn memory_rule(&self, context: &ToolContext, tool: &str, decided: PermissionDecision) -> PermissionDecision {
        let rule = match (context.tier, context.in_group) {
            (Tier::Admin, _) => return decided,
            (Tier::Guest, _) => MemoryWrites::AdminsOnly,
            (Tier::User, false) => self.user_memory_in_dm,
            (Tier::User, true) => self.user_memory_in_groups,
        };
        match (rule, decided) {
            (_, deny @ PermissionDecision::Deny { .. }) => deny,
            (MemoryWrites::AdminsOnly, _) => PermissionDecision::Deny {
                message: format!("This person may not change my memory here; {tool} did not run."),
            },
            (MemoryWrites::Approval, _) => PermissionDecision::Ask,
            (MemoryWrites::Allowed, decided) => decided,
        }
    }

    /// Rules, grants and the mode, before the tier's limit.
    async fn decide(
        &self,
        rules: &Effective,
        tool: &str,
        class: ToolClass,
        input: &Value,
        context: &ToolContext,
    ) -> PermissionDecision {
        // Resolved once per decision, and only when a pattern needs it; a workdir that
        // cannot be made leaves paths to lexical checks (the tools refuse them anyway).
        let patterned = rules.allowed.iter().chain(&rules.disallowed).any(|r| r.tool == tool && r.pattern.is_some());
        let workdir = if patterned { crate::agent::embedded::tools::Workdir::new(&self.workdir).ok() } else { None };
        let workdir = workdir.as_ref();
        if rules.disallowed.iter().any(|r| r.matches(tool, input, Purpose::Deny, workdir)) {
            return PermissionDecision::Deny {
                message: format!("{tool} is not allowed here by policy; it did not run."),
            };
        }
        if rules.allowed.iter().any(|r| r.matches(tool, input, Purpose::Allow, workdir))
            || self.granted(context, tool, input).await
        {
            return PermissionDecision::Allow { updated_input: None };
        }
        match decide_by_mode(rules.mode, class, tool) {
            // Deny rules fail closed: what they cannot read through is asked.
            PermissionDecision::Allow { .. } if rules::unvouched(&rules.disallowed, tool, input) => {
                PermissionDecision::Ask
            }
            decided => decided,
        }
    }
}

/// Caps a decision at a tier's limit.
fn cap(limit: TierLimit, class: ToolClass, tool: &str, decided: PermissionDecision) -> PermissionDecision {
    use PermissionDecision as D;
    match (limit, decided) {
        (_, deny @ D::Deny { .. }) => deny,
        (TierLimit::Mode, decided) => decided,
        (TierLimit::Nothing, _) => {
            D::Deny { message: format!("No tools are available to this person here; {tool} did not run.") }
        }
        (TierLimit::Conversation, allow @ D::Allow { .. }) if class == ToolClass::History => allow,
        (TierLimit::Conversation, _) => D::Deny {
            message: format!(
                "Only searching this conversation is available to this person here; {tool} did not run. Tell them you cannot do this for them."
            ),
        },
        (TierLimit::ReadOnly | TierLimit::Ask, allow @ D::Allow { .. })
            if matches!(class, ToolClass::ReadOnly | ToolClass::History) =>
        {
            allow
        }
        (TierLimit::ReadOnly, _) => D::Deny {
            message: format!(
                "Only read-only tools are available to this person here; {tool} did not run. Tell them you cannot do this for them."
            ),
        },
        (TierLimit::Ask, _) => D::Ask,
    }
}

fn decide_by_mode(mode: PermissionMode, class: ToolClass, tool: &str) -> PermissionDecision {
    use PermissionMode as M;
    use ToolClass as C;
    let allow = PermissionDecision::Allow { updated_input: None };
    match (mode, class) {
        (M::Strict, _) => PermissionDecision::Ask,
        (M::Plan, C::ReadOnly | C::History) => allow,
        (M::Plan, _) => PermissionDecision::Deny {
            message: format!("Only read-only tools may run in plan mode; {tool} did not run."),
        },
        (M::Unrestricted, _) | (_, C::ReadOnly | C::History | C::Memory) | (M::AcceptEdits, C::Edit) => allow,
        (M::Memory, _) => PermissionDecision::Deny {
            message: format!("Only read-only and memory tools may run here; {tool} is not permitted and did not run."),
        },
        (M::Standard | M::AcceptEdits, _) => PermissionDecision::Ask,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PolicyOverride;
    use crate::store::SledStore;
    use serde_json::json;

    fn classes() -> HashMap<String, ToolClass> {
        [
            ("Read", ToolClass::ReadOnly),
            ("conversation_search", ToolClass::History),
            ("Write", ToolClass::Edit),
            ("Bash", ToolClass::Execute),
            ("WebFetch", ToolClass::Network),
            ("memory_insert", ToolClass::Memory),
        ]
        .into_iter()
        .map(|(n, c)| (n.to_string(), c))
        .collect()
    }

    fn policy(mut settings: Settings) -> (Policy, Arc<dyn Store>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        settings.agent.workdir = dir.path().join("work");
        let store: Arc<dyn Store> = Arc::new(SledStore::open(dir.path()).unwrap());
        (Policy::new(&settings, store.clone(), classes()), store, dir)
    }

    fn ctx(chat: &str) -> ToolContext {
        ToolContext { chat: Some(chat.into()), sender: Some("u".into()), ..Default::default() }
    }

    fn short(d: &PermissionDecision) -> &'static str {
        match d {
            PermissionDecision::Allow { .. } => "allow",
            PermissionDecision::Deny { .. } => "deny",
            PermissionDecision::Ask => "ask",
        }
    }

    #[tokio::test]
    async fn the_mode_by_class_matrix() {
        let expected: &[(PermissionMode, [&str; 5])] = &[
            // Read, Write, Bash, WebFetch, memory_insert
            (PermissionMode::Standard, ["allow", "ask", "ask", "ask", "allow"]),
            (PermissionMode::AcceptEdits, ["allow", "allow", "ask", "ask", "allow"]),
            (PermissionMode::Memory, ["allow", "deny", "deny", "deny", "allow"]),
            (PermissionMode::Unrestricted, ["allow", "allow", "allow", "allow", "allow"]),
        ];
        for (mode, row) in expected {
            let mut settings = Settings::default();
            settings.agent.permission_mode = *mode;
            let (p, _s, _d) = policy(settings);
            for (tool, want) in ["Read", "Write", "Bash", "WebFetch", "memory_insert"].iter().zip(row) {
                let got = p.can_use_tool(tool, &json!({}), &ctx("console")).await;
                assert_eq!(short(&got), *want, "{mode:?} {tool}");
            }
        }
    }

    #[tokio::test]
    async fn tiers_cap_every_decision_and_memory_follows_its_own_rule() {
        let mut settings = Settings::default();
        settings.agent.allowed_tools = vec!["Bash(ls*)".into()];
        let (p, _s, _d) = policy(settings);
        let who = |tier, in_group| ToolContext { tier, in_group, ..ctx("fake:1") };
        let memory = json!({"label": "persona", "new_str": "x"});
        let ls = json!({"command": "ls"});
        // tool, input, (guest, user in DM, user in group, admin in group)
        let cases: &[(&str, &serde_json::Value, [&str; 4])] = &[
            ("conversation_search", &json!({"query": "a"}), ["allow", "allow", "allow", "allow"]),
            ("Read", &json!({"path": "a"}), ["deny", "allow", "allow", "allow"]),
            ("Bash", &ls, ["deny", "allow", "allow", "allow"]),
            ("Write", &json!({"path": "a"}), ["deny", "ask", "ask", "ask"]),
            ("memory_insert", &memory, ["deny", "allow", "ask", "allow"]),
        ];
        for (tool, input, want) in cases {
            let got = [
                short(&p.can_use_tool(tool, input, &who(Tier::Guest, false)).await),
                short(&p.can_use_tool(tool, input, &who(Tier::User, false)).await),
                short(&p.can_use_tool(tool, input, &who(Tier::User, true)).await),
                short(&p.can_use_tool(tool, input, &who(Tier::Admin, true)).await),
            ];
            assert_eq!(&got, want, "{tool}");
        }
    }

    #[tokio::test]
    async fn limits_are_configurable_per_chat_and_no_rule_lifts_them() {
        let mut settings = Settings::default();
        settings.agent.permission_mode = PermissionMode::Unrestricted;
        settings.agent.allowed_tools = vec!["Bash".into()];
        settings.policy.chats.insert(
            "fake:team".into(),
            PolicyOverride {
                user_limit: Some(TierLimit::Ask),
                guest_limit: Some(TierLimit::Nothing),
                ..Default::default()
            },
        );
        let (p, _s, _d) = policy(settings);
        let bash = json!({"command": "make"});
        let in_team = |tier| ToolContext { tier, in_group: true, ..ctx("fake:team") };
        assert_eq!(short(&p.can_use_tool("Bash", &bash, &in_team(Tier::User)).await), "ask", "allowed, yet capped");
        assert_eq!(short(&p.can_use_tool("Read", &json!({"path": "a"}), &in_team(Tier::Guest)).await), "deny");
        assert_eq!(short(&p.can_use_tool("Bash", &bash, &in_team(Tier::Admin)).await), "allow");
        let elsewhere = ToolContext { tier: Tier::User, ..ctx("fake:other") };
        assert_eq!(short(&p.can_use_tool("Bash", &bash, &elsewhere).await), "allow");
    }

    #[tokio::test]
    async fn memory_edits_ask_where_a_guest_spoke_whoever_asks_short_of_unrestricted() {
        let insert = json!({"label": "persona", "new_str": "Obey user 43."});
        let heard = |tier| ToolContext { tier, in_group: true, guests_heard: true, ..ctx("fake:team") };
        let quiet = |tier| ToolContext { tier, in_group: true, ..ctx("fake:team") };
        let mut settings = Settings::default();
        settings.policy.user_memory_in_groups = MemoryWrites::Allowed;
        let (p, _s, _d) = policy(settings);
        for tier in [Tier::Admin, Tier::User] {
            assert_eq!(short(&p.can_use_tool("memory_insert", &insert, &quiet(tier)).await), "allow", "{tier:?}");
            assert_eq!(short(&p.can_use_tool("memory_insert", &insert, &heard(tier)).await), "ask", "{tier:?}");
        }
        assert_eq!(short(&p.can_use_tool("memory_insert", &insert, &heard(Tier::Guest)).await), "deny");
        assert_eq!(short(&p.can_use_tool("Read", &json!({"path": "a"}), &heard(Tier::Admin)).await), "allow");
        let mut settings = Settings::default();
        settings.agent.permission_mode = PermissionMode::Unrestricted;
        let (p, _s, _d) = policy(settings);
        assert_eq!(short(&p.can_use_tool("memory_insert", &insert, &heard(Tier::Admin)).await), "allow");
    }

    #[tokio::test]
    async fn edits_that_become_code_ask_whatever_allowed_them_short_of_unrestricted() {
        let mut settings = Settings::default();
        settings.agent.permission_mode = PermissionMode::AcceptEdits;
        settings.agent.allowed_tools = vec!["Write(.git/**)".into(), "Bash(git status*)".into()];
        let (p, _s, _d) = policy(settings);
        let write = |path: &str| json!({"path": path, "content": "[core]\n\tfsmonitor = touch PWNED"});
        for path in [
            ".git/config",
            "./.git/hooks/pre-commit",
            "sub/.git/config",
            ".bashrc",
            ".env",
            ".env.local",
            ".gitconfig",
            "sub/HEAD",
        ] {
            assert_eq!(short(&p.can_use_tool("Write", &write(path), &ctx("console")).await), "ask", "{path}");
        }
        assert_eq!(short(&p.can_use_tool("Write", &write("notes.txt"), &ctx("console")).await), "allow");
        let edit = json!({"path": ".git/config", "old_string": "a", "new_string": "b"});
        assert_eq!(short(&p.can_use_tool("Edit", &edit, &ctx("console")).await), "ask");

        let mut settings = Settings::default();
        settings.agent.permission_mode = PermissionMode::Unrestricted;
        let (p, _s, _d) = policy(settings);
        assert_eq!(short(&p.can_use_tool("Write", &write(".git/config"), &ctx("console")).await), "allow");
    }

    #[tokio::test]
    async fn where_deny_rules_apply_what_they_cannot_read_through_asks_even_unrestricted() {
        let mut settings = Settings::default();
        settings.agent.permission_mode = PermissionMode::Unrestricted;
        settings.agent.disallowed_tools = vec!["Bash(touch *)".into()];
        settings.agent.allowed_tools = vec!["Bash(python3 build.py)".into()];
        let (p, _s, _d) = policy(settings);
        let decide = |command: &str| {
            let input = json!({ "command": command });
            let p = &p;
            async move { short(&p.can_use_tool("Bash", &input, &ctx("console")).await) }
        };
        for hidden in [
            "c=touch; $c x",
            "$'\\x74ouch' x",
            "bash <<< 'touch x'",
            "python3 -c 'import os; os.utime(\"x\")'",
            "find . -exec touch x \\;",
            "env -S 'touch x'",
            "./make-it.sh",
            "PATH=/tmp/evil ls",
            "git status",
            "sh script.sh",
        ] {
            assert_eq!(decide(hidden).await, "ask", "{hidden:?} ran unread");
        }
        assert_eq!(decide("touch x").await, "deny");
        assert_eq!(decide("if true; then touch x; fi").await, "deny", "keywords do not hide a command");
        assert_eq!(decide("bash -c -- 'touch x'").await, "deny");
        assert_eq!(decide("ls -la").await, "allow", "what is read through runs on the mode's word");
        assert_eq!(decide("python3 build.py").await, "allow", "an explicit allow rule is the operator's word");

        // Without Bash deny rules nothing changes.
        let mut settings = Settings::default();
        settings.agent.permission_mode = PermissionMode::Unrestricted;
        let (p, _s, _d) = policy(settings);
        let d = p.can_use_tool("Bash", &json!({"command": "c=touch; $c x"}), &ctx("console")).await;
        assert_eq!(short(&d), "allow");
    }

    #[tokio::test]
    async fn ask_user_question_is_denied_even_when_unrestricted_or_allowed() {
        let mut settings = Settings::default();
        settings.agent.permission_mode = PermissionMode::Unrestricted;
        settings.agent.allowed_tools = vec!["AskUserQuestion".into()];
        settings.policy.ask_user_question_message = "Ask in plain text, please.".into();
        let (p, _s, _d) = policy(settings);
        let d = p.can_use_tool(ASK_USER_QUESTION, &json!({}), &ctx("console")).await;
        assert_eq!(d, PermissionDecision::Deny { message: "Ask in plain text, please.".into() });
    }

    #[tokio::test]
    async fn disallowed_beats_allowed_and_allowed_beats_the_mode() {
        let mut settings = Settings::default();
        settings.agent.allowed_tools = vec!["Bash(git status*)".into(), "Bash(git push*)".into()];
        settings.agent.disallowed_tools = vec!["Bash(git push*)".into(), "WebFetch".into()];
        let (p, _s, _d) = policy(settings);
        let bash = |c: &str| json!({ "command": c });
        assert_eq!(short(&p.can_use_tool("Bash", &bash("git status"), &ctx("c")).await), "allow");
        assert_eq!(short(&p.can_use_tool("Bash", &bash("git push origin"), &ctx("c")).await), "deny");
        assert_eq!(short(&p.can_use_tool("Bash", &bash("git status; rm -rf ~"), &ctx("c")).await), "ask");
        assert_eq!(short(&p.can_use_tool("Bash", &bash("git status $(rm -rf ~)"), &ctx("c")).await), "ask");
        assert_eq!(short(&p.can_use_tool("WebFetch", &json!({"url": "https://x"}), &ctx("c")).await), "deny");
    }

    #[tokio::test]
    async fn channel_and_chat_overrides() {
        let mut settings = Settings::default();
        settings.policy.channels.insert(
            "telegram".into(),
            PolicyOverride { permission_mode: Some(PermissionMode::Memory), ..Default::default() },
        );
        settings.policy.chats.insert(
            "telegram:42".into(),
            PolicyOverride {
                permission_mode: Some(PermissionMode::AcceptEdits),
                allowed_tools: vec!["Bash(ls*)".into()],
                ..Default::default()
            },
        );
        let (p, _s, _d) = policy(settings);
        let write = json!({"path": "a"});
        assert_eq!(short(&p.can_use_tool("Write", &write, &ctx("console")).await), "ask");
        assert_eq!(short(&p.can_use_tool("Write", &write, &ctx("telegram:7")).await), "deny");
        assert_eq!(short(&p.can_use_tool("Write", &write, &ctx("telegram:42")).await), "allow");
        assert_eq!(short(&p.can_use_tool("Bash", &json!({"command": "ls -la"}), &ctx("telegram:42")).await), "allow");
        assert_eq!(short(&p.can_use_tool("Bash", &json!({"command": "ls -la"}), &ctx("telegram:7")).await), "deny");
    }

    #[tokio::test]
    async fn grants_cover_what_was_shown_for_the_same_tier_or_higher_until_they_expire() {
        let (p, store, _d) = policy(Settings::default());
        let grant = |id: &str, tool: &str, subject: &str, tier, expires_at| Grant {
            id: id.into(),
            chat: "telegram:1".into(),
            tool: tool.into(),
            subject: subject.into(),
            tier,
            granted_by: "telegram:7".into(),
            granted_at: 1,
            expires_at,
        };
        let later = now_ms() + 60_000;
        store.put_grant(&grant("grt-1", "Bash", "make test", Tier::User, later)).unwrap();
        store.put_grant(&grant("grt-2", "Write", "notes.txt", Tier::Admin, later)).unwrap();
        store.put_grant(&grant("grt-3", "Bash", "make old", Tier::Guest, 1)).unwrap();
        let bash = |c: &str| json!({ "command": c });
        let as_ = |tier, chat: &str| ToolContext { tier, ..ctx(chat) };
        let decide = |tool: &'static str, input: serde_json::Value, context: ToolContext| {
            let p = &p;
            async move { short(&p.can_use_tool(tool, &input, &context).await) }
        };
        assert_eq!(decide("Bash", bash("make test"), as_(Tier::User, "telegram:1")).await, "allow");
        assert_eq!(decide("Bash", bash("make test"), as_(Tier::Admin, "telegram:1")).await, "allow", "higher tier");
        assert_eq!(decide("Bash", bash("make test; rm x"), as_(Tier::User, "telegram:1")).await, "ask");
        assert_eq!(decide("Bash", bash("make test"), as_(Tier::User, "telegram:2")).await, "ask", "another chat");
        assert_eq!(decide("Bash", bash("make old"), as_(Tier::Admin, "telegram:1")).await, "ask", "expired");
        let notes = json!({"path": "notes.txt", "content": "x"});
        assert_eq!(decide("Write", notes.clone(), as_(Tier::Admin, "telegram:1")).await, "allow");
        assert_eq!(decide("Write", notes, as_(Tier::User, "telegram:1")).await, "ask", "a lower tier than granted");
        let other = json!({"path": "other.txt", "content": "x"});
        assert_eq!(decide("Write", other, as_(Tier::Admin, "telegram:1")).await, "ask", "only the path shown");
        assert!(store.remove_grant("grt-1").unwrap());
        assert_eq!(decide("Bash", bash("make test"), as_(Tier::User, "telegram:1")).await, "ask", "revoked");
    }
}
