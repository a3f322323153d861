//! A transcript read newest first, a page at a time, so that what needs only the
//! recent end reads only that.

use std::collections::VecDeque;

use super::records::{decode, rows};
use super::PgStore;
use crate::store::{Entry, StoreResult};

/// Entries fetched per query.
const PAGE: i64 = 64;

pub struct NewestFirst<'a> {
    store: &'a PgStore,
    conversation_id: String,
    /// Entries older than this sequence number are still to be read.
    before: Option<i64>,
    page: VecDeque<(u64, Entry)>,
    exhausted: bool,
}

impl<'a> NewestFirst<'a> {
    pub fn new(store: &'a PgStore, conversation_id: &str) -> NewestFirst<'a> {
        NewestFirst {
            store,
            conversation_id: conversation_id.to_string(),
            before: None,
            page: VecDeque::new(),
            exhausted: false,
        }
    }

    fn fetch(&mut self) -> StoreResult<()> {
        let (conversation_id, before) = (self.conversation_id.clone(), self.before);
        let rows = self.store.run(move |client| async move {
            rows(
                &client,
                "SELECT seq, body FROM entries WHERE conversation_id = $1 AND ($2::bigint IS NULL OR seq < $2)
                     ORDER BY seq DESC LIMIT $3",
                &[&conversation_id, &before, &PAGE],
            )
            .await
        })?;
        self.exhausted = (rows.len() as i64) < PAGE;
        for row in &rows {
            let seq: i64 = row.get(0);
            self.before = Some(seq);
            self.page.push_back((seq as u64, decode("transcript entry", row.get::<_, &[u8]>(1))?));
        }
        Ok(())
    }
}

impl Iterator for NewestFirst<'_> {
    type Item = StoreResult<(u64, Entry)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.page.is_empty() && !self.exhausted {
            if let Err(e) = self.fetch() {
                self.exhausted = true;
                return Some(Err(e));
            }
        }
        self.page.pop_front().map(Ok)
    }
}
