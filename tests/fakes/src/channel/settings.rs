//! The `[fake]` settings section: the common block plus `instance`, the name a
//! test registered its `FakeChannel` under, so the daemon's own configuration
//! loader and start-up path can run it beside real channels.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use switchboard_channel_core::settings::{read_common, IdRule};
use switchboard_channel_core::{
    Channel, ChannelDescriptor, ChannelError, ChannelSettings, CommandSpec, CommonSettings, SettingKey, SettingsReader,
};

use super::FakeChannel;

/// The fake channel as a test registers it with the configuration loader.
pub const DESCRIPTOR: ChannelDescriptor =
    ChannelDescriptor { name: "fake", keys: KEYS, read, enable_hint: "register a FakeChannel and set fake.instance" };

const KEYS: &[SettingKey] = &[SettingKey::value("instance")];

/// Any id without spaces or a colon.
const IDS: IdRule = IdRule { valid: |id| !id.is_empty() && !id.contains([' ', ':']), described: "a fake id" };

fn instances() -> &'static Mutex<HashMap<String, FakeChannel>> {
    static INSTANCES: OnceLock<Mutex<HashMap<String, FakeChannel>>> = OnceLock::new();
    INSTANCES.get_or_init(Mutex::default)
}

impl FakeChannel {
    /// Makes this channel what a `[fake]` section with `instance = <returned id>`
    /// builds. The channel must be named `fake`.
    pub fn register(&self) -> String {
        assert_eq!(self.inner.name, "fake", "the [fake] section builds a channel named fake");
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let id = format!("i{}", NEXT.fetch_add(1, Ordering::Relaxed));
        instances().lock().unwrap_or_else(|p| p.into_inner()).insert(id.clone(), self.clone());
        id
    }
}

#[derive(Debug)]
struct FakeSettings {
    common: CommonSettings,
    instance: Option<String>,
}

fn read(reader: &mut dyn SettingsReader) -> Arc<dyn ChannelSettings> {
    let common = read_common(reader, IDS);
    let instance = reader.text("instance").filter(|i| !i.is_empty());
    Arc::new(FakeSettings { common, instance })
}

impl ChannelSettings for FakeSettings {
    fn common(&self) -> &CommonSettings {
        &self.common
    }

    fn enabled(&self) -> bool {
        self.instance.is_some()
    }

    fn build(&self, _commands: &'static [CommandSpec]) -> Result<Arc<dyn Channel>, ChannelError> {
        let id = self.instance.as_deref().unwrap_or_default();
        let found = instances().lock().unwrap_or_else(|p| p.into_inner()).get(id).cloned();
        match found {
            Some(channel) => Ok(Arc::new(channel)),
            None => Err(ChannelError::Rejected(format!("no fake channel registered as {id:?}"))),
        }
    }

    fn secrets(&self) -> Vec<String> {
        Vec::new()
    }

    fn describe(&self) -> Vec<(&'static str, String)> {
        vec![("instance", self.instance.clone().unwrap_or_else(|| "not set".into()))]
    }
}
