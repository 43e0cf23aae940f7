//! Postgres formats, decoded without I/O: pgoutput messages, values in text form, and
//! transaction snapshots (the fence of a mount).

pub(crate) mod pgoutput;
pub(crate) mod value;

/// A load fence: the snapshot a view's rows were read in (`pg_current_snapshot()`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Snapshot {
    xmin: u64,
    xmax: u64,
    xip: Vec<u64>,
}

impl Snapshot {
    /// Parses `xmin:xmax:xip,xip…`.
    pub(crate) fn parse(s: &str) -> Option<Snapshot> {
        let mut parts = s.trim().splitn(3, ':');
        let xmin = parts.next()?.parse().ok()?;
        let xmax = parts.next()?.parse().ok()?;
        let xip = match parts.next() {
            Some("") | None => Vec::new(),
            Some(list) => list
                .split(',')
                .map(|x| x.parse().ok())
                .collect::<Option<Vec<u64>>>()?,
        };
        Some(Snapshot { xmin, xmax, xip })
    }

    /// Whether a transaction (by its 32-bit xid from the Begin message) was committed and
    /// visible in this snapshot (`pg_visible_in_snapshot` semantics).
    pub(crate) fn sees(&self, xid: u32) -> bool {
        let full = widen(xid, self.xmax);
        full < self.xmin || (full < self.xmax && !self.xip.contains(&full))
    }
}

/// Widens a 32-bit xid to the 64-bit xid closest to `reference`.
fn widen(xid: u32, reference: u64) -> u64 {
    let diff = xid.wrapping_sub(reference as u32) as i32 as i64;
    (reference as i64).wrapping_add(diff) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_visibility() {
        let s = Snapshot::parse("100:105:101,103").unwrap();
        assert!(s.sees(99));
        assert!(s.sees(100));
        assert!(!s.sees(101));
        assert!(s.sees(102));
        assert!(!s.sees(103));
        assert!(s.sees(104));
        assert!(!s.sees(105));
        assert!(!s.sees(200));
        let empty = Snapshot::parse("7:7:").unwrap();
        assert!(empty.sees(6));
        assert!(!empty.sees(7));
        assert!(Snapshot::parse("x:1:").is_none());
    }

    #[test]
    fn widen_across_epochs() {
        // A snapshot in epoch 1, just after wraparound; xid 0xFFFF_FFF0 is from epoch 0.
        let xmax = (1u64 << 32) + 5;
        assert_eq!(widen(0xFFFF_FFF0, xmax), 0xFFFF_FFF0);
        assert_eq!(widen(3, xmax), (1 << 32) + 3);
        let s = Snapshot {
            xmin: xmax,
            xmax,
            xip: vec![],
        };
        assert!(s.sees(0xFFFF_FFF0));
        assert!(!s.sees(9));
    }
}
