//! Pieces: how the WAL segment in progress is stored while it grows.
//!
//! A piece holds bytes `[start, end)` of one segment. Readers rebuild the
//! segment's durable prefix by chaining pieces from offset 0 ([`chain`]).
//! Writers keep the number of pieces logarithmic by merging ([`PieceStack`]),
//! so a segment that fills slowly over hours is still a handful of objects and
//! each byte is uploaded O(log n) times.

use std::fmt;

/// Bytes `[start, end)` of a segment, as offsets within the segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PieceRange {
    start: u32,
    end: u32,
}

impl PieceRange {
    /// A non-empty range; `None` when `start >= end`.
    pub fn new(start: u32, end: u32) -> Option<PieceRange> {
        (start < end).then_some(PieceRange { start, end })
    }

    /// First byte's offset within the segment.
    pub fn start(self) -> u32 {
        self.start
    }

    /// Offset just past the last byte.
    pub fn end(self) -> u32 {
        self.end
    }

    /// Number of bytes in the piece.
    pub fn len(self) -> u32 {
        self.end - self.start
    }

    /// Always false: a piece holds at least one byte.
    pub fn is_empty(self) -> bool {
        false
    }
}

impl fmt::Display for PieceRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{:#X}, {:#X})", self.start, self.end)
    }
}

/// The pieces that rebuild a segment's longest durable prefix, in order.
///
/// Starting at offset 0, take the piece that starts at the current offset and
/// reaches furthest; repeat. Pieces that don't extend the chain (superseded by
/// a merge whose old pieces were not yet deleted) are ignored.
pub fn chain(pieces: &[PieceRange]) -> Vec<PieceRange> {
    let mut sorted = pieces.to_vec();
    sorted.sort_unstable();
    let mut out: Vec<PieceRange> = Vec::new();
    let mut offset = 0u32;
    loop {
        let next = sorted
            .iter()
            .filter(|p| p.start == offset)
            .max_by_key(|p| p.end)
            .copied();
        match next {
            Some(p) => {
                out.push(p);
                offset = p.end;
            }
            None => return out,
        }
    }
}

/// The durable pieces of the segment in progress, and the merge rule for the next one.
///
/// Invariant: each piece is more than twice as long as the piece after it, so a
/// segment never has more than about log2(segment size) live pieces.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PieceStack {
    /// Where the first piece starts: 0 for a WAL segment, a span boundary for a binlog.
    base: u32,
    pieces: Vec<PieceRange>,
}

/// What to upload next: `piece` replaces the `superseded` pieces once it is durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PiecePlan {
    pub piece: PieceRange,
    pub superseded: Vec<PieceRange>,
}

impl PieceStack {
    /// A stack holding an existing chain (as read back from the store after a restart).
    pub fn from_chain(chain: Vec<PieceRange>) -> PieceStack {
        PieceStack::starting_at(0, chain)
    }

    /// A stack whose pieces start at `base` instead of 0: `chain` continues from there.
    /// Merges never reach below `base`.
    pub fn starting_at(base: u32, chain: Vec<PieceRange>) -> PieceStack {
        PieceStack {
            base,
            pieces: chain,
        }
    }

    /// Where the first piece starts.
    pub fn base(&self) -> u32 {
        self.base
    }

    /// End of the durable prefix (`base` when there are no pieces).
    pub fn end(&self) -> u32 {
        self.pieces.last().map_or(self.base, |p| p.end)
    }

    /// The live pieces, in order.
    pub fn pieces(&self) -> &[PieceRange] {
        &self.pieces
    }

