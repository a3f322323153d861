//! A set of writes to the generic key spaces that the store applies together.

/// One write of a [`KvBatch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvOp {
    Put { space: String, key: String, value: Vec<u8> },
    Remove { space: String, key: String },
}

impl KvOp {
    /// The key space this write goes to.
    pub fn space(&self) -> &str {
        match self {
            KvOp::Put { space, .. } | KvOp::Remove { space, .. } => space,
        }
    }
}

/// Writes applied in order, all or none, and made durable together
/// ([`crate::store::Store::kv_write`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KvBatch {
    ops: Vec<KvOp>,
}

impl KvBatch {
    pub fn new() -> KvBatch {
        KvBatch::default()
    }

    /// Sets `key` in `space` to `value`.
    pub fn put(&mut self, space: &str, key: &str, value: impl Into<Vec<u8>>) -> &mut KvBatch {
        self.ops.push(KvOp::Put { space: space.into(), key: key.into(), value: value.into() });
        self
    }

    /// Removes `key` from `space` (nothing if it is absent).
    pub fn remove(&mut self, space: &str, key: &str) -> &mut KvBatch {
        self.ops.push(KvOp::Remove { space: space.into(), key: key.into() });
        self
    }

    /// The writes, in the order they apply.
    pub fn ops(&self) -> &[KvOp] {
        &self.ops
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The distinct key spaces written, in first-use order.
    pub fn spaces(&self) -> Vec<&str> {
        let mut spaces: Vec<&str> = Vec::new();
        for op in &self.ops {
            if !spaces.contains(&op.space()) {
                spaces.push(op.space());
            }
        }
        spaces
    }
}
