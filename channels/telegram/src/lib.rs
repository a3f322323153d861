//! The Telegram adapter (teloxide). Empty until the Telegram issue.
