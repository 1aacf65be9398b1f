//! A bounded queue of byte records in one fixed buffer: how backends hand records to the
//! background worker of their database through shared memory. The extension keeps a `RingState`
//! and the buffer in shared memory behind one lock; this module only reads and writes the bytes.
//!
//! Records are written one after the other (a record may wrap around the buffer's end) and freed
//! in order. Each has a header: its length, the database and role it belongs to, a status and
//! the worker that claimed it. The worker of a database claims that database's ready records,
//! writes them, and marks them done; the oldest records are freed once done, whoever wrote them.
//! A record that does not fit is refused at once: a full buffer never makes anyone wait.
//!
//! Every walk goes from the oldest record to the newest, so it is bounded by the buffer's size
//! over the header's size. A header that does not make sense (a length past the newest record)
//! means the buffer is corrupt: it is emptied rather than walked further. (Queue crates keep
//! their own allocation and pop in order; this one lives in a given slice and lets each
//! database's worker take its own records out of order.)

/// Bytes of a record's header.
pub const HEADER: usize = 32;

const READY: u32 = 0;
const CLAIMED: u32 = 1;
const DONE: u32 = 2;

/// Where the records are: byte positions counted since the buffer was created (never reset, so
/// they only grow; the index in the buffer is a position modulo its length).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RingState {
    /// Just past the newest record.
    pub head: u64,
    /// The oldest record not yet freed.
    pub tail: u64,
}

/// The owner of a record: the database it is written into and the role it was made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Owner {
    pub database: u32,
    pub role: u32,
}

/// A database's ready records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    /// When the oldest was handed over.
    pub oldest_at: i64,
    /// Their payloads' bytes.
    pub bytes: u64,
}

/// A record that was not kept, because it is larger than the free space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

#[derive(Debug, Clone, Copy)]
struct Header {
    len: u32,
    owner: Owner,
    status: u32,
    claimer: i32,
    /// When it was handed over (the caller's clock; the ring only compares it).
    at: i64,
}

impl Header {
    fn to_bytes(self) -> [u8; HEADER] {
        let mut b = [0u8; HEADER];
        b[0..4].copy_from_slice(&self.len.to_le_bytes());
        b[4..8].copy_from_slice(&self.owner.database.to_le_bytes());
        b[8..12].copy_from_slice(&self.owner.role.to_le_bytes());
        b[12..16].copy_from_slice(&self.status.to_le_bytes());
        b[16..20].copy_from_slice(&self.claimer.to_le_bytes());
        b[24..32].copy_from_slice(&self.at.to_le_bytes());
        b
    }

    fn from_bytes(b: &[u8; HEADER]) -> Header {
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let mut at = [0u8; 8];
        at.copy_from_slice(&b[24..32]);
        Header {
            len: u32_at(0),
            owner: Owner { database: u32_at(4), role: u32_at(8) },
            status: u32_at(12),
            claimer: u32_at(16) as i32,
            at: i64::from_le_bytes(at),
        }
    }
}

/// One record as `entries` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub owner: Owner,
    pub at: i64,
    /// Not done, and not claimed (a claimed record is still pending until it is written).
    pub pending: bool,
    pub payload: Vec<u8>,
}

/// The buffer and its positions, borrowed for one operation (under the caller's lock).
pub struct Ring<'a> {
    state: &'a mut RingState,
    buf: &'a mut [u8],
}

