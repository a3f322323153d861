//! Socket Mode against the fake Slack with a sink that can hold a delivery as a
//! journal write still under way: a connection ended on purpose still
//! acknowledges what was being journaled.

use std::sync::Arc;
use std::time::Duration;

use switchboard_channel_core::Channel;
use switchboard_channel_slack::{SlackChannel, SlackConfig};
use switchboard_fakes::slack::{APP_TOKEN, BOT_TOKEN};
use switchboard_fakes::{FakeSlack, RecordingSink};

const GENERAL: &str = "C0000GENERAL";
const USER: &str = "U0000USER1";
const WAIT: Duration = Duration::from_secs(10);

/// The adapter in Socket Mode against `slack`, started with a new sink.
async fn started(slack: &FakeSlack) -> (SlackChannel, Arc<RecordingSink>) {
    let mut config = SlackConfig::new(BOT_TOKEN, APP_TOKEN);
    config.api_url = slack.api_url();
    let channel = SlackChannel::new(config).expect("a valid configuration");
    let sink = RecordingSink::new();
    channel.start(sink.clone()).await.expect("started");
    (channel, sink)
}

/// The adapter connected, with a slash command (`ask <text>`) whose journal
/// write is under way (held in the sink); its envelope id.
async fn command_being_journaled(slack: &FakeSlack, text: &str) -> (SlackChannel, Arc<RecordingSink>, String) {
    slack.add_channel(GENERAL);
    let (channel, sink) = started(slack).await;
    slack.wait_until("the first connection", WAIT, |s| s.connections() == 1).await;
    sink.hold();
    let command = slack.slash(GENERAL, USER, "/switchboard", &format!("ask {text}"));
    slack.wait_until("the command's hand-over under way", WAIT, |_| sink.held() == 1).await;
    (channel, sink, command)
}

/// Whether the envelope `id` was acknowledged.
fn acknowledged(slack: &FakeSlack, id: &str) -> bool {
    slack.envelopes().iter().any(|e| e.id == id && e.acked_after.is_some())
}

/// A slash command is never delivered again, so one whose journal write is
/// under way when Slack asks for a new connection must still be acknowledged,
/// on the old connection, once journaled (else its person sees an error for a
/// command that runs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_being_journaled_at_a_refresh_is_acknowledged_on_the_old_connection() {
    let slack = FakeSlack::start().await;
    let (channel, sink, command) = command_being_journaled(&slack, "are you there?").await;
    slack.request_reconnect("refresh_requested");
    // The adapter has read the `disconnect` (the fake sends nothing after it)
    // while the command is still being journaled; then the journal write ends.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!acknowledged(&slack, &command), "acknowledged before it was journaled");
    sink.release();

    slack.wait_until("the command acknowledged", WAIT, |s| acknowledged(s, &command)).await;
    let envelope = slack.envelopes().into_iter().find(|e| e.id == command).expect("the command's envelope");
    assert_eq!(envelope.connection, Some(1), "sent once, on the first connection");
    assert_eq!(sink.events().len(), 1, "journaled once");
    slack.wait_until("a new connection", WAIT, |s| s.connections() == 2).await;
    channel.stop().await;
}

/// The same when the daemon stops: what is being journaled is acknowledged
/// before the socket closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_being_journaled_at_a_stop_is_acknowledged_before_the_socket_closes() {
    let slack = FakeSlack::start().await;
    let (channel, sink, command) = command_being_journaled(&slack, "one more thing").await;
    let releasing = {
        let sink = sink.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            sink.release();
        })
    };
    channel.stop().await;
    releasing.await.expect("released");
    // The fake reads the frames the adapter sent before it closed in its own time.
    slack.wait_until("the command acknowledged", WAIT, |s| acknowledged(s, &command)).await;
    assert_eq!(sink.events().len(), 1, "journaled once");
    assert_eq!(slack.connections(), 1, "no new connection after a stop");
}
