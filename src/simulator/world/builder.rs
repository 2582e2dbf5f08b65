//! [`Builder`]: one world's scenario, fault plan, seed, and the three things users vary
//! (fence, lock recipe, workload), in the style of turmoil's `Builder`.

use super::Run;
use crate::fault::FaultPlan;
use crate::lock::LockRecipe;
use crate::nemesis::{self};
use crate::scenario::Scenario;
use crate::storage::{Fence, Fencing};
use crate::workload::Workload;
use std::sync::Arc;

/// What a run is made of. Cheap to clone (the fence, recipe and workload are shared), and
/// `Send + Sync`, so that sweeps, explorations and the test harness run it on every core.
///
/// ```
/// # #[cfg(madsim)] {
/// use fencelab::{scenario::Scenario, storage::Fencing, world::Builder};
///
/// let run = Builder::new(Scenario::standard()).fencing(Fencing::Token).seed(7).run();
/// assert!(!run.verdict.violates());
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Builder {
    scenario: Scenario,
    /// `None`: the nemesis draws the plan from the seed.
    plan: Option<FaultPlan>,
    seed: u64,
    fence: Arc<dyn Fence>,
    /// `None`: the scenario's `lock_method`.
    recipe: Option<Arc<dyn LockRecipe>>,
    /// `None`: the scenario's `workload`.
    workload: Option<Arc<dyn Workload>>,
}

/// The parts a world is built from, resolved.
#[derive(Clone, Debug)]
pub(super) struct Parts {
    pub fence: Arc<dyn Fence>,
    pub recipe: Arc<dyn LockRecipe>,
    pub workload: Arc<dyn Workload>,
}

impl Builder {
    /// The scenario with no fence, the scenario's lock method and workload, the plan the
    /// nemesis draws from the seed, and seed 0.
    pub fn new(scenario: Scenario) -> Builder {
        Builder {
            scenario,
            plan: None,
            seed: 0,
            fence: Fencing::None.fence(),
            recipe: None,
            workload: None,
        }
    }

    pub fn scenario(&self) -> &Scenario {
        &self.scenario
    }

    /// Replaces the scenario (keeping the plan, seed and parts).
    pub fn with_scenario(mut self, scenario: Scenario) -> Builder {
        self.scenario = scenario;
        self
    }

    /// Runs this plan instead of the one the nemesis would draw.
    pub fn plan(mut self, plan: FaultPlan) -> Builder {
        self.plan = Some(plan);
        self
    }

    pub fn seed(mut self, seed: u64) -> Builder {
        self.seed = seed;
        self
    }

    /// One of fencelab's fencing policies.
    pub fn fencing(self, fencing: Fencing) -> Builder {
        self.fence_arc(fencing.fence())
    }

    /// Your fence.
    pub fn fence(self, fence: impl Fence) -> Builder {
        self.fence_arc(Arc::new(fence))
    }

    /// A fence already shared.
    pub fn fence_arc(mut self, fence: Arc<dyn Fence>) -> Builder {
        self.fence = fence;
        self
    }

    /// Your lock recipe (instead of the scenario's `lock_method`).
    pub fn recipe(mut self, recipe: impl LockRecipe) -> Builder {
        self.recipe = Some(Arc::new(recipe));
        self
    }

    /// A recipe already shared.
    pub fn recipe_arc(mut self, recipe: Arc<dyn LockRecipe>) -> Builder {
        self.recipe = Some(recipe);
        self
    }

    /// A scheme of the comparison: its fence, and its recipe if it has one.
    pub fn scheme(self, scheme: &crate::schemes::Scheme) -> Builder {
        let settings = crate::schemes::LockSettings::from(&self.scenario);
        let b = self.fence_arc(scheme.fence.clone());
        match scheme.recipe {
            Some(recipe_of) => b.recipe_arc(recipe_of(&settings)),
            None => b,
        }
    }

    /// Your workload (instead of the scenario's `workload`).
    pub fn workload(mut self, workload: impl Workload) -> Builder {
        self.workload = Some(Arc::new(workload));
        self
    }

    pub fn fence_name(&self) -> &str {
        self.fence.name()
    }

    pub fn recipe_name(&self) -> String {
        self.parts().recipe.name().to_string()
    }

    pub fn workload_name(&self) -> String {
        self.parts().workload.name().to_string()
    }

    /// The plan a seed runs under: the one given, or the nemesis's draw for that seed.
    pub fn plan_for(&self, seed: u64) -> FaultPlan {
        match &self.plan {
            Some(plan) => plan.clone(),
            None => nemesis::draw(&self.scenario, seed),
        }
    }

    pub(super) fn parts(&self) -> Parts {
        Parts {
            fence: self.fence.clone(),
            recipe: self
                .recipe
                .clone()
                .unwrap_or_else(|| self.scenario.recipe()),
            workload: self
                .workload
                .clone()
                .unwrap_or_else(|| self.scenario.workload.workload()),
        }
    }

    /// Runs the world for the builder's seed.
    pub fn run(&self) -> Run {
        self.run_seed(self.seed)
    }

    /// Runs the world for `seed` (a sweep's way: one builder, many seeds).
    pub fn run_seed(&self, seed: u64) -> Run {
        super::run_parts(&self.scenario, &self.plan_for(seed), self.parts(), seed)
    }
}
