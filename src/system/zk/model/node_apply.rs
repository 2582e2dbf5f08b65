//! A request applied to the tree, as `FinalRequestProcessor.processRequest` answers it: the
//! answer, and the watches the change fired. The session was touched and checked before
//! (`ZooKeeperServer.submitRequestNow`, `SessionTrackerImpl.checkSession`).

use super::session::SessionId;
use super::tree::DataTree;
use super::watch::WatchEvent;
use super::wire::{Request, Response};

/// Applies `body` for `session`: never panics on a bad request (ZooKeeper's error answers it).
pub(crate) fn apply(
    tree: &mut DataTree,
    session: SessionId,
    body: Request,
) -> (Response, Vec<WatchEvent>) {
    let fail = |e| (Response::Error(e), Vec::new());
    match body {
        Request::Create { path, data, mode } => match tree.create(session, &path, &data, mode) {
            Ok((created, events)) => match tree.exists(&created, None) {
                Ok(Some(stat)) => (
                    Response::Created {
                        path: created,
                        stat,
                    },
                    events,
                ),
                // Just created under the same lock, so it exists: an invariant, answered as
                // an error in a release build rather than a panic in the server.
                _ => {
                    debug_assert!(false, "{created} created and missing");
                    fail(super::error::ZkError::RuntimeInconsistency)
                }
            },
            Err(e) => fail(e),
        },
        Request::Delete { path, version } => match tree.delete(&path, version) {
            Ok(events) => (Response::Deleted, events),
            Err(e) => fail(e),
        },
        Request::GetData { path, watch } => match tree.get_data(&path, watch.then_some(session)) {
            Ok((data, stat)) => (Response::Data { data, stat }, Vec::new()),
            Err(e) => fail(e),
        },
        Request::Exists { path, watch } => match tree.exists(&path, watch.then_some(session)) {
            Ok(stat) => (Response::Exists(stat), Vec::new()),
            Err(e) => fail(e),
        },
        Request::SetData {
            path,
            data,
            version,
        } => match tree.set_data(&path, &data, version) {
            Ok((stat, events)) => (Response::Stat(stat), events),
            Err(e) => fail(e),
        },
        Request::GetChildren { path } => match tree.get_children(&path) {
            Ok(children) => (Response::Children(children), Vec::new()),
            Err(e) => fail(e),
        },
        Request::Multi { ops } => match tree.multi(session, &ops) {
            Ok((results, events)) => (Response::Multi(Ok(results)), events),
            Err(e) => (Response::Multi(Err(e)), Vec::new()),
        },
        // The node handles a close itself (it ends the session, not a tree request).
        Request::CloseSession => (Response::Closed, Vec::new()),
    }
}