    /// Plans the piece that makes `[base, new_end)` durable, merging with the pieces
    /// on top of the stack that are not more than twice its length. With
    /// `consolidate`, everything becomes one piece `[base, new_end)`. `None` when
    /// there is nothing new to ship.
    pub fn plan(&self, new_end: u32, consolidate: bool) -> Option<PiecePlan> {
        let mut piece = PieceRange::new(self.end(), new_end)?;
        let mut keep = self.pieces.len();
        while let Some(below) = keep.checked_sub(1).and_then(|i| self.pieces.get(i)) {
            if !consolidate && below.len() > piece.len().saturating_mul(2) {
                break;
            }
            piece.start = below.start;
            keep -= 1;
        }
        Some(PiecePlan {
            piece,
            superseded: self.pieces.get(keep..).unwrap_or_default().to_vec(),
        })
    }

    /// Records that a planned piece is durable: it replaces the pieces it supersedes.
    pub fn commit(&mut self, plan: &PiecePlan) {
        self.pieces.retain(|p| p.start < plan.piece.start);
        self.pieces.push(plan.piece);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn r(start: u32, end: u32) -> PieceRange {
        PieceRange::new(start, end).unwrap()
    }

    #[test]
    fn chain_takes_the_furthest_piece_at_each_offset() {
        let pieces = [
            r(0, 10),
            r(10, 20),
            r(0, 15),
            r(15, 30),
            r(20, 25),
            r(40, 50),
        ];
        assert_eq!(chain(&pieces), vec![r(0, 15), r(15, 30)]);
    }

    #[test]
    fn chain_is_empty_without_a_piece_at_zero() {
        assert_eq!(chain(&[r(5, 10)]), vec![]);
    }

    #[test]
    fn plan_merges_small_pieces_and_keeps_big_ones() {
        let mut stack = PieceStack::default();
        let plan = stack.plan(1000, false).unwrap();
        assert_eq!(plan.piece, r(0, 1000));
        stack.commit(&plan);
        let plan = stack.plan(1010, false).unwrap();
        assert_eq!(plan.piece, r(1000, 1010));
        assert!(plan.superseded.is_empty());
        stack.commit(&plan);
        let plan = stack.plan(1020, false).unwrap();
        assert_eq!(plan.piece, r(1000, 1020));
        assert_eq!(plan.superseded, vec![r(1000, 1010)]);
        stack.commit(&plan);
        assert_eq!(stack.pieces(), &[r(0, 1000), r(1000, 1020)]);
        assert_eq!(stack.plan(1020, false), None);
    }

    #[test]
    fn a_stack_with_a_base_never_merges_below_it() {
        let mut stack = PieceStack::starting_at(4096, Vec::new());
        assert_eq!(stack.end(), 4096);
        let plan = stack.plan(4100, false).unwrap();
        assert_eq!(plan.piece, r(4096, 4100));
        stack.commit(&plan);
        let plan = stack.plan(4101, true).unwrap();
        assert_eq!(plan.piece, r(4096, 4101));
        assert_eq!(plan.superseded, vec![r(4096, 4100)]);
    }

    #[test]
    fn consolidate_makes_one_piece() {
        let stack = PieceStack::from_chain(vec![r(0, 1000), r(1000, 1010)]);
        let plan = stack.plan(1011, true).unwrap();
        assert_eq!(plan.piece, r(0, 1011));
        assert_eq!(plan.superseded, vec![r(0, 1000), r(1000, 1010)]);
    }

    proptest! {
        /// However the segment grows, the live pieces chain to its end, stay
        /// logarithmic in number, and each byte is uploaded O(log n) times.
        #[test]
        fn pieces_stay_few_and_chained(steps in prop::collection::vec(1u32..5000, 1..400)) {
            let mut stack = PieceStack::default();
            let mut end = 0u32;
            let mut uploaded = 0u64;
            for step in steps {
                end += step;
                let plan = stack.plan(end, false).unwrap();
                uploaded += u64::from(plan.piece.len());
                stack.commit(&plan);
                prop_assert_eq!(chain(stack.pieces()), stack.pieces().to_vec());
                prop_assert_eq!(stack.end(), end);
                prop_assert!(stack.pieces().len() <= 33);
            }
            let log = u64::from(64 - u64::from(end).leading_zeros());
            prop_assert!(uploaded <= u64::from(end) * (log + 2));
        }
    }
}