impl<'a> Ring<'a> {
    pub fn new(state: &'a mut RingState, buf: &'a mut [u8]) -> Ring<'a> {
        let mut ring = Ring { state, buf };
        if ring.used() > ring.capacity() as u64 || ring.state.tail > ring.state.head {
            ring.clear();
        }
        ring
    }

    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Bytes taken by records not yet freed (done ones behind an older pending one included).
    pub fn used(&self) -> u64 {
        self.state.head.wrapping_sub(self.state.tail)
    }

    /// The largest payload that fits in an empty buffer.
    pub fn max_payload(&self) -> usize {
        self.capacity().saturating_sub(HEADER)
    }

    /// Appends a record; `Full` when it does not fit in the free space (it is then not kept).
    /// Returns its database's ready records, this one included.
    pub fn push(&mut self, owner: Owner, at: i64, payload: &[u8]) -> Result<Pending, Full> {
        let size = (HEADER + payload.len()) as u64;
        if payload.len() > u32::MAX as usize || size > self.capacity() as u64 - self.used() {
            return Err(Full);
        }
        let head = self.state.head;
        let header = Header { len: payload.len() as u32, owner, status: READY, claimer: 0, at };
        self.write(head, &header.to_bytes());
        self.write(head + HEADER as u64, payload);
        self.state.head = head + size;
        Ok(self.pending(owner.database).unwrap_or(Pending { oldest_at: at, bytes: payload.len() as u64 }))
    }

    /// Claims `database`'s ready records for `claimer`, oldest first, until their payloads
    /// reach `max_bytes` (at least one record is claimed when any is ready).
    pub fn claim(&mut self, database: u32, claimer: i32, max_bytes: usize) -> Vec<(Owner, Vec<u8>)> {
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for (pos, h) in self.headers() {
            if h.status != READY || h.owner.database != database {
                continue;
            }
            if !out.is_empty() && bytes + h.len as usize > max_bytes {
                break;
            }
            bytes += h.len as usize;
            out.push((h.owner, self.payload(pos, h.len)));
            self.set(pos, Header { status: CLAIMED, claimer, ..h });
        }
        out
    }

    /// The records `claimer` claimed are done (written, or given up): they are freed in turn.
    pub fn finish(&mut self, claimer: i32) {
        self.update(|h| (h.status == CLAIMED && h.claimer == claimer).then_some(DONE));
        self.free_done();
    }

    /// The records `claimer` claimed are ready again (it stopped before writing them); how many.
    pub fn release(&mut self, claimer: i32) -> usize {
        self.update(|h| (h.status == CLAIMED && h.claimer == claimer).then_some(READY))
    }

    /// `database`'s ready records, if it has any: when the oldest was handed over, and their bytes.
    pub fn pending(&self, database: u32) -> Option<Pending> {
        self.headers().into_iter().filter(|(_, h)| h.status == READY && h.owner.database == database).fold(
            None,
            |p: Option<Pending>, (_, h)| {
                let bytes = p.map_or(0, |p| p.bytes) + h.len as u64;
                Some(Pending { oldest_at: p.map_or(h.at, |p| p.oldest_at), bytes })
            },
        )
    }

    /// The owner and time of the oldest ready record, if any.
    pub fn oldest_ready(&self) -> Option<(Owner, i64)> {
        self.headers().into_iter().find(|(_, h)| h.status == READY).map(|(_, h)| (h.owner, h.at))
    }

    /// Gives up the ready records of the databases `which` picks: they are done without being
    /// written. Returns the owner of each, to count them.
    pub fn discard(&mut self, which: impl Fn(u32) -> bool) -> Vec<Owner> {
        let mut dropped = Vec::new();
        for (pos, h) in self.headers() {
            if h.status == READY && which(h.owner.database) {
                dropped.push(h.owner);
                self.set(pos, Header { status: DONE, ..h });
            }
        }
        self.free_done();
        dropped
    }

    /// Every record not yet done, oldest first (to save them at shutdown).
    pub fn entries(&self) -> Vec<Entry> {
        self.headers()
            .into_iter()
            .filter(|(_, h)| h.status != DONE)
            .map(|(pos, h)| Entry {
                owner: h.owner,
                at: h.at,
                pending: h.status == READY,
                payload: self.payload(pos, h.len),
            })
            .collect()
    }

    fn clear(&mut self) {
        self.state.tail = self.state.head;
    }

    /// Each record's position and header, oldest first; the buffer is emptied if one is corrupt.
    fn headers(&self) -> Vec<(u64, Header)> {
        let mut out = Vec::new();
        let mut pos = self.state.tail;
        while pos < self.state.head {
            let h = self.header(pos);
            let next = pos + HEADER as u64 + h.len as u64;
            if next > self.state.head || h.status > DONE {
                return Vec::new();
            }
            out.push((pos, h));
            pos = next;
        }
        out
    }

    /// Sets the status of the records `status` picks; how many.
    fn update(&mut self, status: impl Fn(&Header) -> Option<u32>) -> usize {
        let mut changed = 0;
        for (pos, h) in self.headers() {
            if let Some(s) = status(&h) {
                self.set(pos, Header { status: s, ..h });
                changed += 1;
            }
        }
        changed
    }

    /// Frees the done records at the tail.
    fn free_done(&mut self) {
        while self.state.tail < self.state.head {
            let h = self.header(self.state.tail);
            let next = self.state.tail + HEADER as u64 + h.len as u64;
            if next > self.state.head {
                self.clear();
                return;
            }
            if h.status != DONE {
                return;
            }
            self.state.tail = next;
        }
    }

    fn header(&self, pos: u64) -> Header {
        let mut b = [0u8; HEADER];
        self.read(pos, &mut b);
        Header::from_bytes(&b)
    }

    fn set(&mut self, pos: u64, h: Header) {
        self.write(pos, &h.to_bytes());
    }

    fn payload(&self, pos: u64, len: u32) -> Vec<u8> {
        let mut out = vec![0u8; len as usize];
        self.read(pos + HEADER as u64, &mut out);
        out
    }

    /// Copies `out.len()` bytes from position `pos`, wrapping at the buffer's end.
    fn read(&self, pos: u64, out: &mut [u8]) {
        let start = (pos % self.capacity() as u64) as usize;
        let first = out.len().min(self.capacity() - start);
        out[..first].copy_from_slice(&self.buf[start..start + first]);
        let rest = out.len() - first;
        out[first..].copy_from_slice(&self.buf[..rest]);
    }

    fn write(&mut self, pos: u64, bytes: &[u8]) {
        let start = (pos % self.capacity() as u64) as usize;
        let first = bytes.len().min(self.capacity() - start);
        self.buf[start..start + first].copy_from_slice(&bytes[..first]);
        let rest = bytes.len() - first;
        self.buf[..rest].copy_from_slice(&bytes[first..]);
    }
}

