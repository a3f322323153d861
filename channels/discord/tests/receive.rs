//! The adapter against the fake Discord with a sink that can refuse deliveries
//! (a journal that is down): what is handed over once the adapter stops.

use std::sync::Arc;
use std::time::{Duration, Instant};

use switchboard_channel_core::{Channel, InboundKind};
use switchboard_channel_discord::{DiscordChannel, DiscordConfig};
use switchboard_fakes::{FakeDiscord, RecordingSink};

const USER: &str = "700000000000000001";
const WAIT: Duration = Duration::from_secs(10);

/// Waits until `done` holds, failing with `what` after [`WAIT`].
async fn wait(what: &str, done: impl Fn() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < WAIT, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The texts of the messages the sink took.
fn journaled(sink: &RecordingSink) -> Vec<String> {
    let message = |kind: InboundKind| match kind {
        InboundKind::Message(m) => Some(m.text),
        _ => None,
    };
    sink.events().into_iter().filter_map(|e| message(e.kind)).collect()
}

/// A message the adapter gave up handing over at a stop (the journal would not
/// take it) must not be followed by a later message of its channel being
/// journaled: the next start's catch-up fetches after the newest journaled
/// message of a channel, and would never fetch the one given up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_of_a_channel_is_journaled_after_a_message_given_up_at_a_stop() {
    let discord = FakeDiscord::start().await;
    let mut config = DiscordConfig::new(discord.token());
    config.api_url = discord.api_url();
    let channel = Arc::new(DiscordChannel::new(config).expect("a valid configuration"));
    let sink = RecordingSink::new();
    channel.start(sink.clone()).await.expect("started");
    wait("the gateway session", || discord.sessions().1 >= 1).await;

    // The journal refuses: the first message is handed over again and again,
    // the second waits behind it (same channel).
    sink.refuse_next(usize::MAX);
    discord.dm(USER, "first");
    discord.dm(USER, "second");
    wait("the first message tried twice", || sink.attempts() >= 2).await;

    let stopping = {
        let channel = channel.clone();
        tokio::spawn(async move { channel.stop().await })
    };
    // Stopping has begun; from now on the journal would take anything.
    tokio::time::sleep(Duration::from_millis(50)).await;
    sink.refuse_next(0);
    stopping.await.expect("stopped");
    // The hand-overs run on tasks of their own: give them time to act.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let texts = journaled(&sink);
    assert!(!texts.iter().any(|t| t == "second"), "journaled after the stop, behind a message given up: {texts:?}");
}
