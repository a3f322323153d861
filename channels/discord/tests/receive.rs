//! The adapter against the fake Discord with sinks that refuse or hold
//! deliveries (a journal that is down, or a write still under way): what is
//! handed over once the adapter stops, and a channel's deletion kept in line
//! with its earlier messages.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use switchboard_channel_core::{Channel, ChatKey, DeliverError, InboundEvent, InboundKind, InboundSink};
use switchboard_channel_discord::{DiscordChannel, DiscordConfig};
use switchboard_fakes::{FakeDiscord, RecordingSink};

const USER: &str = "700000000000000001";
const WAIT: Duration = Duration::from_secs(10);

/// The adapter against `discord`, started with `sink`, once its session is ready.
async fn started(discord: &FakeDiscord, sink: Arc<dyn InboundSink>) -> Arc<DiscordChannel> {
    let mut config = DiscordConfig::new(discord.token());
    config.api_url = discord.api_url();
    let channel = Arc::new(DiscordChannel::new(config).expect("a valid configuration"));
    channel.start(sink).await.expect("started");
    discord.wait_until("the gateway session", WAIT, |d| d.sessions().1 >= 1).await;
    channel
}

/// A journal that can never take the message [`REFUSED`] and takes the rest.
#[derive(Default)]
struct RefusingOne {
    refusals: AtomicUsize,
    took: Mutex<Vec<String>>,
}

const REFUSED: &str = "first";

#[async_trait::async_trait]
impl InboundSink for RefusingOne {
    async fn deliver(&self, event: InboundEvent) -> Result<(), DeliverError> {
        let InboundKind::Message(message) = event.kind else { return Ok(()) };
        if message.text == REFUSED {
            self.refusals.fetch_add(1, Ordering::SeqCst);
            return Err(DeliverError("the journal is down for this one (test)".into()));
        }
        self.took.lock().unwrap().push(message.text);
        Ok(())
    }
}

/// A message the adapter gave up handing over at a stop (the journal would not
/// take it) must not be followed by a later message of its channel being
/// journaled: the next start's catch-up fetches after the newest journaled
/// message of a channel, and would never fetch the one given up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_of_a_channel_is_journaled_after_a_message_given_up_at_a_stop() {
    let discord = FakeDiscord::start().await;
    let sink = Arc::new(RefusingOne::default());
    let channel = started(&discord, sink.clone()).await;

    // The first message is handed over again and again; the second, which the
    // journal would take, waits behind it (same channel).
    discord.dm(USER, REFUSED);
    discord.dm(USER, "second");
    discord.wait_until("the first message tried twice", WAIT, |_| sink.refusals.load(Ordering::SeqCst) >= 2).await;
    channel.stop().await;
    // The hand-overs run on tasks of their own: give them time to act.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let took = sink.took.lock().unwrap().clone();
    assert!(took.is_empty(), "journaled after the stop, behind a message given up: {took:?}");
}

/// A thread's messages are chats under its parent channel (whose settings
/// apply to them). A message already received when the thread is deleted is
/// still that: the deletion waits for the thread's earlier messages, instead
/// of being forgotten first and leaving the message to be looked up, and
/// taken for a channel of its own, when the lookup finds nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thread_deleted_behind_its_messages_leaves_them_under_their_channel() {
    const GUILD: &str = "800000000000000001";
    const PARENT: &str = "800000000000000002";
    const THREAD: &str = "800000000000000003";
    let discord = FakeDiscord::start().await;
    let sink = RecordingSink::new();
    let channel = started(&discord, sink.clone()).await;
    discord.add_guild(GUILD, &[PARENT]);
    discord.add_thread(PARENT, THREAD);

    // The first message's journal write is under way; the second waits behind it.
    sink.hold();
    discord.say(THREAD, USER, "before the deletion", true);
    discord.say(THREAD, USER, "also before it", true);
    discord.wait_until("the first message's hand-over under way", WAIT, |_| sink.held() == 1).await;
    discord.delete_channel(THREAD);
    // The deletion reaches the adapter while the first message is held.
    tokio::time::sleep(Duration::from_millis(300)).await;
    sink.release();

    let events = sink.wait_for(2).await;
    let under_parent = ChatKey {
        channel: "discord".into(),
        account: switchboard_fakes::discord::BOT_ID.into(),
        chat: PARENT.into(),
        thread: Some(THREAD.into()),
    };
    for event in events {
        let InboundKind::Message(message) = event.kind else { panic!("not a message: {:?}", event.kind) };
        assert_eq!(message.chat, under_parent, "{:?} taken out of its channel", message.text);
    }
    channel.stop().await;
}