/// The first bytes of `encode`'s output: "SQLCLOG" and a format version.
const MAGIC: u64 = 0x5351_4c43_4c4f_4701;

/// Records as a file keeps them between two runs of the server: owner, time and payload of each.
pub fn encode(entries: &[Entry]) -> Vec<u8> {
    let mut bytes = MAGIC.to_le_bytes().to_vec();
    for e in entries {
        bytes.extend_from_slice(&e.owner.database.to_le_bytes());
        bytes.extend_from_slice(&e.owner.role.to_le_bytes());
        bytes.extend_from_slice(&e.at.to_le_bytes());
        bytes.extend_from_slice(&(e.payload.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&e.payload);
    }
    bytes
}

/// The records `encode` wrote, all pending; a file of another format gives none, and a cut one
/// the records before the cut.
pub fn decode(bytes: &[u8]) -> Vec<Entry> {
    let mut out = Vec::new();
    let Some(mut rest) = bytes.strip_prefix(&MAGIC.to_le_bytes()[..]) else { return out };
    let mut take = |n: usize| -> Option<&[u8]> {
        let (head, tail) = (rest.get(..n)?, rest.get(n..)?);
        rest = tail;
        Some(head)
    };
    let mut next = || -> Option<Entry> {
        let database = u32::from_le_bytes(take(4)?.try_into().ok()?);
        let role = u32::from_le_bytes(take(4)?.try_into().ok()?);
        let at = i64::from_le_bytes(take(8)?.try_into().ok()?);
        let len = usize::try_from(u64::from_le_bytes(take(8)?.try_into().ok()?)).ok()?;
        let payload = take(len)?.to_vec();
        Some(Entry { owner: Owner { database, role }, at, pending: true, payload })
    };
    while let Some(e) = next() {
        out.push(e);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DB1: u32 = 16384;
    const DB2: u32 = 16385;

    fn owner(database: u32) -> Owner {
        Owner { database, role: 10 }
    }

    fn record(n: usize, fill: u8) -> Vec<u8> {
        vec![fill; n]
    }

    fn payloads(claimed: Vec<(Owner, Vec<u8>)>) -> Vec<Vec<u8>> {
        claimed.into_iter().map(|(_, p)| p).collect()
    }

    #[test]
    fn records_come_out_as_they_went_in_across_the_buffers_end() {
        let mut state = RingState::default();
        let mut buf = vec![0u8; 200];
        for round in 0..50u8 {
            let mut ring = Ring::new(&mut state, &mut buf);
            let a = record(37 + round as usize % 5, round);
            let b = record(11, round.wrapping_add(100));
            ring.push(owner(DB1), 1, &a).unwrap();
            ring.push(owner(DB1), 2, &b).unwrap();
            assert_eq!(payloads(ring.claim(DB1, 7, usize::MAX)), vec![a, b]);
            assert_eq!(ring.pending(DB1), None);
            ring.finish(7);
            assert_eq!(ring.used(), 0, "round {round}");
        }
        assert!(state.head > 200 * 10, "positions went around the buffer many times");
    }

    #[test]
    fn a_full_buffer_refuses_at_once_and_frees_space_once_records_are_done() {
        let mut state = RingState::default();
        let mut buf = vec![0u8; 3 * (HEADER + 10)];
        let mut ring = Ring::new(&mut state, &mut buf);
        for i in 0..3 {
            ring.push(owner(DB1), i, &record(10, i as u8)).unwrap();
        }
        assert_eq!(ring.push(owner(DB1), 3, &record(1, 0)), Err(Full));
        assert_eq!(ring.push(owner(DB1), 3, &record(ring.max_payload() + 1, 0)), Err(Full));
        assert_eq!(ring.claim(DB1, 1, 15).len(), 1, "a claim stops at max_bytes");
        ring.finish(1);
        ring.push(owner(DB1), 4, &record(10, 9)).unwrap();
        assert_eq!(ring.push(owner(DB1), 5, &record(10, 9)), Err(Full));
    }

    #[test]
    fn each_database_takes_its_own_records_and_space_is_freed_in_order() {
        let mut state = RingState::default();
        let mut buf = vec![0u8; 1000];
        let mut ring = Ring::new(&mut state, &mut buf);
        ring.push(owner(DB1), 1, b"one-a").unwrap();
        ring.push(owner(DB2), 2, b"two-a").unwrap();
        ring.push(owner(DB1), 3, b"one-b").unwrap();
        assert_eq!(ring.claim(DB2, 2, usize::MAX), vec![(owner(DB2), b"two-a".to_vec())]);
        ring.finish(2);
        assert_eq!(ring.used(), 3 * HEADER as u64 + 15, "the older record of DB1 holds the space");
        assert_eq!(ring.oldest_ready(), Some((owner(DB1), 1)));
        assert_eq!(ring.pending(DB1), Some(Pending { oldest_at: 1, bytes: 10 }));
        assert_eq!(ring.push(owner(DB1), 4, b"one-c"), Ok(Pending { oldest_at: 1, bytes: 15 }));
        assert_eq!(ring.push(owner(DB2), 5, b"two-b"), Ok(Pending { oldest_at: 5, bytes: 5 }));
        ring.discard(|db| db == DB2);
        ring.claim(DB1, 9, 10);
        ring.release(9);
        assert_eq!(
            payloads(ring.claim(DB1, 1, usize::MAX)),
            vec![b"one-a".to_vec(), b"one-b".to_vec(), b"one-c".to_vec()]
        );
        assert_eq!(ring.oldest_ready(), None);
        ring.finish(1);
        assert_eq!(ring.used(), 0);
    }

    #[test]
    fn released_claims_are_taken_again_and_other_claims_are_left_alone() {
        let mut state = RingState::default();
        let mut buf = vec![0u8; 1000];
        let mut ring = Ring::new(&mut state, &mut buf);
        ring.push(owner(DB1), 1, b"a").unwrap();
        ring.push(owner(DB2), 2, b"b").unwrap();
        assert_eq!(ring.claim(DB1, 11, usize::MAX).len(), 1);
        assert_eq!(ring.claim(DB2, 22, usize::MAX).len(), 1);
        assert_eq!(ring.release(11), 1);
        ring.finish(99);
        assert_eq!(ring.pending(DB1), Some(Pending { oldest_at: 1, bytes: 1 }));
        assert_eq!(ring.pending(DB2), None);
        let saved = ring.entries();
        assert_eq!(saved.len(), 2);
        assert!(saved[0].pending && !saved[1].pending, "DB2's record is claimed, not ready");
        assert_eq!(payloads(ring.claim(DB1, 33, usize::MAX)), vec![b"a".to_vec()]);
    }

    #[test]
    fn discarded_records_are_counted_by_owner_and_freed() {
        let mut state = RingState::default();
        let mut buf = vec![0u8; 1000];
        let mut ring = Ring::new(&mut state, &mut buf);
        ring.push(Owner { database: DB2, role: 5 }, 1, b"gone").unwrap();
        ring.push(owner(DB1), 2, b"kept").unwrap();
        ring.push(Owner { database: DB2, role: 6 }, 3, b"gone too").unwrap();
        let dropped = ring.discard(|db| db == DB2);
        assert_eq!(dropped, vec![Owner { database: DB2, role: 5 }, Owner { database: DB2, role: 6 }]);
        assert_eq!(ring.used(), (3 * HEADER + 4 + 4 + 8) as u64 - (HEADER + 4) as u64);
        assert_eq!(payloads(ring.claim(DB1, 1, usize::MAX)), vec![b"kept".to_vec()]);
    }

    #[test]
    fn saved_records_read_back_and_a_cut_file_keeps_what_came_before() {
        let entries = vec![
            Entry { owner: owner(DB1), at: 5, pending: true, payload: b"first".to_vec() },
            Entry { owner: Owner { database: DB2, role: 7 }, at: -1, pending: true, payload: vec![] },
            Entry { owner: owner(DB1), at: 6, pending: true, payload: vec![0xff; 300] },
        ];
        let bytes = encode(&entries);
        assert_eq!(decode(&bytes), entries);
        assert_eq!(decode(&bytes[..bytes.len() - 1]), entries[..2]);
        assert!(decode(b"not a ring file").is_empty());
        assert!(decode(&[]).is_empty());
    }

    #[test]
    fn a_corrupt_buffer_is_emptied_rather_than_walked() {
        let mut state = RingState::default();
        let mut buf = vec![0u8; 200];
        {
            let mut ring = Ring::new(&mut state, &mut buf);
            ring.push(owner(DB1), 1, b"fine").unwrap();
        }
        buf[0..4].copy_from_slice(&1000u32.to_le_bytes());
        let mut ring = Ring::new(&mut state, &mut buf);
        assert_eq!(ring.pending(DB1), None);
        assert!(ring.claim(DB1, 1, usize::MAX).is_empty());
        ring.finish(1);
        assert_eq!(ring.used(), 0);
        let mut bad = RingState { head: 10, tail: 20 };
        let mut buf = vec![0u8; 200];
        assert_eq!(Ring::new(&mut bad, &mut buf).used(), 0);
    }
}
