//! The pgoutput logical decoding protocol (protocol version 1), decoded from the bytes
//! of each XLogData message, as PostgreSQL's documentation ("Logical Replication Message
//! Formats") describes them.
//!
//! Only decoding lives here; what the messages mean for the engine (relations to
//! tables, tuples to rows, transactions to atomic applies) is `stream.rs`'s job.

use bytes::{Buf, Bytes};

/// A decoding failure: the stream is not pgoutput as this decoder knows it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed pgoutput message: {0}")]
pub struct DecodeError(pub String);

type Result<T> = std::result::Result<T, DecodeError>;

/// One pgoutput message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// A transaction starts; its changes follow, up to its Commit.
    Begin {
        /// The LSN of the transaction's commit record.
        final_lsn: u64,
        /// Commit time, microseconds since 2000-01-01.
        timestamp: i64,
        /// Transaction id.
        xid: u32,
    },
    /// The transaction ends.
    Commit {
        /// The LSN of the commit record.
        commit_lsn: u64,
        /// The LSN just past the commit record: where a restart resumes.
        end_lsn: u64,
        /// Commit time, microseconds since 2000-01-01.
        timestamp: i64,
    },
    /// The transaction came from another node (replication origin).
    Origin {
        /// The commit LSN on the origin.
        lsn: u64,
        /// The origin's name.
        name: String,
    },
    /// A table's description, sent before its first change and after it changes.
    Relation(Relation),
    /// A user-defined type's name.
    Type {
        /// Type oid.
        oid: u32,
        /// Schema.
        namespace: String,
        /// Name.
        name: String,
    },
    /// A row was inserted.
    Insert {
        /// The relation's oid.
        relation: u32,
        /// The new row.
        new: Tuple,
    },
    /// A row was updated. `old` is the key ('K', REPLICA IDENTITY DEFAULT or INDEX, sent
    /// only when the key changed) or the whole old row ('O', REPLICA IDENTITY FULL).
    Update {
        /// The relation's oid.
        relation: u32,
        /// The old key or row, when sent.
        old: Option<OldTuple>,
        /// The new row.
        new: Tuple,
    },
    /// A row was deleted; `old` is its key or whole row, as for updates.
    Delete {
        /// The relation's oid.
        relation: u32,
        /// The key or the whole old row.
        old: OldTuple,
    },
    /// Tables were truncated.
    Truncate {
        /// The relations' oids.
        relations: Vec<u32>,
        /// CASCADE (1) and RESTART IDENTITY (2) bits.
        options: u8,
    },
    /// A logical decoding message (`pg_logical_emit_message`).
    LogicalMessage {
        /// Whether it was transactional.
        transactional: bool,
        /// Its LSN.
        lsn: u64,
        /// Its prefix.
        prefix: String,
        /// Its content.
        content: Bytes,
    },
}

/// A relation as pgoutput describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Relation {
    /// Oid.
    pub oid: u32,
    /// Schema.
    pub namespace: String,
    /// Table name.
    pub name: String,
    /// REPLICA IDENTITY: 'd' default, 'n' nothing, 'f' full, 'i' index.
    pub replica_identity: u8,
    /// Columns in table order.
    pub columns: Vec<RelationColumn>,
}

/// A column of a [`Relation`].
#[derive(Debug, Clone, PartialEq)]
pub struct RelationColumn {
    /// Whether the column is part of the replica identity key.
    pub key: bool,
    /// Name.
    pub name: String,
    /// Type oid.
    pub type_oid: u32,
    /// Type modifier.
    pub type_modifier: i32,
}

/// An old tuple of an update or delete.
#[derive(Debug, Clone, PartialEq)]
pub enum OldTuple {
    /// Only the key columns carry values; the others are marked null but are not NULL.
    Key(Tuple),
    /// The whole old row.
    Full(Tuple),
}

/// The values of a row, one per column.
pub type Tuple = Vec<Datum>;

/// One column's value in a tuple.
#[derive(Debug, Clone, PartialEq)]
pub enum Datum {
    /// NULL (or, in a key-only old tuple, a column that is not part of the key).
    Null,
    /// A TOASTed value that did not change and is not sent.
    UnchangedToast,
    /// The value in text form.
    Text(Bytes),
    /// The value in binary form (only when binary output was requested).
    Binary(Bytes),
}

struct Reader(Bytes);

