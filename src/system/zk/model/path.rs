//! Paths: their validation, their parent, the version check, and Curator's order of lock nodes.

use super::error::{ZkError, ZkResult};
/// The parent of a valid path (`pRequest2TxnCreate`'s `lastIndexOf('/')`): "/" for a top node.
pub(crate) fn parent_of(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(slash) => &path[..slash],
    }
}

/// `PathUtils.validatePath(path, isSequential)`, simplified: absolute, no empty segment, no
/// trailing '/' (allowed before a sequential suffix), no "." or ".." segment, within the bound.
pub(crate) fn validate_path(path: &str, sequential: bool, path_bytes_max: usize) -> ZkResult<()> {
    if path.len() > path_bytes_max {
        return Err(ZkError::ModelLimit { what: "path bytes" });
    }
    if !path.starts_with('/') || path.contains('\0') {
        return Err(ZkError::BadArguments);
    }
    if path == "/" {
        return Ok(());
    }
    let body = if sequential {
        path.strip_suffix('/').unwrap_or(path)
    } else {
        path
    };
    let bad = body[1..]
        .split('/')
        .any(|segment| segment.is_empty() || segment == "." || segment == "..");
    if bad || body.ends_with('/') {
        return Err(ZkError::BadArguments);
    }
    Ok(())
}

/// `checkAndIncVersion`: -1 matches any version.
pub(crate) fn check_version(current: i32, expected: i32) -> ZkResult<()> {
    if expected != -1 && expected != current {
        return Err(ZkError::BadVersion);
    }
    Ok(())
}

/// Curator's order of lock nodes (apache/curator, `LockInternals.getSortedChildren` with
/// `StandardLockInternalsDriver.standardFixForSorting`): each name compared by what follows the last
/// occurrence of `lock_name` ("lock-" for `InterProcessMutex`), the whole name when it has none.
/// With `%010d` suffixes, string order is sequence order; the protection prefix `_c_<uuid>-`
/// does not take part.
pub fn sort_by_sequence(children: &[String], lock_name: &str) -> Vec<String> {
    let key = |name: &String| match name.rfind(lock_name) {
        Some(at) => name[at + lock_name.len()..].to_string(),
        None => name.clone(),
    };
    let mut sorted = children.to_vec();
    sorted.sort_by_cached_key(key);
    sorted
}
