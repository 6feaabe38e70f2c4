//! The restorable window every source kind shares: the earliest and the latest time a
//! restore can reach, and the check of a target time against it, with one wording.

use jiff::Timestamp;

/// The earliest and the latest time a restore can reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindow {
    /// The earliest reachable time: where the oldest restorable backup is consistent.
    pub start: Timestamp,
    /// The latest reachable time: the newest durable commit (at least `start`).
    pub end: Timestamp,
}

/// A target time outside the window.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeWindowError {
    #[error(
        "target time {target} is before the restorable window {start} .. {end} (pick a time inside it; see logship list)"
    )]
    Before {
        target: Timestamp,
        start: Timestamp,
        end: Timestamp,
    },
    #[error(
        "target time {target} is after the restorable window {start} .. {end} (pick a time inside it; see logship list)"
    )]
    After {
        target: Timestamp,
        start: Timestamp,
        end: Timestamp,
    },
}

impl TimeWindow {
    /// Refuses a `target` outside the window, naming the window.
    pub fn check(&self, target: Timestamp) -> Result<(), TimeWindowError> {
        let (start, end) = (self.start, self.end);
        if target < start {
            return Err(TimeWindowError::Before { target, start, end });
        }
        if target > end {
            return Err(TimeWindowError::After { target, start, end });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_times_outside_and_names_the_window() {
        let at = |t: &str| t.parse::<Timestamp>().unwrap();
        let window = TimeWindow {
            start: at("2026-12-07T10:00:00Z"),
            end: at("2026-12-07T11:00:00Z"),
        };
        assert_eq!(window.check(window.start), Ok(()));
        assert_eq!(window.check(window.end), Ok(()));
        assert_eq!(
            window
                .check(at("2026-12-07T09:59:59Z"))
                .unwrap_err()
                .to_string(),
            "target time 2026-12-07T09:59:59Z is before the restorable window \
             2026-12-07T10:00:00Z .. 2026-12-07T11:00:00Z (pick a time inside it; see logship list)"
        );
        assert!(matches!(
            window.check(at("2026-12-07T11:00:01Z")),
            Err(TimeWindowError::After { .. })
        ));
    }
}