impl Reader {
    fn need(&self, n: usize, what: &str) -> Result<()> {
        if self.0.remaining() < n {
            return Err(DecodeError(format!("{what}: {n} bytes needed, {} left", self.0.remaining())));
        }
        Ok(())
    }
    fn u8(&mut self, what: &str) -> Result<u8> {
        self.need(1, what)?;
        Ok(self.0.get_u8())
    }
    fn u16(&mut self, what: &str) -> Result<u16> {
        self.need(2, what)?;
        Ok(self.0.get_u16())
    }
    fn u32(&mut self, what: &str) -> Result<u32> {
        self.need(4, what)?;
        Ok(self.0.get_u32())
    }
    fn i32(&mut self, what: &str) -> Result<i32> {
        self.need(4, what)?;
        Ok(self.0.get_i32())
    }
    fn u64(&mut self, what: &str) -> Result<u64> {
        self.need(8, what)?;
        Ok(self.0.get_u64())
    }
    fn i64(&mut self, what: &str) -> Result<i64> {
        self.need(8, what)?;
        Ok(self.0.get_i64())
    }
    fn bytes(&mut self, n: usize, what: &str) -> Result<Bytes> {
        self.need(n, what)?;
        Ok(self.0.split_to(n))
    }
    fn cstr(&mut self, what: &str) -> Result<String> {
        let end =
            self.0.iter().position(|&b| b == 0).ok_or_else(|| DecodeError(format!("{what}: no terminating NUL")))?;
        let s =
            String::from_utf8(self.0.split_to(end).to_vec()).map_err(|_| DecodeError(format!("{what}: not UTF-8")))?;
        self.0.advance(1);
        Ok(s)
    }
    fn tuple(&mut self) -> Result<Tuple> {
        let n = self.u16("tuple column count")?;
        (0..n)
            .map(|_| match self.u8("tuple column kind")? {
                b'n' => Ok(Datum::Null),
                b'u' => Ok(Datum::UnchangedToast),
                b't' => {
                    let len = self.u32("text length")? as usize;
                    self.bytes(len, "text value").map(Datum::Text)
                }
                b'b' => {
                    let len = self.u32("binary length")? as usize;
                    self.bytes(len, "binary value").map(Datum::Binary)
                }
                k => Err(DecodeError(format!("unknown tuple column kind {:?}", k as char))),
            })
            .collect()
    }
    fn old_tuple(&mut self, kind: u8) -> Result<OldTuple> {
        match kind {
            b'K' => Ok(OldTuple::Key(self.tuple()?)),
            b'O' => Ok(OldTuple::Full(self.tuple()?)),
            k => Err(DecodeError(format!("unknown old tuple kind {:?}", k as char))),
        }
    }
}

/// Decodes one pgoutput message.
pub fn decode(data: Bytes) -> Result<Message> {
    let mut r = Reader(data);
    let tag = r.u8("message tag")?;
    Ok(match tag {
        b'B' => Message::Begin { final_lsn: r.u64("Begin")?, timestamp: r.i64("Begin")?, xid: r.u32("Begin")? },
        b'C' => {
            let _flags = r.u8("Commit flags")?;
            Message::Commit { commit_lsn: r.u64("Commit")?, end_lsn: r.u64("Commit")?, timestamp: r.i64("Commit")? }
        }
        b'O' => Message::Origin { lsn: r.u64("Origin")?, name: r.cstr("Origin name")? },
        b'R' => {
            let oid = r.u32("Relation oid")?;
            let namespace = r.cstr("Relation namespace")?;
            let name = r.cstr("Relation name")?;
            let replica_identity = r.u8("Relation replica identity")?;
            let n = r.u16("Relation column count")?;
            let columns = (0..n)
                .map(|_| {
                    Ok(RelationColumn {
                        key: r.u8("column flags")? & 1 == 1,
                        name: r.cstr("column name")?,
                        type_oid: r.u32("column type")?,
                        type_modifier: r.i32("column type modifier")?,
                    })
                })
                .collect::<Result<_>>()?;
            Message::Relation(Relation { oid, namespace, name, replica_identity, columns })
        }
        b'Y' => {
            Message::Type { oid: r.u32("Type oid")?, namespace: r.cstr("Type namespace")?, name: r.cstr("Type name")? }
        }
        b'I' => {
            let relation = r.u32("Insert relation")?;
            match r.u8("Insert marker")? {
                b'N' => Message::Insert { relation, new: r.tuple()? },
                k => return Err(DecodeError(format!("Insert: expected 'N', got {:?}", k as char))),
            }
        }
        b'U' => {
            let relation = r.u32("Update relation")?;
            let mut kind = r.u8("Update marker")?;
            let old = if kind == b'K' || kind == b'O' {
                let old = r.old_tuple(kind)?;
                kind = r.u8("Update new marker")?;
                Some(old)
            } else {
                None
            };
            if kind != b'N' {
                return Err(DecodeError(format!("Update: expected 'N', got {:?}", kind as char)));
            }
            Message::Update { relation, old, new: r.tuple()? }
        }
        b'D' => {
            let relation = r.u32("Delete relation")?;
            let kind = r.u8("Delete marker")?;
            Message::Delete { relation, old: r.old_tuple(kind)? }
        }
        b'T' => {
            let n = r.u32("Truncate count")?;
            let options = r.u8("Truncate options")?;
            let relations = (0..n).map(|_| r.u32("Truncate relation")).collect::<Result<_>>()?;
            Message::Truncate { relations, options }
        }
        b'M' => {
            let transactional = r.u8("Message flags")? & 1 == 1;
            let lsn = r.u64("Message lsn")?;
            let prefix = r.cstr("Message prefix")?;
            let len = r.u32("Message length")? as usize;
            Message::LogicalMessage { transactional, lsn, prefix, content: r.bytes(len, "Message content")? }
        }
        t => return Err(DecodeError(format!("unknown message tag {:?}", t as char))),
    })
}

