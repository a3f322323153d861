//! The Discord adapter (serenity). Empty until the Discord issue.
