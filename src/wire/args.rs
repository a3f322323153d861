//! The command line the Letta Code SDK starts its CLI with (`letta-code-wire.md` §2),
//! parsed into what the engine does with it. Every flag the SDK can produce is
//! accepted; flags that change nothing here are noted on stderr; anything else
//! fails start-up with one clear line (the SDK shows it to the application).

use serde::Deserialize;

use crate::config::PermissionMode;

/// Which conversation the session runs on (§2.1: exactly one shape per start).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `--conversation conv-…`: that conversation, on its own agent.
    Conversation(String),
    /// `--agent X --conversation default` (or `--agent X` alone): the agent's default conversation.
    AgentDefault(String),
    /// `--agent X --new`: a new conversation on the agent.
    AgentNew(String),
    /// `--new-agent`: create an agent (and its default conversation), then run on that.
    NewAgent,
    /// `--new` with no agent: a new conversation on the default agent.
    New,
    /// `--conversation default` with no agent: the default agent's default conversation.
    DefaultAgentDefault,
}

/// The system prompt asked for at creation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SystemChoice {
    /// One of the SDK's preset names; every one maps to switchboard's `default` preset.
    Preset(String),
    Custom(String),
}

/// The SDK's preset names (`--system`).
pub const SDK_PRESETS: &[&str] =
    &["default", "letta-claude", "letta-codex", "letta-gemini", "claude", "codex", "gemini"];

/// One `--memory-blocks` item.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum BlockSpec {
    New {
        label: String,
        value: String,
        #[serde(default)]
        description: Option<String>,
        #[serde(default)]
        limit: Option<usize>,
    },
    /// A shared block of a Letta server; switchboard has none to attach.
    Existing {
        #[serde(rename = "blockId")]
        block_id: String,
    },
}

/// A permission mode as the SDK or the seed documents name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SdkMode {
    /// `default` / `standard`: ask for anything that is not read-only.
    Standard,
    AcceptEdits,
    /// Read-only: everything else is refused.
    Plan,
    /// `--yolo`, `bypassPermissions`, `unrestricted`: never ask.
    Bypass,
    Memory,
    /// Ask for every call, read-only ones too.
    Strict,
}

impl SdkMode {
    pub const NAMES: &'static [&'static str] =
        &["default", "standard", "acceptEdits", "plan", "bypassPermissions", "unrestricted", "memory", "strict"];

    pub fn parse(text: &str) -> Option<SdkMode> {
        Some(match text {
            "default" | "standard" => SdkMode::Standard,
            "acceptEdits" => SdkMode::AcceptEdits,
            "plan" => SdkMode::Plan,
            "bypassPermissions" | "unrestricted" => SdkMode::Bypass,
            "memory" => SdkMode::Memory,
            "strict" => SdkMode::Strict,
            _ => return None,
        })
    }

    /// The policy's mode for this name.
    pub fn policy_mode(self) -> PermissionMode {
        match self {
            SdkMode::Standard => PermissionMode::Standard,
            SdkMode::AcceptEdits => PermissionMode::AcceptEdits,
            SdkMode::Plan => PermissionMode::Plan,
            SdkMode::Bypass => PermissionMode::Unrestricted,
            SdkMode::Memory => PermissionMode::Memory,
            SdkMode::Strict => PermissionMode::Strict,
        }
    }

    /// The name `system/init` reports.
    pub fn wire_name(self) -> &'static str {
        match self {
            SdkMode::Standard => "default",
            SdkMode::AcceptEdits => "acceptEdits",
            SdkMode::Plan => "plan",
            SdkMode::Bypass => "bypassPermissions",
            SdkMode::Memory => "memory",
            SdkMode::Strict => "strict",
        }
    }
}

/// `--reflection-*` (sleep-time settings): accepted and echoed in `system/init`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reflection {
    pub trigger: Option<String>,
    pub behavior: Option<String>,
    pub step_count: Option<u64>,
}

/// Everything the SDK's flags ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineArgs {
    pub target: Target,
    /// `-m`: the agent's model, kept on the agent.
    pub model: Option<String>,
    /// `--include-partial-messages`: text and reasoning as `stream_event` deltas.
    pub partial: bool,
    pub system: Option<SystemChoice>,
    pub system_append: Option<String>,
    pub memory_blocks: Option<Vec<BlockSpec>>,
    /// `--init-blocks`: which default blocks to create (`Some(vec![])` = none).
    pub init_blocks: Option<Vec<String>>,
    /// `--block-value label=value`, in order.
    pub block_values: Vec<(String, String)>,
    pub mode: Option<SdkMode>,
    pub allowed_tools: Vec<String>,
    pub disallowed_tools: Vec<String>,
    pub reflection: Reflection,
    /// `--no-system-info-reminder` was given.
    pub no_system_info_reminder: bool,
    /// Flags accepted but without effect here, for one stderr note.
    pub ignored: Vec<String>,
    /// `--config PATH` (the SDK never passes it; `SWITCHBOARD_CONFIG` is its way).
    pub config: Option<std::path::PathBuf>,
}

