//! The schemes people argue about, side by side: each a [`Fence`] and, where the scheme is
//! about the lock rather than the storage, a [`LockRecipe`], written on the public traits
//! only, with its source. `fencelab compare` runs every scheme on the same fault plans.

mod fences;
mod lock_delay;
mod sequencer;

pub use fences::{scramble, LeaseIdAtLeast, RandomTokenCas, TokenStrict};
pub use lock_delay::{LockDelay, HOLDER_KEY};
pub use sequencer::SequencerCheck;

use crate::lock::{LockMethod, LockRecipe, Redlock, RedlockToken, ServiceKind};
use crate::storage::{Fence, Fencing, NoFence};
use std::sync::Arc;

/// What a scheme needs to know of the lock it runs under to say whether it can run. The system
/// layer names no scenario: whoever holds one (the simulator's `Scenario`) converts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockSettings {
    pub lock_method: LockMethod,
    /// How long lock-delay waits after a lock came free without a release, ms.
    pub lock_delay_ms: u64,
    /// How long a client campaigns for the lock before it gives up, ms.
    pub campaign_timeout_ms: u64,
    /// The lock service the recipes talk to.
    pub service: ServiceKind,
    /// The scenario's Redlock client (its clock, token and retry delay), for Redlock schemes.
    pub redlock: Redlock,
    /// The etcd release whose client library runs the recipe (kv-mutex differs).
    pub etcd_version: crate::etcd::Version,
    /// The scenario's Curator client (its policy and token), for ZooKeeper schemes.
    pub curator: crate::lock::Curator,
}

/// How a scheme makes its recipe from the scenario's lock settings.
pub type RecipeOf = fn(&LockSettings) -> Arc<dyn LockRecipe>;

/// One row of the comparison.
#[derive(Clone, Debug)]
pub struct Scheme {
    /// Its name in tables and on the command line.
    pub name: &'static str,
    /// One line: what it does, and where it comes from.
    pub about: &'static str,
    pub fence: Arc<dyn Fence>,
    /// `None`: the scenario's lock method's recipe; `Some(f)`: `f` of the scenario's lock
    /// settings (lock-delay wraps whichever recipe the scenario names).
    pub recipe: Option<RecipeOf>,
    /// The one lock service the scheme runs on, if it is tied to one (the sequencer and
    /// lock-delay ask etcd; an `INCR` token is Redis's).
    pub service: Option<ServiceKind>,
}

impl Scheme {
    /// Whether the scheme can run with these lock settings (a simulator's scenario converts
    /// into them): the sequencer check needs a token that is the lock key's create revision
    /// (election, KV mutex), and lock-delay a delay below the campaign timeout (the wait is
    /// part of taking the lock).
    pub fn validate(&self, settings: impl Into<LockSettings>) -> Result<(), String> {
        let scenario: LockSettings = settings.into();
        if let Some(only) = self.service.filter(|s| *s != scenario.service) {
            return Err(format!(
                "scheme {}: it runs on {} only, and the service is {}",
                self.name,
                only.as_str(),
                scenario.service.as_str()
            ));
        }
        if self.fence.asks_lock_service() && scenario.lock_method == LockMethod::LockApi {
            return Err(format!(
                "scheme {}: the sequencer is the lock key's create revision, and the Lock API's token is its answer's revision; use lock_method election or kv-mutex",
                self.name
            ));
        }
        if self.recipe.is_some() && scenario.lock_delay_ms >= scenario.campaign_timeout_ms {
            return Err(format!(
                "scheme {}: lock_delay_ms {} is not below campaign_timeout_ms {}",
                self.name, scenario.lock_delay_ms, scenario.campaign_timeout_ms
            ));
        }
        Ok(())
    }

    fn policy(fencing: Fencing, about: &'static str) -> Scheme {
        Scheme {
            name: fencing.as_str(),
            about,
            fence: fencing.fence(),
            recipe: None,
            service: None,
        }
    }

    /// A Redlock scheme: `fencing` fed the token of an `INCR` counter on the first Redis node
    /// (Kleppmann: "a counter on one node dies with the node").
    fn incr(name: &'static str, fencing: Fencing, about: &'static str) -> Scheme {
        Scheme {
            name,
            about,
            fence: fencing.fence(),
            recipe: Some(|settings| {
                Arc::new(Redlock {
                    token: RedlockToken::Incr,
                    single: settings.lock_method == LockMethod::RedisSingle,
                    ..settings.redlock
                })
            }),
            service: Some(ServiceKind::Redlock),
        }
    }
}

