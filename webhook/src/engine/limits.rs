//! Per-evaluation limits of a policy: time and memory, with the defaults every
//! policy gets when its policy-set entry names none (SPEC: 250 ms, 64 MiB).

use super::EPOCH_TICK;

/// Limits of one policy, from its policy-set entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub timeout_ms: u64,
    pub memory_mib: u64,
}

impl Limits {
    /// The defaults: the one place they are written.
    pub const DEFAULT: Limits = Limits {
        timeout_ms: 250,
        memory_mib: 64,
    };

    pub fn memory_bytes(&self) -> usize {
        usize::try_from(self.memory_mib.saturating_mul(1 << 20)).unwrap_or(usize::MAX)
    }

    /// Epoch ticks until the deadline: rounded up, plus one because the current
    /// tick may be almost over when the evaluation starts.
    pub fn epoch_ticks(&self) -> u64 {
        let tick_ms = EPOCH_TICK.as_millis().max(1) as u64;
        self.timeout_ms.div_ceil(tick_ms).saturating_add(1)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_round_up_and_cover_a_partial_first_tick() {
        let ticks = |timeout_ms| {
            Limits {
                timeout_ms,
                memory_mib: 1,
            }
            .epoch_ticks()
        };
        assert_eq!(ticks(1), 2);
        assert_eq!(ticks(250), 251);
        assert_eq!(ticks(u64::MAX), u64::MAX);
        assert_eq!(Limits::DEFAULT.memory_bytes(), 64 << 20);
    }
}
