//! The writer side of partial views: which keys a partial parameterized view holds,
//! filling the ones its readers ask for and letting the idle ones go.
//!
//! A partial view's plan joins its query with an internal table of requested keys
//! (named with [`crate::journal::INTERNAL_PREFIX`], so never journaled): holding a key
//! means that table has a row for it. A read of keys the view lacks inserts them there
//! in a transaction of its own — the dataflow computes their rows and publishes them
//! before the read goes on — and the same transaction deletes the keys the view's
//! limits let go. Read-only [`crate::view::View`] handles reach this only through the
//! [`KeyRequests`] seam.

use std::sync::Weak;
use std::time::Instant;

use hashbrown::{HashMap, HashSet};
use parking_lot::Mutex;

use crate::change::Change;
use crate::database::{Database, Shared};
use crate::error::{Error, Result, SqlError, SqlErrorKind};
use crate::plan::TableId;
use crate::row::Row;
use crate::view::{KeyRequests, PartialLimits, ViewId, ViewState};

/// The keys one partial view holds, and how to fill more.
#[derive(Debug)]
pub(crate) struct PartialKeys {
    /// The database (weak: the database holds the view, which holds this).
    db: Weak<Shared>,
    view: ViewId,
    /// The table of requested keys.
    table: TableId,
    /// About how many bytes one of the view's rows takes (for `max_bytes`).
    row_bytes: usize,
    held: Mutex<Held>,
}

/// The keys held, when each was last read, and the limits.
#[derive(Debug)]
struct Held {
    last_read: HashMap<Row, Instant>,
    limits: PartialLimits,
}

impl PartialKeys {
    pub fn new(db: Weak<Shared>, view: ViewId, table: TableId, columns: usize, limits: PartialLimits) -> PartialKeys {
        PartialKeys {
            db,
            view,
            table,
            row_bytes: 32 + 9 * columns,
            held: Mutex::new(Held { last_read: HashMap::new(), limits }),
        }
    }

    fn database(&self) -> Result<Database> {
        self.db.upgrade().map(Database::from_shared).ok_or_else(|| {
            Error::Sql(SqlError::new(
                SqlErrorKind::Catalog,
                "the engine of this partial view was dropped: keys it does not hold cannot be filled",
            ))
        })
    }
}

impl KeyRequests for PartialKeys {
    fn request(&self, keys: &[Row]) -> Result<()> {
        let mut held = self.held.lock();
        let now = Instant::now();
        let keys: Vec<&Row> = keys.iter().filter(|k| !k.iter().any(|v| v.is_null())).collect();
        let db = match self.database() {
            Ok(db) => db,
            // Without its engine the view still reads the keys it holds.
            Err(_) if keys.iter().all(|k| held.last_read.contains_key(*k)) => return Ok(()),
            Err(e) => return Err(e),
        };
        let asked: HashSet<&Row> = keys.iter().copied().collect();
        let new: Vec<Row> = keys.iter().filter(|k| !held.last_read.contains_key(**k)).map(|k| (*k).clone()).collect();
        for k in &keys {
            held.last_read.insert((*k).clone(), now);
        }
        let limits = held.limits;
        let mut victims: HashSet<Row> = HashSet::new();
        if let Some(idle) = limits.idle {
            victims.extend(
                held.last_read
                    .iter()
                    .filter(|(k, t)| now.duration_since(**t) > idle && !asked.contains(k))
                    .map(|(k, _)| k.clone()),
            );
        }
        let mut keep = limits.max_keys.unwrap_or(usize::MAX);
        if let Some(bytes) = limits.max_bytes {
            let count = held.last_read.len().max(1);
            let rows = db.shared.published.read().view(self.view).map_or(0, ViewState::len) + new.len();
            let per_key = (rows * self.row_bytes / count).max(1);
            keep = keep.min(bytes / per_key).max(keys.len());
        }
        if held.last_read.len() - victims.len() > keep {
            let mut by_age: Vec<(&Row, &Instant)> =
                held.last_read.iter().filter(|(k, _)| !victims.contains(*k) && !asked.contains(k)).collect();
            by_age.sort_by_key(|(_, t)| **t);
            let extra = held.last_read.len() - victims.len() - keep;
            let oldest: Vec<Row> = by_age.into_iter().take(extra).map(|(k, _)| k.clone()).collect();
            victims.extend(oldest);
        }
        for v in &victims {
            held.last_read.remove(v);
        }
        if new.is_empty() && victims.is_empty() {
            return Ok(());
        }
        let mut changes: Vec<Change> = new.iter().map(|k| Change::insert(self.table, k.to_vec())).collect();
        changes.extend(victims.iter().map(|k| Change::delete(self.table, k.to_vec())));
        let applied = db.apply(changes);
        if applied.is_err() {
            // Nothing changed: the bookkeeping goes back to what the table holds.
            for k in &new {
                held.last_read.remove(k);
            }
            for k in victims {
                held.last_read.insert(k, now);
            }
        }
        applied
    }

    fn held(&self) -> usize {
        self.held.lock().last_read.len()
    }

    fn keys_table(&self) -> Option<String> {
        self.database().ok()?.table_name(self.table).ok()
    }
}
