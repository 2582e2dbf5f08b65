//! A critical section that writes twice: move one unit from one account to another. Some
//! schemes keep a single read-modify-write safe but not this: a holder that writes the first
//! account and then loses the lock (its second write refused, or never sent) leaves the two
//! accounts out of balance, whichever fence refused it.

use super::{lost_updates, FindingKind, Findings};
use super::{Critical, CycleEnd, Workload};
use crate::history::{History, OpResult};
use crate::keys::{TRANSFER_FROM_KEY, TRANSFER_TOTAL, TRANSFER_TO_KEY};
use crate::BoxFuture;

/// Each cycle: read both accounts, move one unit (write the first, then the second).
///
/// Its invariants, checked over the history:
/// - **conservation**: at the end the two accounts hold `TRANSFER_TOTAL` between them (an
///   invariant break otherwise: some move was half applied);
/// - **no lost moves**: an acknowledged credit of the second account that a later accepted
///   write overwrote without having seen it is a lost update (the counter's rule on that key).
#[derive(Debug, Clone, Copy, Default)]
pub struct Transfer;

/// An account's balance from a read: absent is its initial amount.
fn balance(read: &OpResult, initial: u64) -> Result<u64, CycleEnd> {
    match read {
        OpResult::Ok { val, .. } if val.is_empty() => Ok(initial),
        OpResult::Ok { val, .. } => val
            .parse()
            .map_err(|_| CycleEnd::Abandoned(format!("account holds '{val}'"))),
        other => Err(CycleEnd::Abandoned(format!("read: {other:?}"))),
    }
}

impl Transfer {
    async fn cycle(&self, cs: &mut Critical<'_>) -> Result<(), CycleEnd> {
        let from = balance(&cs.read(TRANSFER_FROM_KEY).await, TRANSFER_TOTAL)?;
        let to = balance(&cs.read(TRANSFER_TO_KEY).await, 0)?;
        if from == 0 {
            return Err(CycleEnd::Abandoned("nothing left to move".into()));
        }
        cs.prepare_write().await?;
        let debited = cs.write(TRANSFER_FROM_KEY, (from - 1).to_string()).await;
        if !matches!(debited, OpResult::Ok { .. }) {
            return Err(CycleEnd::Abandoned(format!("debit: {debited:?}")));
        }
        // The second write has its own window: a pause here strikes between the two writes.
        cs.prepare_write().await?;
        cs.write(TRANSFER_TO_KEY, (to + 1).to_string()).await;
        Ok(())
    }
}

impl Workload for Transfer {
    fn name(&self) -> &str {
        "transfer"
    }

    fn critical<'a>(&'a self, cs: &'a mut Critical<'_>) -> BoxFuture<'a, CycleEnd> {
        Box::pin(async move { self.cycle(cs).await.into() })
    }

    fn check(&self, history: &History) -> Findings {
        let mut findings = Findings::default();
        lost_updates(history, TRANSFER_TO_KEY, &mut findings);
        let amount = |key: &str, initial: u64| -> Option<u64> {
            match history.final_entries.get(key) {
                None => Some(initial),
                Some(e) => e.val.parse().ok(),
            }
        };
        let (Some(from), Some(to)) = (
            amount(TRANSFER_FROM_KEY, TRANSFER_TOTAL),
            amount(TRANSFER_TO_KEY, 0),
        ) else {
            findings
                .anomalies
                .push("an account's final value is not a number".into());
            return findings;
        };
        if from + to != TRANSFER_TOTAL {
            findings.at_end(
                FindingKind::InvariantBreak,
                "storage",
                format!(
                    "units not conserved: {TRANSFER_FROM_KEY} {from} + {TRANSFER_TO_KEY} {to} = {}, not {TRANSFER_TOTAL} (a move was half applied)",
                    from + to
                ),
            );
        }
        findings
    }
}