#[cfg(test)]
mod tests {
    use bytes::{BufMut, BytesMut};

    use super::*;

    fn tuple(buf: &mut BytesMut, values: &[Option<&str>]) {
        buf.put_u16(values.len() as u16);
        for v in values {
            match v {
                None => buf.put_u8(b'n'),
                Some("<toast>") => buf.put_u8(b'u'),
                Some(s) => {
                    buf.put_u8(b't');
                    buf.put_u32(s.len() as u32);
                    buf.put_slice(s.as_bytes());
                }
            }
        }
    }

    #[test]
    fn begin_commit_and_relation() {
        let mut b = BytesMut::new();
        b.put_u8(b'B');
        b.put_u64(0x10);
        b.put_i64(5);
        b.put_u32(77);
        assert_eq!(decode(b.freeze()).unwrap(), Message::Begin { final_lsn: 0x10, timestamp: 5, xid: 77 });

        let mut b = BytesMut::new();
        b.put_u8(b'C');
        b.put_u8(0);
        b.put_u64(0x10);
        b.put_u64(0x18);
        b.put_i64(5);
        assert_eq!(decode(b.freeze()).unwrap(), Message::Commit { commit_lsn: 0x10, end_lsn: 0x18, timestamp: 5 });

        let mut b = BytesMut::new();
        b.put_u8(b'R');
        b.put_u32(16384);
        b.put_slice(b"public\0orders\0");
        b.put_u8(b'd');
        b.put_u16(2);
        b.put_u8(1);
        b.put_slice(b"id\0");
        b.put_u32(20);
        b.put_i32(-1);
        b.put_u8(0);
        b.put_slice(b"amount\0");
        b.put_u32(1700);
        b.put_i32((10 << 16 | 2) + 4);
        let Message::Relation(r) = decode(b.freeze()).unwrap() else { panic!() };
        assert_eq!((r.oid, r.name.as_str(), r.replica_identity), (16384, "orders", b'd'));
        assert!(r.columns[0].key && !r.columns[1].key);
        assert_eq!(r.columns[1].type_modifier, (10 << 16 | 2) + 4);
    }

    #[test]
    fn updates_with_and_without_old_tuples_and_toast() {
        let mut b = BytesMut::new();
        b.put_u8(b'U');
        b.put_u32(1);
        b.put_u8(b'N');
        tuple(&mut b, &[Some("1"), Some("<toast>"), None]);
        assert_eq!(
            decode(b.freeze()).unwrap(),
            Message::Update {
                relation: 1,
                old: None,
                new: vec![Datum::Text(Bytes::from("1")), Datum::UnchangedToast, Datum::Null]
            }
        );
        let mut b = BytesMut::new();
        b.put_u8(b'U');
        b.put_u32(1);
        b.put_u8(b'K');
        tuple(&mut b, &[Some("1"), None]);
        b.put_u8(b'N');
        tuple(&mut b, &[Some("2"), Some("x")]);
        let Message::Update { old: Some(OldTuple::Key(k)), new, .. } = decode(b.freeze()).unwrap() else { panic!() };
        assert_eq!(k[0], Datum::Text(Bytes::from("1")));
        assert_eq!(new[1], Datum::Text(Bytes::from("x")));
    }

    #[test]
    fn truncated_and_unknown_input_is_an_error_not_a_panic() {
        assert!(decode(Bytes::from_static(b"B\0\0")).is_err());
        assert!(decode(Bytes::from_static(b"Z")).is_err());
        assert!(decode(Bytes::from_static(b"")).is_err());
        let mut b = BytesMut::new();
        b.put_u8(b'I');
        b.put_u32(1);
        b.put_u8(b'N');
        b.put_u16(1);
        b.put_u8(b't');
        b.put_u32(100);
        assert!(decode(b.freeze()).is_err());
    }
}