/// Whether `args` (without the program name) are the SDK's: they name the stream-json format.
pub fn is_engine_invocation(args: &[String]) -> bool {
    args.windows(2).any(|w| (w[0] == "--output-format" || w[0] == "--input-format") && w[1] == "stream-json")
        && args.first().is_none_or(|a| a.starts_with('-'))
}

/// Parses the SDK's flags; `Err` is the one line to print before exiting.
pub fn parse(args: &[String]) -> Result<EngineArgs, String> {
    let mut it = args.iter();
    let mut output_format = None;
    let mut input_format = None;
    let mut agent = None;
    let mut conversation = None;
    let mut new = false;
    let mut new_agent = false;
    let mut parsed = EngineArgs {
        target: Target::New,
        model: None,
        partial: false,
        system: None,
        system_append: None,
        memory_blocks: None,
        init_blocks: None,
        block_values: Vec::new(),
        mode: None,
        allowed_tools: Vec::new(),
        disallowed_tools: Vec::new(),
        reflection: Reflection::default(),
        no_system_info_reminder: false,
        ignored: Vec::new(),
        config: None,
    };
    while let Some(flag) = it.next() {
        let mut value = || it.next().cloned().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--output-format" => output_format = Some(value()?),
            "--config" => parsed.config = Some(value()?.into()),
            "--input-format" => input_format = Some(value()?),
            "--agent" | "-a" => agent = Some(value()?),
            "--conversation" | "-C" => conversation = Some(value()?),
            "--new" => new = true,
            "--new-agent" => new_agent = true,
            "-m" | "--model" => parsed.model = Some(value()?),
            "--include-partial-messages" => parsed.partial = true,
            "--system" => {
                let name = value()?;
                if !SDK_PRESETS.contains(&name.as_str()) {
                    return Err(format!("unknown system prompt preset {name:?} (one of {})", SDK_PRESETS.join(", ")));
                }
                parsed.system = Some(SystemChoice::Preset(name));
            }
            "--system-custom" => parsed.system = Some(SystemChoice::Custom(value()?)),
            "--system-append" => parsed.system_append = Some(value()?),
            "--memory-blocks" => {
                let text = value()?;
                let blocks: Vec<BlockSpec> = serde_json::from_str(&text)
                    .map_err(|e| format!("--memory-blocks must be a JSON array of {{label, value}} objects ({e})"))?;
                parsed.memory_blocks = Some(blocks);
            }
            "--init-blocks" => parsed.init_blocks = Some(csv(&value()?)),
            "--block-value" => {
                let text = value()?;
                let (label, block) =
                    text.split_once('=').ok_or_else(|| format!("--block-value must be label=value, not {text:?}"))?;
                parsed.block_values.push((label.to_string(), block.to_string()));
            }
            "--yolo" => parsed.mode = Some(SdkMode::Bypass),
            "--permission-mode" => {
                let text = value()?;
                parsed.mode = Some(SdkMode::parse(&text).ok_or_else(|| {
                    format!("invalid permission mode {text:?} (valid modes: {})", SdkMode::NAMES.join(", "))
                })?);
            }
            "--allowedTools" | "--allowed-tools" => parsed.allowed_tools.extend(csv(&value()?)),
            "--disallowedTools" | "--disallowed-tools" => parsed.disallowed_tools.extend(csv(&value()?)),
            "--reflection-trigger" => parsed.reflection.trigger = Some(value()?),
            "--reflection-behavior" => parsed.reflection.behavior = Some(value()?),
            "--reflection-step-count" => {
                let text = value()?;
                let n = text.parse().map_err(|_| format!("--reflection-step-count must be a number, not {text:?}"))?;
                parsed.reflection.step_count = Some(n);
            }
            "--no-system-info-reminder" => parsed.no_system_info_reminder = true,
            // Accepted; switchboard has nothing they would change.
            "--embedding" | "--tags" | "--memfs-startup" | "--skill-sources" => {
                value()?;
                parsed.ignored.push(flag.clone());
            }
            "--memfs" | "--no-memfs" | "--no-skills" => parsed.ignored.push(flag.clone()),
            other => return Err(format!("unknown option {other} (switchboard speaks the Letta Code SDK's flags)")),
        }
    }
    for (name, format) in [("--output-format", &output_format), ("--input-format", &input_format)] {
        if format.as_deref() != Some("stream-json") {
            return Err(format!("{name} stream-json is required"));
        }
    }
    parsed.target = match (agent, conversation, new, new_agent) {
        (None, None, false, true) => Target::NewAgent,
        (_, _, true, true) => return Err("--new-agent cannot be combined with --new".into()),
        (Some(_), _, _, true) | (_, Some(_), _, true) => {
            return Err("--new-agent cannot be combined with --agent or --conversation".into())
        }
        (Some(_), Some(c), true, _) if c != "default" => {
            return Err("--new cannot be combined with --conversation".into())
        }
        (None, Some(c), true, _) if c != "default" => return Err("--new cannot be combined with --conversation".into()),
        (Some(agent), _, true, _) => Target::AgentNew(agent),
        (None, _, true, _) => Target::New,
        (Some(agent), None, false, _) => Target::AgentDefault(agent),
        (Some(agent), Some(c), false, _) if c == "default" => Target::AgentDefault(agent),
        (Some(agent), Some(c), false, _) => {
            return Err(format!("--agent {agent} with --conversation {c}: give only the conversation"))
        }
        (None, Some(c), false, _) if c == "default" => Target::DefaultAgentDefault,
        (None, Some(c), false, _) => Target::Conversation(c),
        (None, None, false, false) => Target::New,
    };
    Ok(parsed)
}