impl Scheme {
    /// A ZooKeeper scheme: `fencing` fed the lock node's sequence number instead of its
    /// `czxid` (the parent's cversion, which restarts with a new container parent).
    fn sequence(name: &'static str, fencing: Fencing, about: &'static str) -> Scheme {
        Scheme {
            name,
            about,
            fence: fencing.fence(),
            recipe: Some(|settings| {
                Arc::new(crate::lock::Curator {
                    token: crate::lock::ZkToken::Sequence,
                    ..settings.curator
                })
            }),
            service: Some(ServiceKind::Zk),
        }
    }
}

/// Every scheme, in the order the comparison shows them.
pub fn catalogue() -> Vec<Scheme> {
    vec![
        Scheme::policy(Fencing::None, "no fence: the lock alone keeps writers apart"),
        Scheme::policy(
            Fencing::LeaseId,
            "contrib/lock's check: a present key takes only the lease ID stored with it (etcd contrib/lock)",
        ),
        Scheme::policy(
            Fencing::TokenWrites,
            "fencing token on writes only: refuse a write below the highest token written (Kleppmann)",
        ),
        Scheme::policy(
            Fencing::Token,
            "fencing token on reads and writes: refuse any op below the highest token seen (Kleppmann)",
        ),
        Scheme {
            name: "random-cas",
            about: "random unique token, check-and-set: a read claims the key, a write needs the claim to be its own (antirez, Is Redlock safe?)",
            fence: Arc::new(RandomTokenCas),
            recipe: None,
            service: None,
        },
        Scheme {
            name: "sequencer",
            about: "the storage asks etcd whether the writer's lock key still exists, then writes: two steps (Chubby's sequencer check)",
            fence: Arc::new(SequencerCheck),
            recipe: None,
            service: Some(ServiceKind::Etcd),
        },
        Scheme {
            name: "lock-delay",
            about: "no fence; a lock freed without a release stays unusable for lock_delay_ms (Chubby, OSDI 2006)",
            fence: Arc::new(NoFence),
            recipe: Some(|settings| {
                Arc::new(LockDelay {
                    inner: settings.lock_method.recipe_on(settings.etcd_version),
                })
            }),
            service: Some(ServiceKind::Etcd),
        },
        Scheme {
            name: "lease-id-ge",
            about: "wrong fix: contrib/lock's lease-ID check with >= instead of equality (lease IDs are not ordered by acquisition)",
            fence: Arc::new(LeaseIdAtLeast),
            recipe: None,
            service: None,
        },
        Scheme {
            name: "token-strict",
            about: "wrong fix: the token check with a strict > (a holder's own second op is refused)",
            fence: Arc::new(TokenStrict),
            recipe: None,
            service: None,
        },
        Scheme::incr(
            "incr-token-writes",
            Fencing::TokenWrites,
            "Redlock, and a token from INCR on one Redis node, checked on writes (Kleppmann's counter; it starts again when that node restarts without persistence)",
        ),
        Scheme::incr(
            "incr-token",
            Fencing::Token,
            "Redlock, and a token from INCR on one Redis node, checked on reads and writes",
        ),
        Scheme::sequence(
            "seq-token-writes",
            Fencing::TokenWrites,
            "Curator's mutex, and the lock node's sequence number as the token, checked on writes (it starts again at 0 once the empty container parent is deleted)",
        ),
        Scheme::sequence(
            "seq-token",
            Fencing::Token,
            "Curator's mutex, and the lock node's sequence number as the token, checked on reads and writes",
        ),
    ]
}

/// The schemes that can run with these lock settings, in the catalogue's order.
pub fn fitting(settings: impl Into<LockSettings>) -> Vec<Scheme> {
    let settings = settings.into();
    catalogue()
        .into_iter()
        .filter(|s| s.validate(settings).is_ok())
        .collect()
}

/// The scheme of that name.
pub fn by_name(name: &str) -> Result<Scheme, String> {
    let all = catalogue();
    let names: Vec<&str> = all.iter().map(|s| s.name).collect();
    all.iter().find(|s| s.name == name).cloned().ok_or_else(|| {
        format!(
            "unknown scheme '{name}' (expected one of: {})",
            names.join(", ")
        )
    })
}
