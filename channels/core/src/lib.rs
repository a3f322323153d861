//! Channel-neutral pieces shared by the adapters: the `Channel` trait, `ChatKey`,
//! inbound/outbound messages, approval prompts and Markdown rendering. Filled in by the
//! Telegram/gateway issue; empty until then.