/// A comma-separated list; `""` is the empty list.
fn csv(text: &str) -> Vec<String> {
    text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        let mut all = vec!["--output-format", "stream-json", "--input-format", "stream-json"];
        all.extend_from_slice(list);
        all.into_iter().map(String::from).collect()
    }

    #[test]
    fn the_five_spawn_shapes_map_to_their_targets() {
        let target = |list: &[&str]| parse(&args(list)).unwrap().target;
        assert_eq!(target(&["--conversation", "conv-1"]), Target::Conversation("conv-1".into()));
        assert_eq!(
            target(&["--agent", "agent-1", "--conversation", "default"]),
            Target::AgentDefault("agent-1".into())
        );
        assert_eq!(target(&["--agent", "agent-1", "--new"]), Target::AgentNew("agent-1".into()));
        assert_eq!(target(&["--new-agent"]), Target::NewAgent);
        assert_eq!(target(&["--new"]), Target::New);
        assert_eq!(target(&["--conversation", "default"]), Target::DefaultAgentDefault);
    }

    #[test]
    fn values_may_be_empty_or_hold_spaces_equals_and_json() {
        let p = parse(&args(&[
            "--new-agent",
            "--init-blocks",
            "",
            "--block-value",
            "persona=I am = a helper, with spaces",
            "--block-value",
            "human=",
            "--memory-blocks",
            r#"[{"label":"project","value":"a=b","description":"x","limit":100},{"blockId":"block-1"}]"#,
            "--system-custom",
            "-be terse",
        ]))
        .unwrap();
        assert_eq!(p.init_blocks, Some(vec![]));
        assert_eq!(
            p.block_values,
            vec![("persona".into(), "I am = a helper, with spaces".into()), ("human".into(), String::new())]
        );
        let blocks = p.memory_blocks.unwrap();
        assert!(matches!(&blocks[0], BlockSpec::New { label, limit: Some(100), .. } if label == "project"));
        assert!(matches!(&blocks[1], BlockSpec::Existing { block_id } if block_id == "block-1"));
        assert_eq!(p.system, Some(SystemChoice::Custom("-be terse".into())));
    }

    #[test]
    fn permission_modes_of_both_the_sdk_and_the_seed_documents_are_accepted() {
        for (name, mode) in [
            ("default", SdkMode::Standard),
            ("standard", SdkMode::Standard),
            ("acceptEdits", SdkMode::AcceptEdits),
            ("plan", SdkMode::Plan),
            ("bypassPermissions", SdkMode::Bypass),
            ("unrestricted", SdkMode::Bypass),
            ("memory", SdkMode::Memory),
            ("strict", SdkMode::Strict),
        ] {
            assert_eq!(parse(&args(&["--new", "--permission-mode", name])).unwrap().mode, Some(mode), "{name}");
        }
        assert_eq!(parse(&args(&["--new", "--yolo"])).unwrap().mode, Some(SdkMode::Bypass));
        let e = parse(&args(&["--new", "--permission-mode", "everything"])).unwrap_err();
        assert!(e.contains("invalid permission mode") && e.contains("acceptEdits"), "{e}");
    }

    #[test]
    fn tool_lists_ignored_flags_and_unknown_flags() {
        let p = parse(&args(&[
            "--new",
            "--allowedTools",
            "Bash,Read",
            "--disallowedTools",
            "",
            "--memfs-startup",
            "skip",
            "--no-skills",
            "--no-system-info-reminder",
            "--reflection-trigger",
            "step-count",
            "--reflection-step-count",
            "25",
        ]))
        .unwrap();
        assert_eq!(p.allowed_tools, vec!["Bash", "Read"]);
        assert!(p.disallowed_tools.is_empty());
        assert_eq!(p.ignored, vec!["--memfs-startup", "--no-skills"]);
        assert_eq!(p.reflection.step_count, Some(25));
        let e = parse(&args(&["--new", "--frobnicate"])).unwrap_err();
        assert!(e.contains("--frobnicate"), "{e}");
        assert!(parse(&args(&["--new", "-m"])).unwrap_err().contains("needs a value"));
        assert!(parse(&["--output-format".to_string(), "text".to_string()]).is_err());
    }

    #[test]
    fn only_the_stream_json_formats_before_any_subcommand_are_engine_invocations() {
        assert!(is_engine_invocation(&args(&["--new"])));
        let prompt: Vec<String> =
            ["prompt", "--output-format", "stream-json", "hi"].into_iter().map(String::from).collect();
        assert!(!is_engine_invocation(&prompt));
        assert!(!is_engine_invocation(&["serve".to_string()]));
    }
}
