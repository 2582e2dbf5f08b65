//! A picture of one run: a Kleppmann-style timeline, as a standalone SVG.
//!
//! One lane per node (clients, then etcd, then each member of a cluster of several, then
//! storage; on Redlock, each Redis node instead of etcd), true time across. On a client's
//! lane: its lease session, the lock as the client believes it holds it, the lock as etcd holds it for the client, the span where the two
//! disagree, its pauses, crashes and partitions, its clock skew, and its reads and writes
//! tagged with their tokens. On etcd's lane: which client holds the lock, as the clients see
//! the cluster. On a member's lane: its pauses, crashes and partitions, when it led the
//! cluster, and its leadership changes. On the storage lane: what the storage applied,
//! accepted or rejected, joined to the client's send by a line. The checker's findings get a
//! halo and a numbered note.
//!
//! The SVG is written by hand: no font library is needed, every coordinate is ours, and the
//! same input gives the same bytes (no maps with random order, fixed float formatting).
//! It only reads [`History`](crate::history::History), [`Verdict`](crate::checker::Verdict),
//! [`Scenario`](crate::scenario::Scenario) and [`FaultPlan`](crate::fault::FaultPlan), so it
//! builds with or without `--cfg madsim`.
//!
//! Its parts: `model` turns the history into what is drawn, as plain data (lanes, and spans
//! of time on them: lease sessions, lock holdings, faults, network windows); `layout` says
//! where things go on the page (sizes, offsets, the time axis' scale, label rows); `draw`
//! renders the document, its lanes, axes and locks; `leaders` who led the cluster when, and
//! the members' notes; `redis` the Redis nodes' lanes (grants of the lock key, what their
//! clients still believe, double grants); `ops` the reads and writes; `findings` the checker's findings on the
//! lanes; `notes` the legend and the lists under the picture.
//! The helpers it shares with the [plot](crate::plot) are in [`svg`](crate::svg).

mod draw;
mod findings;
mod layout;
mod leaders;
mod model;
mod notes;
mod ops;
mod redis;
#[cfg(test)]
mod tests;

pub use crate::svg::xml_escape;
pub use draw::render;

/// Most events drawn: beyond this a picture is unreadable and heavy, so the rest is left out
/// (and the picture says so). A 20 s standard run records about 1,000.
pub const EVENTS_DRAWN_MAX: usize = 20_000;
