//! Whether an organization's request budget can check all of its policies within their resync
//! intervals. Each policy needs one Setting read per check; a budget of `reads` per `window`
//! (Automation Cloud publishes 300 GETs per organization per 5 minutes, of which the operator
//! uses a share) allows that many. When the policies need more, some wait past their interval:
//! say so, with the interval that would fit.

use std::time::Duration;

/// The policies of one organization of one server, as far as the budget is concerned.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Demand {
    /// How many policies.
    pub policies: usize,
    /// The reads they need per second: the sum of 1 / resync interval.
    pub reads_per_second: f64,
}

impl Demand {
    /// Adds a policy checked every `resync`.
    pub fn add(&mut self, resync: Duration) {
        self.policies += 1;
        if !resync.is_zero() {
            self.reads_per_second += 1.0 / resync.as_secs_f64();
        }
    }

    /// `None` when `reads` per `window` check every policy within its interval; else the
    /// shortest interval, the same for all of them, that would fit (whole seconds, rounded up).
    pub fn shortfall(&self, reads: u32, window: Duration) -> Option<Duration> {
        if reads == 0 || window.is_zero() {
            return None;
        }
        let allowed = f64::from(reads) / window.as_secs_f64();
        if self.reads_per_second <= allowed * (1.0 + 1e-9) {
            return None;
        }
        let fits = (self.policies as f64 / allowed).ceil();
        Some(Duration::try_from_secs_f64(fits).unwrap_or(Duration::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIVE_MINUTES: Duration = Duration::from_secs(300);

    fn demand(policies: usize, resync: Duration) -> Demand {
        let mut d = Demand::default();
        for _ in 0..policies {
            d.add(resync);
        }
        d
    }

    #[test]
    fn what_the_budget_allows_fits_and_more_does_not() {
        // 150 GETs per 5 minutes: 150 policies checked every 5 minutes fit exactly.
        assert_eq!(demand(150, FIVE_MINUTES).shortfall(150, FIVE_MINUTES), None);
        assert_eq!(
            demand(1500, Duration::from_secs(3000)).shortfall(150, FIVE_MINUTES),
            None
        );
        // 500 policies every 10 minutes need 250 per 5 minutes: 1000 s would fit.
        assert_eq!(
            demand(500, Duration::from_secs(600)).shortfall(150, FIVE_MINUTES),
            Some(Duration::from_secs(1000))
        );
        // One policy every 10 s needs 30 per 5 minutes; a budget of 3 fits one every 100 s.
        assert_eq!(
            demand(1, Duration::from_secs(10)).shortfall(3, FIVE_MINUTES),
            Some(Duration::from_secs(100))
        );
    }

    #[test]
    fn no_limit_never_falls_short() {
        let d = demand(10_000, Duration::from_secs(10));
        assert_eq!(d.shortfall(0, FIVE_MINUTES), None);
        assert_eq!(d.shortfall(150, Duration::ZERO), None);
        assert_eq!(Demand::default().shortfall(1, FIVE_MINUTES), None);
    }
}
