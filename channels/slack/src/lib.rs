//! The Slack adapter (slack-morphism). Empty until the Slack issue.
