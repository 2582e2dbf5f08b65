//! The tools: sweeps, the atlas, exploration and shrinking, reports, pictures, calibration,
//! and real mode (built without `--cfg madsim`).

#[cfg(madsim)]
pub mod atlas;
pub mod calibrate;
#[cfg(madsim)]
pub mod compare;
#[cfg(all(madsim, feature = "explore"))]
pub mod explore;
#[cfg(madsim)]
pub mod harness;
pub mod heatmap;
pub mod plot;
#[cfg(all(not(madsim), feature = "cli"))]
pub mod real;
pub mod redlock_story;
#[cfg(madsim)]
pub mod report;
#[cfg(madsim)]
pub mod robust;
pub mod svg;
#[cfg(madsim)]
pub mod sweep;
pub mod timeline;
